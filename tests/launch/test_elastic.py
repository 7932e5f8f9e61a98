"""Elastic restarts: under `torchrun --max-restarts 1`, a worker killed with SIGKILL mid-epoch makes torchrun
restart the whole group; the new group resumes from the newest checkpoint (TRAIN.AUTO_RESUME, mid-epoch
checkpoints every TRAIN.CHECKPOINT_ITERS steps) and ends with the weights of a run that was never interrupted."""

import os

import pytest
import torch

from tests.helpers import assert_same, run_opts, run_torchrun
from vtn.engine.checkpoint import checkpoint_dir, load_checkpoint_file, rng_state_of_rank

# A test-only hook, loaded with --import and named in TRAIN.HOOKS (the project's extension mechanism): on the rank
# and global step of VTN_TEST_KILL ("RANK:STEP"), in the first attempt of torchrun only, it leaves a marker file
# and kills its own process with SIGKILL (no clean-up, no goodbye to the other rank).
KILL_HOOK = """
import os
import signal

from vtn.engine import distributed as du
from vtn.engine.hooks import HOOK_REGISTRY
from vtn.engine.train_loop import HookBase


class KillOnce(HookBase):
    def after_step(self):
        spec = os.environ.get("VTN_TEST_KILL", "")
        if not spec or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
            return
        rank, step = (int(x) for x in spec.split(":"))
        t = self.trainer
        if du.get_rank() == rank and t.epoch * t.epoch_iters + t.iter + 1 == step:
            open(os.environ["VTN_TEST_KILL_MARK"], "w").write(f"epoch {t.epoch} iter {t.iter}")
            os.kill(os.getpid(), signal.SIGKILL)


@HOOK_REGISTRY.register_as("test_kill_once")
def build_kill_once(cfg):
    return KillOnce()
"""

OPTS = [
    "SOLVER.MAX_EPOCH",
    "2",
    "TRAIN.CHECKPOINT_ITERS",
    "1",
    "TRAIN.CHECKPOINT_KEEP",
    "0",
    "TEST.ENABLE",
    "False",
    "TRAIN.EVAL_PERIOD",
    "0",
    "TRAIN.BATCH_SIZE",
    "4",
    "DATA_LOADER.NUM_WORKERS",
    "0",
    "VTN.HIDDEN_DROPOUT",
    "0.1",  # dropout on: the restored RNG states matter
    "VTN.HEAD_DROPOUT",
    "0.3",
    "TRAIN.HOOKS",
    '["test_kill_once"]',
    "DIST_TIMEOUT",
    "60",  # a group that cannot form fails in a minute instead of hanging for torch's 30
]


def _torchrun(hook_file, synthetic_dir, out, **env):
    proc = run_torchrun(
        "run_net.py",
        "--import",
        hook_file,
        *run_opts(synthetic_dir, out, *OPTS),
        torchrun_args=["--max-restarts", 1],
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_worker_killed_mid_epoch_restarts_the_group_which_resumes_to_the_same_weights(synthetic_dir, tmp_path):
    hook_file = str(tmp_path / "kill_once.py")
    with open(hook_file, "w") as f:
        f.write(KILL_HOOK)
    reference = str(tmp_path / "reference")
    _torchrun(hook_file, synthetic_dir, reference)

    out = str(tmp_path / "killed")
    mark = str(tmp_path / "killed.txt")
    # 12 training videos, 4 per step over 2 processes: 3 steps an epoch; step 5 is the middle of the second epoch
    log = _torchrun(hook_file, synthetic_dir, out, VTN_TEST_KILL="1:5", VTN_TEST_KILL_MARK=mark)
    assert open(mark).read() == "epoch 1 iter 1"  # rank 1 did die there, once
    assert "Resuming from" in log, log[-3000:]  # torchrun restarted the group, which continued from a checkpoint

    final = "checkpoint_epoch_00002.pyth"
    ref = load_checkpoint_file(os.path.join(checkpoint_dir(reference), final))
    got = load_checkpoint_file(os.path.join(checkpoint_dir(out), final))
    assert_same(got["model_state"], ref["model_state"], atol=1e-6)
    # each process resumed with its own random numbers (dropout), not rank 0's: the checkpoint holds both
    states = got["rng_states"]
    assert len(states) == 2 and not torch.equal(states[0]["torch"], states[1]["torch"])
    first = load_checkpoint_file(os.path.join(checkpoint_dir(reference), "checkpoint_epoch_00001.pyth"))
    moved = max((ref["model_state"][k] - first["model_state"][k]).abs().max() for k in first["model_state"])
    assert moved > 1e-4  # the second epoch did change the weights: the comparison is not vacuous


def test_each_rank_resumes_with_its_own_rng_state():
    own = {"rng_state": "rank 0's", "rng_states": ["rank 0's", "rank 1's"]}
    assert [rng_state_of_rank(own, r, 2) for r in (0, 1)] == ["rank 0's", "rank 1's"]
    older = {"rng_state": "rank 0's"}  # a checkpoint from before rng_states
    assert rng_state_of_rank(older, 1, 2) == "rank 0's"
    assert rng_state_of_rank(own, 1, 4) == "rank 0's"  # another number of processes: nothing better to give
