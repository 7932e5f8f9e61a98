"""What a batch feeds the model: the item keys that are model inputs, passed to it by name.

A video item carries `frames (C, T, H, W)`; a feature-cache item carries `embeddings (T, D)` instead (see
vtn/datasets/features.py). Both carry `frame_idx (T,)`. The model's forward takes these names as keyword
arguments and runs the backbone only for frames, so the train and test loops never ask which kind of item
they hold: a new kind of input is a new key here and a new argument of the model.
"""

import torch

# item key -> keyword argument of the model's forward
MODEL_INPUT_KEYS = ("frames", "embeddings", "frame_idx", "valid")


def model_inputs(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The model's keyword arguments of a collated batch, on `device`."""
    return {k: batch[k].to(device, non_blocking=True) for k in MODEL_INPUT_KEYS if k in batch}
