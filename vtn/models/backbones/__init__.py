"""2D spatial backbones (paper sec. 3.1): one feature vector per frame.

A backbone is an `nn.Module` mapping `(N, C, H, W)` frames to `(N, D)` features, with `feature_dim = D`
and `family` ("transformer" or "cnn", which sets the derived Longformer FFN size). The paper's six
backbones are registered in `timm_backbones.py`; any other timm model name works through the same path.
"""

from vtn.models.backbones import timm_backbones  # noqa: F401  (registers the paper's backbones)
from vtn.models.backbones.registry import (
    BACKBONE_REGISTRY,
    PretrainedWeightsError,
    backbone_exists,
    backbone_weights,
    build_backbone,
    known_backbone_names,
    set_backbone_grad_checkpointing,
)

__all__ = [
    "BACKBONE_REGISTRY",
    "PretrainedWeightsError",
    "build_backbone",
    "backbone_exists",
    "backbone_weights",
    "known_backbone_names",
    "set_backbone_grad_checkpointing",
]
