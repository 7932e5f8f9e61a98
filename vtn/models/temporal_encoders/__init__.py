"""Temporal attention-based encoders (paper sec. 3.2), chosen by VTN.TEMPORAL_ENCODER."""

from vtn.models.temporal_encoders import (
    longformer,  # noqa: F401  (registers "longformer")
    longformer_hf,  # noqa: F401  (registers "longformer_hf")
)
from vtn.models.temporal_encoders.base import (
    GLOBAL,
    LOCAL,
    PAD,
    TEMPORAL_ENCODER_REGISTRY,
    EncoderSpec,
    TemporalEncoder,
    build_temporal_encoder,
)

__all__ = [
    "TEMPORAL_ENCODER_REGISTRY",
    "TemporalEncoder",
    "EncoderSpec",
    "build_temporal_encoder",
    "PAD",
    "LOCAL",
    "GLOBAL",
]
