"""Training from shards in object storage, end to end: the tests' dataset written by tools/make_shards.py into a
bucket of a local S3-compatible server (moto, a real HTTP endpoint), trained by 2 gloo processes with loader
workers, killed with SIGKILL in the middle of an epoch and started again: the same weights as an uninterrupted run,
then tested from the shards with the fingerprint and counts of the local files."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO, assert_same, run_opts, run_tool, run_torchrun, synthetic_opts, tiny_cfg
from vtn.engine.checkpoint import checkpoint_dir, list_checkpoints, load_checkpoint_file

SHARD_OPTS = [
    "SOLVER.MAX_EPOCH", "2", "TRAIN.CHECKPOINT_ITERS", "1", "TRAIN.CHECKPOINT_KEEP", "0", "TRAIN.EVAL_PERIOD", "1",
    "DATA_LOADER.NUM_WORKERS", "2", "VTN.HIDDEN_DROPOUT", "0.1", "TRAIN.DATASET", "shards", "TEST.DATASET", "shards",
    "TEST.PROTOCOLS", '["multi_view"]',
]  # fmt: skip


def torchrun_cmd(opts):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
        os.path.join(REPO, "tools", "run_net.py"), *opts,
    ]  # fmt: skip


def kill_after(cmd, out, checkpoints, timeout=300):
    """Start `cmd` in its own session and SIGKILL the whole session once `out` holds `checkpoints` checkpoints."""
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + timeout
    while len(list_checkpoints(out)) < checkpoints and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    return killed


def last_weights(out):
    return load_checkpoint_file(os.path.join(checkpoint_dir(out), "checkpoint_epoch_00002.pyth"))["model_state"]


@pytest.mark.slow
def test_shards_in_a_bucket_train_on_two_processes_resume_exactly_and_test(synthetic_dir, s3_env, tmp_path):
    prefix = f"{s3_env}/synthetic"
    for split in ("train", "val", "test"):
        run_tool(
            "make_shards.py", "--split", split, "--output", f"{prefix}/{split}", "--shard-size-mb", "0.035",
            "--workers", "2", *synthetic_opts(synthetic_dir),
        )  # fmt: skip
    opts = run_opts(synthetic_dir, "OUT", *SHARD_OPTS, "DATA.PATH_TO_DATA_DIR", prefix)

    reference = str(tmp_path / "reference")
    proc = run_torchrun("run_net.py", *[reference if o == "OUT" else o for o in opts])
    assert proc.returncode == 0, proc.stderr[-3000:]

    out = str(tmp_path / "killed")
    mine = [out if o == "OUT" else o for o in opts]
    assert kill_after(torchrun_cmd(mine), out, checkpoints=2), "the run ended before it could be killed"
    assert 0 < len(list_checkpoints(out)) < 6  # killed in the middle of the first epochs
    proc = run_torchrun("run_net.py", *mine)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Resuming from" in proc.stdout + proc.stderr
    assert_same(last_weights(out), last_weights(reference))

    from vtn.datasets import build_dataset
    from vtn.engine.evaluator import dataset_fingerprint

    local = build_dataset(tiny_cfg(*synthetic_opts(synthetic_dir)), "test")
    with open(os.path.join(out, "test_results.json")) as f:
        results = json.load(f)
    assert results["num_listed"] == local.num_listed and results["num_videos"] == local.num_videos
    assert results["num_failed"] == 0
    assert results["dataset_fingerprint"] == dataset_fingerprint(local.paths, local.labels, synthetic_dir)
