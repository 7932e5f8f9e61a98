"""No per-step host synchronisation in the training loop: between log lines, the trainer and the meters never
turn a tensor into a Python number (on a GPU each such conversion waits for the device)."""

import os

import pytest
import torch

from tests.helpers import TINY_MODEL_OPTS, synthetic_opts
from vtn.config import load_config

ENGINE = tuple(os.path.join("vtn", "engine", name) for name in ("trainer.py", "meters.py"))
CONVERSIONS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__")


@pytest.fixture
def conversions_from_engine(monkeypatch):
    """Counts tensor -> Python conversions whose caller is vtn/engine/trainer.py or meters.py."""
    import sys

    calls = []
    for name in CONVERSIONS:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_code
            if caller.co_filename.endswith(ENGINE):
                calls.append(f"{_name} in {caller.co_name}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    return calls


@pytest.mark.parametrize("mixup", [False, True])
def test_training_steps_between_log_lines_do_not_sync(synthetic_dir, tmp_path, conversions_from_engine, mixup):
    from vtn.engine.trainer import Trainer

    opts = (
        TINY_MODEL_OPTS
        + synthetic_opts(synthetic_dir)
        + [
            "OUTPUT_DIR",
            str(tmp_path),
            "TRAIN.EVAL_PERIOD",
            0,
            "LOG_PERIOD",
            1000,
            "TRAIN.BATCH_SIZE",
            2,
            "MIXUP.ENABLE",
            mixup,
            "DATA.TRAIN_JITTER_SCALES",
            [32, 40],
        ]
    )
    trainer = Trainer(load_config(None, opts))
    assert trainer.epoch_iters >= 3
    # the intended sync points: the log line, the finite-loss check and the epoch summary
    trainer._check_finite = lambda *a, **k: None
    trainer._log_iter = lambda *a, **k: None
    trainer.meter.log_epoch = lambda *a, **k: {}
    trainer._emit = lambda *a, **k: None
    trainer.train_epoch(0)
    assert conversions_from_engine == []


def test_mixup_checks_cpu_labels_and_returns_targets_on_the_frames_device():
    """The trainer hands the mixup the loader's CPU labels: its label range check reads no device memory. The
    meta device stands in for a GPU: reading a value from it fails, as a sync would cost on a GPU."""
    from vtn.datasets.mixup import VideoMixup

    mixup = VideoMixup(num_classes=5)
    frames = torch.zeros(4, 3, 2, 8, 8, device="meta")
    out, targets = mixup(frames, torch.tensor([0, 1, 2, 4]))
    assert out.device.type == "meta" and targets.device.type == "meta" and targets.shape == (4, 5)
    with pytest.raises(ValueError, match="NUM_CLASSES"):
        mixup(frames, torch.tensor([0, 1, 2, 5]))
