"""tools/submit.py through submitit's local executor: the job trains and tests like run_net.py, and a
preempted job resubmits itself with the same config (its rerun resumes through TRAIN.AUTO_RESUME)."""

import os

import pytest
import submitit  # a test dependency (setup.py's "test" extra): missing, these tests fail instead of skipping

from tests.helpers import run_opts, run_tool, tiny_cfg
from vtn.engine.checkpoint import checkpoint_dir


@pytest.mark.slow
def test_submit_runs_the_job_with_the_local_executor(synthetic_dir, tmp_path):
    out = str(tmp_path / "job")
    proc = run_tool(
        "submit.py",
        "--cluster",
        "local",
        "--nodes",
        "1",
        "--gpus-per-node",
        "0",
        "--timeout",
        "20",
        "--cpus-per-task",
        "1",
        *run_opts(synthetic_dir, out, "SOLVER.MAX_EPOCH", "1"),
        timeout=1500,
    )
    assert "submitted job" in proc.stdout and f"finished: {out}" in proc.stdout
    assert os.path.isfile(os.path.join(checkpoint_dir(out), "checkpoint_epoch_00001.pyth"))
    assert os.path.isfile(os.path.join(out, "test_results.json"))
    assert os.path.isdir(os.path.join(out, "submitit"))  # the job's own logs, next to the run's


def test_a_preempted_job_resubmits_itself_with_the_same_config():
    from vtn.launch.slurm import SlurmJob

    cfg = tiny_cfg("OUTPUT_DIR", "/tmp/somewhere")
    again = SlurmJob(cfg, 12345).checkpoint()
    assert isinstance(again, submitit.helpers.DelayedSubmission)
    job = again.function
    assert isinstance(job, SlurmJob) and job.cfg.OUTPUT_DIR == "/tmp/somewhere" and cfg.TRAIN.AUTO_RESUME


SLURM_FLAGS = {
    "--partition": ("learnfair", "slurm_partition", "partition"),
    "--account": ("myproject", "slurm_account", "account"),
    "--qos": ("high", "slurm_qos", "qos"),
    "--mem": ("400G", "slurm_mem", "mem"),
    "--constraint": ("volta32gb", "slurm_constraint", "constraint"),
}


def _submitted_executors(monkeypatch, tmp_path):
    """Make submitit's SLURM executor buildable here (it only looks for an `srun` on PATH) and record, instead of
    submitting, the executors that tools/submit.py would submit with."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    seen = []

    def fake_submit(executor, job):
        seen.append((executor, job))
        return type("Job", (), {"job_id": "4242"})()

    monkeypatch.setattr(submitit.AutoExecutor, "submit", fake_submit)
    return seen


def test_every_slurm_option_reaches_the_executor_and_the_sbatch_file(monkeypatch, tmp_path):
    seen = _submitted_executors(monkeypatch, tmp_path)
    argv = ["--cluster", "slurm", "--nodes", "2", "--gpus-per-node", "8", "--cpus-per-task", "6", "--time", "1-12:00"]
    for flag, (value, _, _) in SLURM_FLAGS.items():
        argv += [flag, value]
    out = str(tmp_path / "run")
    proc = run_tool("submit.py", *argv, "OUTPUT_DIR", out, "TRAIN.BATCH_SIZE", "16", "TEST.BATCH_SIZE", "16")
    assert "submitted job 4242" in proc.stdout
    ((executor, job),) = seen
    assert executor.cluster == "slurm" and job.cfg.NUM_GPUS == 8 and job.cfg.NUM_SHARDS == 2
    params = executor._executor.parameters  # submitit's SLURM names of the generic and slurm_* parameters
    expected = {"nodes": 2, "ntasks_per_node": 8, "gpus_per_node": 8, "cpus_per_task": 6, "time": 36 * 60}
    expected.update({name: value for value, _, name in SLURM_FLAGS.values()})
    assert {k: params.get(k) for k in expected} == expected
    sbatch = executor._executor._make_submission_file_text("python run.py", "uid")
    for line in (
        "#SBATCH --partition=learnfair",
        "#SBATCH --account=myproject",
        "#SBATCH --qos=high",
        "#SBATCH --mem=400G",
        "#SBATCH --constraint=volta32gb",
        "#SBATCH --time=2160",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --cpus-per-task=6",
        "#SBATCH --nodes=2",
    ):
        assert line in sbatch.splitlines(), line


def test_slurm_options_left_out_are_the_clusters_defaults(monkeypatch, tmp_path):
    seen = _submitted_executors(monkeypatch, tmp_path)
    run_tool("submit.py", "--cluster", "slurm", "--gpus-per-node", "1", "OUTPUT_DIR", str(tmp_path / "run"))
    ((executor, _),) = seen
    sbatch = executor._executor._make_submission_file_text("python run.py", "uid")
    for _, _, name in SLURM_FLAGS.values():
        assert f"#SBATCH --{name}=" not in sbatch, name  # not even an empty value
    assert "#SBATCH --time=4320" in sbatch.splitlines()


@pytest.mark.parametrize(
    "flags,minutes",
    [
        ([], 4320),
        (["--timeout", "20"], 20),
        (["--time", "90"], 90),
        (["--time", "2:00:00"], 120),
        (["--time", "3-00:00:00"], 4320),
        (["--time", "10:30"], 11),
    ],
)
def test_time_takes_minutes_or_slurm_formats_and_timeout_is_the_same_option(flags, minutes, tmp_path):
    from tests.helpers import load_tool
    from vtn.launch.cli import parse
    from vtn.launch.slurm import build_executor

    tool = load_tool("tools/submit.py")
    args = parse(tool.build_parser(), flags)
    assert args.time == minutes
    cfg = tiny_cfg("OUTPUT_DIR", str(tmp_path / "run"))
    executor = build_executor(
        cfg, 1, 0, str(tmp_path / "jobs"), cluster="debug", timeout_min=args.time, cpus_per_task=3
    )
    assert executor._executor.parameters["timeout_min"] == minutes  # the local/debug executors get it too
    assert executor._executor.parameters["cpus_per_task"] == 3 and executor._executor.parameters["gpus_per_node"] == 0


@pytest.mark.parametrize("value", ["0", "-5", "1:2:3:4", "three days"])
def test_a_bad_time_is_a_one_line_usage_error(value, capsys):
    from tests.helpers import load_tool

    with pytest.raises(SystemExit) as e:
        load_tool("tools/submit.py").main(["--time", value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"{value!r} is not a time limit" in err and "D-HH:MM:SS" in err


def test_without_slurm_submit_says_so_instead_of_running_jobs_here(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    python_dir = os.path.dirname(os.path.realpath(__import__("sys").executable))
    monkeypatch.setenv("PATH", f"{empty}{os.pathsep}{python_dir}")  # no srun on PATH
    out = tmp_path / "run"
    proc = run_tool("submit.py", "--nodes", "1", "--gpus-per-node", "8", "OUTPUT_DIR", out, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert (
        "SLURM is not available on this machine (no srun on PATH)" in proc.stderr and "--cluster local" in proc.stderr
    )
    assert not (out / "submitit").exists()  # nothing was submitted
    # --cluster local runs the job here: the GPUs it asks for must be here
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    proc = run_tool("submit.py", "--cluster", "local", "--gpus-per-node", "8", "OUTPUT_DIR", out, check=False)
    assert proc.returncode == 2 and "NUM_GPUS = 8 but this machine has" in proc.stderr
    assert not (out / "submitit").exists()
