"""SLURM jobs through submitit: one task per GPU, the world set up from SLURM's environment, and requeue on
preemption or timeout (the requeued job resumes from the newest checkpoint through TRAIN.AUTO_RESUME)."""

import logging
import os
import socket

from vtn.launch.processes import check_gpus, launch_job
from vtn.launch.run import run_process
from vtn.utils.errors import UserError

logger = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class SlurmJob:
    """The callable submitit pickles and runs in every task."""

    def __init__(self, cfg, port: int):
        self.cfg = cfg
        self.port = port

    def _set_world_env(self) -> None:
        import submitit  # optional: SLURM jobs only (pip install -e ".[slurm]")

        env = submitit.JobEnvironment()
        os.environ["MASTER_ADDR"] = env.hostnames[0] if env.hostnames else "127.0.0.1"
        os.environ["MASTER_PORT"] = str(self.port)
        os.environ["RANK"] = str(env.global_rank)
        os.environ["LOCAL_RANK"] = str(env.local_rank)
        os.environ["WORLD_SIZE"] = str(env.num_tasks)

    def __call__(self):
        self._set_world_env()
        launch_job(self.cfg, run_process)
        return self.cfg.OUTPUT_DIR

    def checkpoint(self):
        """Called by submitit on preemption/timeout: resubmit the same job; AUTO_RESUME continues it."""
        import submitit  # optional: SLURM jobs only

        return submitit.helpers.DelayedSubmission(SlurmJob(self.cfg, self.port))


def build_executor(
    cfg,
    nodes: int,
    gpus_per_node: int,
    job_dir: str,
    cluster=None,
    partition: str = "",
    timeout_min: int = 60 * 72,
    cpus_per_task: int = 10,
    account: str = "",
    qos: str = "",
    mem: str = "",
    constraint: str = "",
    extra_slurm: dict = None,
):
    """submitit's executor of the job, its parameters set: `nodes` x `gpus_per_node` tasks (one per GPU, at least
    one per node), `cpus_per_task`, `timeout_min`; on SLURM also `partition`, `account`, `qos`, `mem` (SLURM's
    syntax, e.g. "64G"), `constraint` (each left to the cluster's default when empty) and `extra_slurm` (more
    `slurm_*` parameters of submitit)."""
    import submitit  # optional: SLURM jobs only

    if cluster is None and submitit.AutoExecutor.which() != "slurm":
        raise UserError(
            "SLURM is not available on this machine (no srun on PATH): run tools/submit.py on the cluster's login "
            "node, or pass --cluster local to run the job here (or use tools/run_net.py)"
        )
    if (cluster or "slurm") != "slurm":
        check_gpus(cfg)  # the job runs on this machine: NUM_GPUS (--gpus-per-node) must be here
    executor = submitit.AutoExecutor(folder=job_dir, cluster=cluster)
    params = dict(
        name=os.path.basename(os.path.normpath(cfg.OUTPUT_DIR)) or "vtn",
        nodes=nodes,
        tasks_per_node=max(1, gpus_per_node),
        gpus_per_node=gpus_per_node,
        cpus_per_task=cpus_per_task,
        timeout_min=timeout_min,
    )
    if executor.cluster == "slurm":
        slurm = dict(partition=partition, account=account, qos=qos, mem=mem, constraint=constraint)
        params.update({f"slurm_{k}": v for k, v in slurm.items() if v})
        params.update(slurm_signal_delay_s=120, **(extra_slurm or {}))
    executor.update_parameters(**params)
    return executor


def submit(cfg, nodes: int, gpus_per_node: int, job_dir: str, **options):
    """Submit the job (run_net.py's processes in every task); `options` are those of `build_executor`."""
    executor = build_executor(cfg, nodes, gpus_per_node, job_dir, **options)
    return executor.submit(SlurmJob(cfg, _free_port()))
