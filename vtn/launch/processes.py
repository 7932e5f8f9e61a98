"""Starting the processes of a job and joining them into a process group (the collectives are in
vtn/engine/distributed.py).

Three ways to get a world of processes:
- `NUM_GPUS` > 1 and/or `NUM_SHARDS` > 1: `launch_job` spawns NUM_GPUS processes on this machine; machine
  `SHARD_ID` of `NUM_SHARDS` joins the others through `--init_method tcp://host:port` (PySlowFast's way).
- `torchrun` (or any launcher that sets RANK / WORLD_SIZE / LOCAL_RANK): one process per launch, `env://`.
- Neither: one process, no process group; every collective helper then works as the identity.
GPUs use DIST_BACKEND (NCCL); CPU processes always use gloo. Joining the group and every collective fail after
DIST_TIMEOUT seconds with a one-line DistTimeoutError instead of hanging.
"""

import datetime
import os
from typing import Callable, Optional

import torch
import torch.distributed as dist

from vtn.config import check_world
from vtn.engine import distributed as du
from vtn.engine.reproducibility import apply_reproducibility
from vtn.utils.errors import UserError


def _elastic_store(init_method: str, rank: int, world: int, timeout: datetime.timedelta):
    """Under torchrun (torchelastic), the store of this attempt: the agent keeps one store for the whole job, so the
    keys of the group of a failed attempt (the old ranks' addresses) would still be there after `--max-restarts`
    restarts the workers, and the new group would try to connect to the dead processes. A prefix per attempt
    (TORCHELASTIC_RESTART_COUNT) keeps the groups apart. None outside torchelastic."""
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if attempt is None or not init_method.startswith("env://"):
        return None
    store, _, _ = next(dist.rendezvous(init_method, rank, world, timeout=timeout))
    return dist.PrefixStore(f"vtn_attempt_{attempt}", store)


def _init_group(cfg, init_method: str, rank: int, world: int, local_rank: int) -> None:
    """Join the job's process group; its collectives fail after DIST_TIMEOUT seconds instead of hanging."""
    backend = cfg.DIST_BACKEND if cfg.NUM_GPUS > 0 else "gloo"
    if cfg.NUM_GPUS > 0:
        torch.cuda.set_device(local_rank)
    du.set_timeout(cfg.DIST_TIMEOUT)
    timeout = datetime.timedelta(seconds=cfg.DIST_TIMEOUT)
    try:
        store = _elastic_store(init_method, rank, world, timeout)
        where = dict(store=store) if store is not None else dict(init_method=init_method)
        dist.init_process_group(backend=backend, world_size=world, rank=rank, timeout=timeout, **where)
    except RuntimeError as e:
        if not du.is_timeout(e):
            raise
        raise du.timeout_error(f"Joining the process group at {init_method}", e, rank, world) from e


def _run_in_group(func: Callable, cfg) -> None:
    """`func(cfg)`, with a timeout of a collective outside the helpers above (DDP's gradient all-reduce) reported
    as a du.DistTimeoutError too; the group is destroyed at the end."""
    try:
        func(cfg)
    except RuntimeError as e:
        if not du.is_initialized() or isinstance(e, du.DistTimeoutError) or not du.is_timeout(e, from_backend=False):
            raise
        raise du.timeout_error("A collective (e.g. DDP's gradient all-reduce)", e) from e
    finally:
        if du.is_initialized():
            dist.destroy_process_group()


def _spawned_worker(local_rank: int, func: Callable, cfg, init_method: str) -> None:
    world = cfg.NUM_GPUS * cfg.NUM_SHARDS
    rank = cfg.SHARD_ID * cfg.NUM_GPUS + local_rank
    os.environ["LOCAL_RANK"] = str(local_rank)
    apply_reproducibility(cfg)  # torch's flags are per process (the environment came from the parent)
    _init_group(cfg, init_method, rank, world, local_rank)
    _run_in_group(func, cfg)


class DeviceError(UserError, RuntimeError):
    """The config asks for GPUs this machine does not have."""


def check_gpus(cfg, per_process: bool = False) -> None:
    """NUM_GPUS above the visible CUDA devices stops at start-up with one line (how many there are, the override
    to use), before any process is started. `per_process`: one GPU per process (torchrun)."""
    wanted = min(cfg.NUM_GPUS, 1) if per_process else cfg.NUM_GPUS
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if wanted > visible:
        fix = "NUM_GPUS 0 to run on the CPU" if visible == 0 else f"NUM_GPUS {visible} (or 0 for the CPU)"
        raise DeviceError(
            f"NUM_GPUS = {cfg.NUM_GPUS} but this machine has {visible} visible CUDA GPU{'s' if visible != 1 else ''}"
            f"{' per process' if per_process else ''}: add the override {fix} to the command line."
        )


def launch_job(cfg, func: Callable, init_method: Optional[str] = None) -> None:
    """Run `func(cfg)` in every process of the job (see the module docstring)."""
    apply_reproducibility(cfg)  # first: CUBLAS_WORKSPACE_CONFIG before anything touches CUDA
    check_gpus(cfg, per_process=du.launched_by_torchrun())
    if du.launched_by_torchrun():
        world = int(os.environ["WORLD_SIZE"])
        check_world(cfg, world)  # the batches of torchrun's world, before any process group forms
        if world > 1 and not du.is_initialized():
            _init_group(cfg, "env://", int(os.environ["RANK"]), world, du.get_local_rank())
        _run_in_group(func, cfg)
        return
    if cfg.NUM_GPUS > 1 or cfg.NUM_SHARDS > 1:
        if cfg.NUM_GPUS < 1:
            raise ValueError("NUM_SHARDS > 1 needs NUM_GPUS >= 1 (for multi-process CPU runs use torchrun).")
        method = init_method or "tcp://localhost:9999"
        torch.multiprocessing.spawn(_spawned_worker, nprocs=cfg.NUM_GPUS, args=(func, cfg, method), daemon=False)
        return
    func(cfg)
