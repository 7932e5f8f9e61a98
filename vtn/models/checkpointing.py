"""Activation checkpointing (VTN.GRAD_CHECKPOINTING): keep fewer activations, recompute them in the backward pass.

Each component switches its own: `vtn.models.backbones.set_backbone_grad_checkpointing` (timm's per-block
checkpointing), `TemporalEncoder.set_grad_checkpointing` (per Longformer layer); `VTN.set_grad_checkpointing`
calls both. Everything goes through `checkpointed`, so the gradients are those of the plain forward, dropout and
stochastic depth included.
"""

import torch
import torch.utils.checkpoint


def checkpointed(function, *args, **kwargs):
    """`function(*args, **kwargs)` without keeping its activations: they are recomputed in the backward pass.

    Non-reentrant checkpointing with the RNG state preserved, so the recomputation draws the same dropout masks
    and the gradients equal those of the plain call; inputs and outputs may be any nesting of tensors. Under
    `torch.no_grad()` it is the plain call."""
    return torch.utils.checkpoint.checkpoint(function, *args, use_reentrant=False, preserve_rng_state=True, **kwargs)


def use_checkpointing(module: torch.nn.Module) -> bool:
    """Whether checkpointing can save anything now: the module trains and autograd records."""
    return module.training and torch.is_grad_enabled()
