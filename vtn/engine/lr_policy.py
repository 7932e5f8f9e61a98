"""Learning-rate policies, set every optimizer step from the fractional epoch.

`steps_with_relative_lrs` (the paper's schedule for ViT-VTN): BASE_LR x LRS[i] from epoch STEPS[i].
`cosine` (R50/101-VTN): from BASE_LR at epoch 0 to COSINE_END_LR at MAX_EPOCH.
A linear warmup from WARMUP_START_LR to the policy's value at WARMUP_EPOCHS replaces the start of either.
"""

import bisect
import math

from vtn.config import register_choices
from vtn.utils.registry import Registry

LR_POLICY_REGISTRY = Registry("LR policy")
register_choices("SOLVER.LR_POLICY", LR_POLICY_REGISTRY.names)


@LR_POLICY_REGISTRY.register_as("steps_with_relative_lrs")
def lr_steps_with_relative_lrs(cfg, epoch: float) -> float:
    i = bisect.bisect_right(cfg.SOLVER.STEPS, epoch) - 1
    return cfg.SOLVER.BASE_LR * cfg.SOLVER.LRS[max(i, 0)]


@LR_POLICY_REGISTRY.register_as("cosine")
def lr_cosine(cfg, epoch: float) -> float:
    end, base = cfg.SOLVER.COSINE_END_LR, cfg.SOLVER.BASE_LR
    progress = min(epoch / cfg.SOLVER.MAX_EPOCH, 1.0)
    return end + (base - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def unreached_steps(cfg) -> list:
    """SOLVER.STEPS entries the run never reaches (at or after SOLVER.MAX_EPOCH) under the steps policy."""
    if cfg.SOLVER.LR_POLICY != "steps_with_relative_lrs":
        return []
    return [s for s in cfg.SOLVER.STEPS if s >= cfg.SOLVER.MAX_EPOCH]


def get_lr_at_epoch(cfg, epoch: float) -> float:
    """The learning rate at a fractional epoch (e.g. 2.5 = half-way through the third epoch)."""
    policy = LR_POLICY_REGISTRY.get(cfg.SOLVER.LR_POLICY)
    warmup = cfg.SOLVER.WARMUP_EPOCHS
    if epoch < warmup:
        start, target = cfg.SOLVER.WARMUP_START_LR, policy(cfg, warmup)
        return start + (target - start) * epoch / warmup
    return policy(cfg, epoch)


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
