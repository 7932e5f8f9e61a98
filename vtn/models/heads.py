"""Classification heads on the final [CLS] state (paper sec. 3.3)."""

import torch.nn as nn

from vtn.config import register_choices
from vtn.utils.registry import Registry

HEAD_REGISTRY = Registry("head")
register_choices("VTN.HEAD", HEAD_REGISTRY.names)


@HEAD_REGISTRY.register_as("mlp")
class MLPHead(nn.Sequential):
    """LayerNorm -> Linear -> GELU -> Dropout -> Linear.

    Built as a Sequential so that its state-dict keys are `0.*` (norm), `1.*` and `4.*` (linears), the
    layout of the authors' released `mlp_head`.
    """

    def __init__(self, in_dim: int, mlp_dim: int, num_classes: int, dropout: float):
        super().__init__(
            nn.LayerNorm(in_dim),
            nn.Linear(in_dim, mlp_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_dim, num_classes),
        )


def build_head(cfg, in_dim: int) -> nn.Module:
    mlp_dim = cfg.VTN.MLP_DIM or in_dim
    return HEAD_REGISTRY.get(cfg.VTN.HEAD)(in_dim, mlp_dim, cfg.MODEL.NUM_CLASSES, cfg.VTN.HEAD_DROPOUT)
