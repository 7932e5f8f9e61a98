"""Temporal position embeddings (paper sec. 4.1 and Table 2b), chosen by VTN.POS_EMBED.

Each maps `frame_idx (B, T)` (each frame's index in the original video) to `(B, 1 + T, D)`: one row for
the [CLS] token in front, then one per frame.

- `learned`: a table indexed by the frame index. It has `VTN.MAX_POSITION_EMBEDDINGS` frame rows, then a
  row for [CLS] and a row reserved for padding (the authors' release uses the same layout: 286 + 2 rows).
  Indices beyond the table wrap (`VTN.POS_INDEX_MODE: modulo`) or saturate (`clamp`); for videos much longer
  than the table (hours at 1 fps) use `fixed`, which has no length limit.
- `fixed`: a sinusoid on the temporal axis in the manner of DETR (sin at even and cos at odd channels);
  [CLS] gets zeros. It differs from DETR's in two ways, both to keep it a drop-in for the learned table:
  it is evaluated at the raw frame index in the video (DETR normalises positions to [0, 2*pi] over the
  feature map), so a frame's code depends on its time in the video and not on the clip's length or
  sampling; and it is added once to the input tokens, as the learned table is (DETR adds its code to the
  queries and keys of every attention layer).
- `none`: zeros for every token.

In every variant the [CLS] token is also marked by its token-type embedding (`TokenEmbeddings` in
`temporal_encoders/base.py`).
"""

import math

import torch
import torch.nn as nn

from vtn.config import register_choices
from vtn.utils.registry import Registry

POS_EMBED_REGISTRY = Registry("position embedding")
register_choices("VTN.POS_EMBED", POS_EMBED_REGISTRY.names)


def _map_index(frame_idx: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    if mode == "modulo":
        return torch.remainder(frame_idx, size)
    return frame_idx.clamp(0, size - 1)


@POS_EMBED_REGISTRY.register_as("learned")
class LearnedPositionEmbedding(nn.Embedding):
    """A learned table; its state-dict key is `weight`, so the owner's key reads `position_embeddings.weight`."""

    def __init__(self, num_frames: int, dim: int, index_mode: str = "modulo"):
        super().__init__(num_frames + 2, dim)
        self.num_frames = num_frames
        self.index_mode = index_mode

    @property
    def cls_row(self) -> int:
        return self.num_frames

    def forward(self, frame_idx: torch.Tensor) -> torch.Tensor:
        ids = _map_index(frame_idx, self.num_frames, self.index_mode)
        cls = torch.full_like(ids[:, :1], self.cls_row)
        return super().forward(torch.cat([cls, ids], dim=1))


def sinusoid(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """(...,) float positions -> (..., dim): sin on even channels, cos on odd ones."""
    half = torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32)
    freqs = torch.exp(-math.log(temperature) * half / dim)
    angles = positions.float()[..., None] * freqs
    out = torch.zeros(*positions.shape, dim, device=positions.device)
    out[..., 0::2] = torch.sin(angles)
    out[..., 1::2] = torch.cos(angles[..., : dim // 2])
    return out


@POS_EMBED_REGISTRY.register_as("fixed")
class FixedPositionEmbedding(nn.Module):
    """Sinusoid of the frame index; no parameters, any length."""

    def __init__(self, num_frames: int, dim: int, index_mode: str = "modulo"):
        super().__init__()
        self.dim = dim

    def forward(self, frame_idx: torch.Tensor) -> torch.Tensor:
        frames = sinusoid(frame_idx, self.dim)
        return torch.cat([frames.new_zeros(frames.shape[0], 1, self.dim), frames], dim=1)


@POS_EMBED_REGISTRY.register_as("none")
class NoPositionEmbedding(nn.Module):
    """No temporal information; [CLS] is still marked by its token type."""

    def __init__(self, num_frames: int, dim: int, index_mode: str = "modulo"):
        super().__init__()
        self.dim = dim

    def forward(self, frame_idx: torch.Tensor) -> torch.Tensor:
        return torch.zeros(frame_idx.shape[0], frame_idx.shape[1] + 1, self.dim, device=frame_idx.device)


def build_position_embedding(cfg, dim: int) -> nn.Module:
    return POS_EMBED_REGISTRY.get(cfg.VTN.POS_EMBED)(cfg.VTN.MAX_POSITION_EMBEDDINGS, dim, cfg.VTN.POS_INDEX_MODE)
