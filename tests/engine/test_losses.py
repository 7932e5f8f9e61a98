import pytest
import torch
import torch.nn.functional as F

from tests.helpers import tiny_cfg
from vtn.config import ConfigError
from vtn.datasets.mixup import VideoMixup
from vtn.engine.losses import LOSS_REGISTRY, build_loss


def test_the_registry_has_the_three_losses_and_the_config_chooses_one():
    assert LOSS_REGISTRY.names() == ["cross_entropy", "label_smoothing_cross_entropy", "soft_target_cross_entropy"]
    with pytest.raises(ConfigError, match="MODEL.LOSS_FUNC = 'focal' is not one of"):
        tiny_cfg("MODEL.LOSS_FUNC", "focal")


def test_losses_on_class_ids_and_on_mixups_soft_targets():
    torch.manual_seed(0)
    logits = torch.randn(5, 7, requires_grad=True)
    labels = torch.tensor([0, 6, 2, 2, 5])
    _, soft = VideoMixup(prob=0.0, label_smoothing=0.1, num_classes=7)(torch.zeros(5, 3, 2, 8, 8), labels)
    smoothed = F.cross_entropy(logits, labels, label_smoothing=0.1)
    for name in ("cross_entropy", "soft_target_cross_entropy"):
        loss = build_loss(tiny_cfg("MODEL.LOSS_FUNC", name, "MODEL.NUM_CLASSES", 7))
        assert torch.allclose(loss(logits, soft), smoothed, atol=1e-6), name  # mixup's targets carry the smoothing
        assert torch.allclose(loss(logits, labels), F.cross_entropy(logits, labels), atol=1e-6), name
        with pytest.raises(ValueError, match="same shape"):
            loss(logits, soft[:, :6])
    ls = build_loss(tiny_cfg("MODEL.LOSS_FUNC", "label_smoothing_cross_entropy", "MODEL.LABEL_SMOOTHING", 0.2))
    assert torch.allclose(ls(logits, labels), F.cross_entropy(logits, labels, label_smoothing=0.2))
    ls(logits, labels).backward()
    assert logits.grad is not None


def test_label_smoothing_on_top_of_mixup_is_a_config_error():
    with pytest.raises(ConfigError, match="mixup smooths its targets already"):
        tiny_cfg("MODEL.LOSS_FUNC", "label_smoothing_cross_entropy", "MIXUP.ENABLE", True)


def test_the_trainer_uses_the_configured_loss(synthetic_dir, tmp_path, monkeypatch):
    from tests.helpers import synthetic_opts
    from vtn.engine import losses
    from vtn.engine.trainer import Trainer

    calls = []
    real = losses.LOSS_REGISTRY.get("soft_target_cross_entropy")

    def counted(cfg):
        loss = real(cfg)
        return lambda logits, targets: calls.append(1) or loss(logits, targets)

    monkeypatch.setitem(losses.LOSS_REGISTRY._obj_map, "soft_target_cross_entropy", counted)
    cfg = tiny_cfg(
        *synthetic_opts(synthetic_dir),
        "OUTPUT_DIR",
        str(tmp_path),
        "MODEL.LOSS_FUNC",
        "soft_target_cross_entropy",
        "SOLVER.MAX_EPOCH",
        1,
        "TRAIN.EVAL_PERIOD",
        0,
        "DATA.TRAIN_JITTER_SCALES",
        [32, 40],
    )
    Trainer(cfg).train()
    assert len(calls) == 3  # one per training step
