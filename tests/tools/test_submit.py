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
    from vtn.engine.slurm import SlurmJob

    cfg = tiny_cfg("OUTPUT_DIR", "/tmp/somewhere")
    again = SlurmJob(cfg, 12345).checkpoint()
    assert isinstance(again, submitit.helpers.DelayedSubmission)
    job = again.function
    assert isinstance(job, SlurmJob) and job.cfg.OUTPUT_DIR == "/tmp/somewhere" and cfg.TRAIN.AUTO_RESUME
