"""No per-step host synchronisation in the training loop: between log lines, the trainer and the meters never
turn a tensor into a Python number (on a GPU each such conversion waits for the device)."""

import os

import pytest
import torch

from tests.helpers import TINY_MODEL_OPTS, synthetic_opts
from vtn.config import load_config

CONVERSIONS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__")


def _from_the_engine(frame) -> bool:
    """Whether a call stack runs engine code (any file of vtn/engine, at any depth) outside data loading."""
    engine = False
    while frame is not None:
        name = frame.f_code.co_filename.replace(os.sep, "/")
        if "/vtn/datasets/" in name or "/torch/utils/data/" in name:
            return False  # the loader's own CPU work, not a device sync
        engine = engine or "/vtn/engine/" in name
        frame = frame.f_back
    return engine


@pytest.fixture
def conversions_from_engine(monkeypatch):
    """Counts tensor -> Python conversions made by engine code (the trainer, its hooks, the meters, the loss, the
    evaluator, ...), directly or through any library it calls."""
    import sys

    calls = []
    for name in CONVERSIONS:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _original=original, _name=name, **kwargs):
            frame = sys._getframe(1)
            if _from_the_engine(frame):
                calls.append(f"{_name} in {frame.f_code.co_filename}:{frame.f_code.co_name}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    return calls


@pytest.mark.parametrize("mixup", [False, True])
def test_training_steps_between_log_lines_do_not_sync(synthetic_dir, tmp_path, conversions_from_engine, mixup):
    from vtn.engine.hooks import MetricsWriter
    from vtn.engine.trainer import Trainer

    opts = (
        TINY_MODEL_OPTS
        + synthetic_opts(synthetic_dir)
        + ["OUTPUT_DIR", str(tmp_path), "TRAIN.EVAL_PERIOD", 0, "LOG_PERIOD", 1000, "TRAIN.BATCH_SIZE", 2]
        + ["MIXUP.ENABLE", mixup, "DATA.TRAIN_JITTER_SCALES", [32, 40]]
    )
    trainer = Trainer(load_config(None, opts))
    assert trainer.epoch_iters >= 3
    trainer.before_train()
    # the intended sync points: the finite-loss check, the log line, the epoch summary and the checkpoint
    metrics = next(h for h in trainer.hooks if isinstance(h, MetricsWriter))
    trainer.check_finite = lambda *a, **k: None
    metrics.meter.log_iter = metrics.meter.log_epoch = lambda *a, **k: {}
    metrics.emit = lambda *a, **k: None
    trainer.save = lambda *a, **k: None
    conversions_from_engine.clear()  # building the model converts CPU tensors (timm's drop-path rates)
    trainer.run_epoch(0)
    assert conversions_from_engine == []
    # the counter sees conversions made deep inside engine code, not only in its own lines
    metrics.meter.log_epoch = type(metrics.meter).log_epoch.__get__(metrics.meter)
    metrics.after_epoch()
    assert conversions_from_engine, "the epoch summary reduces and converts: the counter must see it"


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
