"""Optimizers by registry, with parameter groups: no weight decay on norms, biases, tokens and position /
token-type embeddings (SOLVER.ZERO_WD_1D_PARAM), and an LR multiplier for the backbone
(SOLVER.BACKBONE_LR_SCALE)."""

import logging

import torch
import torch.nn as nn

from vtn.config import register_choices
from vtn.engine.distributed import unwrap
from vtn.utils.registry import Registry

logger = logging.getLogger(__name__)
OPTIMIZER_REGISTRY = Registry("optimizer")
register_choices("SOLVER.OPTIMIZING_METHOD", OPTIMIZER_REGISTRY.names)

# parameter names (substrings) that never get weight decay: learned tokens and embedding tables
NO_DECAY_NAMES = ("cls_token", "dist_token", "pos_embed", "position_embeddings", "token_type_embeddings")


def _no_decay(name: str, param: torch.Tensor, skip: set) -> bool:
    return param.ndim <= 1 or name in skip or any(key in name for key in NO_DECAY_NAMES)


def param_groups(model: nn.Module, cfg) -> list[dict]:
    """Up to four groups: {backbone, rest} x {decay, no decay}; each carries its `lr_scale`."""
    m = unwrap(model)
    skip = set()
    if hasattr(m.backbone, "no_weight_decay"):
        skip = {f"backbone.{n}" for n in m.backbone.no_weight_decay()}
    groups: dict[tuple, dict] = {}
    for name, p in m.named_parameters():
        if not p.requires_grad:
            continue
        backbone = name.startswith("backbone.")
        no_decay = cfg.SOLVER.ZERO_WD_1D_PARAM and _no_decay(name, p, skip)
        key = (backbone, no_decay)
        if key not in groups:
            groups[key] = {
                "params": [],
                "names": [],
                "weight_decay": 0.0 if no_decay else cfg.SOLVER.WEIGHT_DECAY,
                "lr_scale": cfg.SOLVER.BACKBONE_LR_SCALE if backbone else 1.0,
            }
        groups[key]["params"].append(p)
        groups[key]["names"].append(name)
    return [groups[k] for k in sorted(groups)]


@OPTIMIZER_REGISTRY.register_as("sgd")
def sgd(groups, cfg):
    s = cfg.SOLVER
    if s.NESTEROV and (s.MOMENTUM <= 0 or s.DAMPENING != 0):
        raise ValueError(
            f"SOLVER.NESTEROV True needs SOLVER.MOMENTUM > 0 and SOLVER.DAMPENING = 0 "
            f"(got {s.MOMENTUM} and {s.DAMPENING})."
        )
    return torch.optim.SGD(groups, lr=s.BASE_LR, momentum=s.MOMENTUM, dampening=s.DAMPENING, nesterov=s.NESTEROV)


@OPTIMIZER_REGISTRY.register_as("adamw")
def adamw(groups, cfg):
    return torch.optim.AdamW(groups, lr=cfg.SOLVER.BASE_LR, betas=tuple(cfg.SOLVER.BETAS))


def build_optimizer(model: nn.Module, cfg) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    for g in groups:
        logger.info(
            "param group: %d tensors, weight decay %g, lr x %g (e.g. %s)",
            len(g["params"]),
            g["weight_decay"],
            g["lr_scale"],
            ", ".join(g["names"][:3]),
        )
    # the optimizer keeps only the torch-relevant keys; names stay in our log
    clean = [{k: v for k, v in g.items() if k != "names"} for g in groups]
    return OPTIMIZER_REGISTRY.get(cfg.SOLVER.OPTIMIZING_METHOD)(clean, cfg)
