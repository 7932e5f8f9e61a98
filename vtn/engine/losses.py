"""Training losses, chosen by MODEL.LOSS_FUNC. A loss is built from the config: `build_loss(cfg)` returns
`loss(logits (B, K), targets) -> scalar`, where targets are class ids (B,) or, with mixup / cutmix, soft
targets (B, K) (already smoothed by MIXUP.LABEL_SMOOTH_VALUE).

- `cross_entropy`: class ids or soft targets (torch's cross entropy takes both).
- `soft_target_cross_entropy`: the mean over the batch of -sum(target * log softmax(logits)); class ids count
  as one-hot targets (timm's SoftTargetCrossEntropy, the loss of DeiT's mixup recipe).
- `label_smoothing_cross_entropy`: cross entropy against targets smoothed by MODEL.LABEL_SMOOTHING (without
  mixup; mixup smooths its own targets).
"""

from typing import Callable

import torch
import torch.nn.functional as F

from vtn.config import register_check, register_choices
from vtn.utils.errors import ConfigError
from vtn.utils.registry import Registry

LOSS_REGISTRY = Registry("loss")
LOSS_REGISTRY.__doc__ = "Builders `f(cfg) -> loss(logits, targets)`."
register_choices("MODEL.LOSS_FUNC", LOSS_REGISTRY.names)

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_shapes(name: str, logits: torch.Tensor, targets: torch.Tensor) -> None:
    if targets.dim() == 2 and targets.shape != logits.shape:
        raise ValueError(
            f"{name}: logits {tuple(logits.shape)} and soft targets {tuple(targets.shape)} must have the same shape "
            "(B, NUM_CLASSES)"
        )


@LOSS_REGISTRY.register_as("cross_entropy")
def cross_entropy(cfg) -> Loss:
    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_shapes("cross_entropy", logits, targets)
        return F.cross_entropy(logits, targets)

    return loss


@LOSS_REGISTRY.register_as("soft_target_cross_entropy")
def soft_target_cross_entropy(cfg) -> Loss:
    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_shapes("soft_target_cross_entropy", logits, targets)
        if targets.dim() == 1:
            targets = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
        return torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()

    return loss


@LOSS_REGISTRY.register_as("label_smoothing_cross_entropy")
def label_smoothing_cross_entropy(cfg) -> Loss:
    smoothing = cfg.MODEL.LABEL_SMOOTHING

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_shapes("label_smoothing_cross_entropy", logits, targets)
        return F.cross_entropy(logits, targets, label_smoothing=smoothing)

    return loss


@register_check
def check_loss(cfg) -> None:
    """Label smoothing on top of mixup's already smoothed targets would smooth twice."""
    if cfg.MODEL.LOSS_FUNC == "label_smoothing_cross_entropy" and cfg.MIXUP.ENABLE:
        raise ConfigError(
            "MODEL.LOSS_FUNC = 'label_smoothing_cross_entropy' is not allowed with MIXUP.ENABLE True: mixup smooths "
            "its targets already (MIXUP.LABEL_SMOOTH_VALUE); use 'cross_entropy' or 'soft_target_cross_entropy'."
        )


def build_loss(cfg) -> Loss:
    """The loss named by MODEL.LOSS_FUNC."""
    return LOSS_REGISTRY.get(cfg.MODEL.LOSS_FUNC)(cfg)
