"""Checkpoint formats: each registered reader turns a loaded checkpoint dict into our model state dict.

`to_vtn_state` tries the readers in registration order and takes the first that recognises the file; our
own and PySlowFast-style files (`model_state`, optional `module.` prefix) are the base case.
"""
from typing import Callable, Dict, List, Tuple

import torch

from vtn.engine.checkpoint import CheckpointError, model_state_from

# (name, recognises(data) -> bool, convert(data, path, cfg) -> state dict)
_FORMATS: List[Tuple[str, Callable, Callable]] = []


def register_format(name: str, recognises: Callable, convert: Callable) -> None:
    _FORMATS.append((name, recognises, convert))


def detect_format(data: Dict) -> str:
    for name, recognises, _ in _FORMATS:
        if recognises(data):
            return name
    return "vtn"


def to_vtn_state(data: Dict, path: str, cfg=None) -> Dict[str, torch.Tensor]:
    for name, recognises, convert in _FORMATS:
        if recognises(data):
            return convert(data, path, cfg)
    return model_state_from(data, path)


__all__ = ["register_format", "detect_format", "to_vtn_state", "CheckpointError"]
