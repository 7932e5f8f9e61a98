"""Checkpoint formats: each registered reader turns a loaded checkpoint dict into our model state dict.

`to_vtn_state` tries the readers in registration order and takes the first that recognises the file; our
own and PySlowFast-style files (`model_state`, optional `module.` prefix) are the base case.

The authors' release (`VTN_VIT_B_KINETICS.pyth`, from their PySlowFast fork) is a dict with `epoch`,
`model_state`, `optimizer_state` and `cfg`. Its `model_state` already uses our layout (`cls_token`,
`backbone.*` timm ViT keys, `temporal_encoder.embeddings.*`, `temporal_encoder.encoder.layer.*`,
`mlp_head.{0,1,4}`) plus a `temporal_encoder.embeddings.position_ids` buffer and, in some timm versions,
the backbone's own classifier; both are dropped. Its behaviour (window 18, a 286 + 2 row position table
indexed modulo 286, mean/std 0.45/0.225, a 768-d head with dropout 0.5) is the config
`configs/Kinetics/VIT_B_VTN_RELEASE.yaml`.
"""

import logging
from typing import Callable

import torch

from vtn.engine.checkpoint import FORMAT, CheckpointError, model_state_from

logger = logging.getLogger(__name__)

# (name, recognises(data) -> bool, convert(data, path, cfg) -> state dict)
_FORMATS: list[tuple[str, Callable, Callable]] = []

RELEASE_DROPPED_PREFIXES = ("temporal_encoder.embeddings.position_ids", "backbone.head.", "backbone.pre_logits.")


def register_format(name: str, recognises: Callable, convert: Callable) -> None:
    _FORMATS.append((name, recognises, convert))


def detect_format(data: dict) -> str:
    for name, recognises, _ in _FORMATS:
        if recognises(data):
            return name
    return "vtn"


def to_vtn_state(data: dict, path: str, cfg=None) -> dict[str, torch.Tensor]:
    for name, recognises, convert in _FORMATS:
        if recognises(data):
            logger.info("%s is a '%s' checkpoint; converting its weights", path, name)
            return convert(data, path, cfg)
    return model_state_from(data, path)


# ----------------------------------------------------------------------------- the authors' release
def _is_release(data: dict) -> bool:
    state = data.get("model_state")
    if data.get("format") == FORMAT or not isinstance(state, dict):
        return False
    keys = [k[len("module.") :] if k.startswith("module.") else k for k in state]
    return "cls_token" in keys and any(k.startswith("temporal_encoder.encoder.layer.") for k in keys)


def release_to_vtn(data: dict, path: str, cfg=None) -> dict[str, torch.Tensor]:
    state = model_state_from(data, path)
    dropped = [k for k in state if k.startswith(RELEASE_DROPPED_PREFIXES)]
    if dropped:
        logger.info("%s: dropping %d tensors VTN does not use: %s", path, len(dropped), ", ".join(dropped))
    return {k: v for k, v in state.items() if k not in dropped}


def vtn_to_release(state: dict[str, torch.Tensor], epoch: int, cfg_text: str) -> dict:
    """Our weights in the release's file layout (with the position_ids buffer transformers keeps)."""
    out = dict(state)
    table = state.get("temporal_encoder.embeddings.position_embeddings.weight")
    if table is None:
        raise CheckpointError("only a model with a learned position table (VTN.POS_EMBED learned) has a release layout")
    out["temporal_encoder.embeddings.position_ids"] = torch.arange(table.shape[0]).unsqueeze(0)
    return {"epoch": epoch, "model_state": out, "optimizer_state": None, "cfg": cfg_text}


register_format("authors_release", _is_release, release_to_vtn)

__all__ = ["register_format", "detect_format", "to_vtn_state", "release_to_vtn", "vtn_to_release", "CheckpointError"]
