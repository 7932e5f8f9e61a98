"""Models: registries and builders for backbones, temporal encoders, position embeddings, heads and VTN."""

from vtn.models import vtn  # noqa: F401  (registers the VTN model)
from vtn.models.backbones import BACKBONE_REGISTRY, build_backbone
from vtn.models.build import MODEL_REGISTRY, build_model
from vtn.models.heads import HEAD_REGISTRY
from vtn.models.position_embeddings import POS_EMBED_REGISTRY
from vtn.models.temporal_encoders import TEMPORAL_ENCODER_REGISTRY

__all__ = [
    "build_model",
    "build_backbone",
    "MODEL_REGISTRY",
    "BACKBONE_REGISTRY",
    "HEAD_REGISTRY",
    "POS_EMBED_REGISTRY",
    "TEMPORAL_ENCODER_REGISTRY",
]
