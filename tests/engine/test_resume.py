"""Exact resume: a run killed with SIGKILL at an arbitrary moment and started again with the same command
ends with the same weights as a run that was never interrupted; a 2-process run equals a 1-process run, and a
1-process run of a config written for 2 processes (SOLVER.REFERENCE_WORLD_SIZE)."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.helpers import REPO, assert_same, run_opts, run_tool, run_torchrun
from vtn.engine.checkpoint import checkpoint_dir, list_checkpoints, load_checkpoint_file

# dropout on, so that restoring the RNG state matters; workers on, so that their seeding matters
RESUME_OPTS = [
    "SOLVER.MAX_EPOCH",
    "3",
    "TRAIN.CHECKPOINT_ITERS",
    "1",
    "TEST.ENABLE",
    "False",
    "TRAIN.EVAL_PERIOD",
    "0",
    "VTN.HIDDEN_DROPOUT",
    "0.1",
    "VTN.HEAD_DROPOUT",
    "0.3",
    "DATA_LOADER.NUM_WORKERS",
    "2",
    "TRAIN.CHECKPOINT_KEEP",
    "0",
    "DATA.NUM_FRAMES",
    "6",
]


def final_weights(out):
    data = load_checkpoint_file(os.path.join(checkpoint_dir(out), "checkpoint_epoch_00003.pyth"))
    return data["model_state"], data["optimizer_state"]


@pytest.mark.slow
def test_kill_minus_nine_and_rerun_gives_identical_weights(synthetic_dir, tmp_path):
    reference = str(tmp_path / "reference")
    run_tool("run_net.py", *run_opts(synthetic_dir, reference, *RESUME_OPTS))
    ref_model, ref_opt = final_weights(reference)

    out = str(tmp_path / "killed")
    cmd = [sys.executable, os.path.join(REPO, "tools", "run_net.py"), *run_opts(synthetic_dir, out, *RESUME_OPTS)]
    env = dict(os.environ, PYTHONPATH=REPO)
    rng = random.Random(1234)
    kills = 0
    for target in (2, 5):  # kill twice: after a few checkpoints of the first and of the second epoch
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while len(list_checkpoints(out)) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.4))  # an arbitrary moment: mid-step, mid-save, or in the loader
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 1, "the run finished before it could be killed; make it longer"
    proc = run_tool("run_net.py", *cmd[2:])
    assert "Resuming from" in proc.stdout
    model, opt = final_weights(out)
    assert_same(model, ref_model)
    for k in ref_opt["state"]:
        assert torch.equal(opt["state"][k]["momentum_buffer"], ref_opt["state"][k]["momentum_buffer"])


@pytest.mark.slow
def test_two_gloo_processes_equal_one_with_the_same_global_batch(synthetic_dir, tmp_path):
    opts = [
        "SOLVER.MAX_EPOCH",
        "2",
        "TEST.ENABLE",
        "False",
        "TRAIN.EVAL_PERIOD",
        "0",
        "TRAIN.BATCH_SIZE",
        "4",
        "DATA_LOADER.NUM_WORKERS",
        "0",
        "VTN.HIDDEN_DROPOUT",
        "0.0",
        "VTN.HEAD_DROPOUT",
        "0.0",
        "VTN.ATTENTION_DROPOUT",
        "0.0",
    ]
    one = str(tmp_path / "one")
    run_tool("run_net.py", *run_opts(synthetic_dir, one, *opts))
    two = str(tmp_path / "two")
    proc = run_torchrun("run_net.py", *run_opts(synthetic_dir, two, *opts))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Processes: 2 (this is rank 0)" in proc.stdout
    assert "Effective batch: 2 per process x 2 processes" in proc.stdout
    a = load_checkpoint_file(os.path.join(checkpoint_dir(one), "checkpoint_epoch_00002.pyth"))["model_state"]
    b = load_checkpoint_file(os.path.join(checkpoint_dir(two), "checkpoint_epoch_00002.pyth"))["model_state"]
    assert_same(a, b, atol=1e-5)
    # a config written for the 2 processes (SOLVER.REFERENCE_WORLD_SIZE 2) on 1 process: 2 clips per iteration,
    # 2 accumulation steps, the LR of each optimizer step at the same point of the cosine schedule
    ref = str(tmp_path / "reference_2")
    proc = run_tool("run_net.py", *run_opts(synthetic_dir, ref, *opts, "SOLVER.REFERENCE_WORLD_SIZE", "2"))
    assert "Effective batch: 2 per process x 1 processes x 2 accumulation steps = 4 clips" in proc.stdout
    c = load_checkpoint_file(os.path.join(checkpoint_dir(ref), "checkpoint_epoch_00002.pyth"))["model_state"]
    assert_same(c, b, atol=1e-5)
    moved = max(
        (
            a[k]
            - load_checkpoint_file(os.path.join(checkpoint_dir(one), "checkpoint_epoch_00001.pyth"))["model_state"][k]
        )
        .abs()
        .max()
        for k in a
    )
    assert moved > 1e-4  # the weights did change: the comparison is not vacuous


def test_a_resumed_trainer_draws_the_random_numbers_its_checkpoint_was_saved_with(synthetic_dir, tmp_path):
    """The fast form of the resume tests above: a trainer that resumes from a checkpoint continues python's, numpy's
    and torch's generators from the states saved in it (dropout and mixup then draw what the interrupted run
    would have drawn), whatever building the trainer drew before."""
    import numpy as np

    from tests.helpers import synthetic_opts, tiny_cfg
    from vtn.engine.trainer import Trainer

    cfg = tiny_cfg(*synthetic_opts(synthetic_dir), "OUTPUT_DIR", str(tmp_path), "TRAIN.EVAL_PERIOD", 0)
    first = Trainer(cfg)
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    first.save(0, 1)  # one step into the first epoch

    def draws():
        return random.random(), np.random.rand(), torch.rand(3).tolist()

    expected = draws()
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    resumed = Trainer(cfg)
    assert (resumed.start_epoch, resumed.start_iter) == (0, 1)
    resumed.before_train()
    assert draws() == expected
