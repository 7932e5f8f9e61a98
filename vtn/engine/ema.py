"""Exponential moving average of the model weights (TRAIN.EMA_DECAY > 0)."""

import copy

import torch
import torch.nn as nn

from vtn.engine.distributed import unwrap


class ModelEMA:
    """`ema = decay * ema + (1 - decay) * weights` after every optimizer step; buffers are copied."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(unwrap(model)).eval()
        self.module.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        current = unwrap(model).state_dict()
        for name, ema_value in self.module.state_dict().items():
            value = current[name]
            if ema_value.dtype.is_floating_point:
                ema_value.mul_(self.decay).add_(value.detach(), alpha=1.0 - self.decay)
            else:
                ema_value.copy_(value)

    def state_dict(self):
        return self.module.state_dict()

    def load_state_dict(self, state):
        self.module.load_state_dict(state)
