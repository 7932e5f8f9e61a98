"""The training loop as a short skeleton with hooks (the idea of detectron2's TrainerBase, in our own words).

`TrainerBase.train` runs epochs of steps: `before_train`, then per epoch `before_epoch`, per step `before_step`,
`run_step`, `after_step`, then `after_epoch`, and at the end `after_train`. What happens around the steps (the
learning rate, logging, checkpoints, validation, a loss check) lives in hooks (`HookBase` subclasses, see
hooks.py), each told the trainer it serves; a project adds behaviour with `register_hooks`, not by editing the
loop. `run_step` is the one thing a subclass must define (see trainer.py for the VTN step, which returns its
`StepTimings`).

Positions: `epoch` is the index of the epoch in progress (0-based), `iter` the index of the step in it;
`start_epoch` / `start_iter` say where a resumed run continues.
"""

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional


@dataclass
class StepTimings:
    """Seconds of one training step, host clock: `data` waiting for the batch (from the end of the previous step's
    hooks; about 0 for a batch handed to the step), `forward_backward` the inputs' transfer, mixup, forward, loss
    and backward, `optimizer` the optimizer step (about 0 on a step that only accumulates), `total` their sum.
    They are the device's times only when the trainer synchronises for them (Trainer.synchronize_timings);
    otherwise the device may still be working on a part when its clock stops."""

    data: float
    forward_backward: float
    optimizer: float
    total: float


class HookBase:
    """A hook: override any of the six methods; `self.trainer` is the trainer it is registered with."""

    trainer: "TrainerBase" = None

    def before_train(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def before_epoch(self) -> None:
        pass

    def after_epoch(self) -> None:
        pass

    def before_step(self) -> None:
        pass

    def after_step(self) -> None:
        pass


class TrainerBase:
    """Epochs of `run_step` with hooks around them. Subclasses set `epoch_iters` and `max_epoch`."""

    def __init__(self):
        self._hooks: list[HookBase] = []
        self.epoch = self.iter = 0
        self.start_epoch = self.start_iter = 0
        self.epoch_iters = 0
        self.max_epoch = 0

    def register_hooks(self, hooks: Sequence[Optional[HookBase]]) -> None:
        """Add hooks (None entries are skipped); they run in the order registered."""
        for hook in hooks:
            if hook is None:
                continue
            hook.trainer = weakref.proxy(self)  # no reference cycle between the trainer and its hooks
            self._hooks.append(hook)

    @property
    def hooks(self) -> list[HookBase]:
        return list(self._hooks)

    def first_iter(self, epoch: int) -> int:
        """The first step of `epoch`: where a resumed run continues, else 0."""
        return self.start_iter if epoch == self.start_epoch else 0

    def train(self) -> None:
        """The remaining epochs, from `start_epoch` (and `start_iter` in it) to `max_epoch`."""
        self.before_train()
        try:
            for epoch in range(self.start_epoch, self.max_epoch):
                self.run_epoch(epoch)
        finally:
            self.after_train()

    def run_epoch(self, epoch: int) -> None:
        """One epoch of steps with the hooks around them (`train` calls it; benchmarks call it alone)."""
        self.epoch = epoch
        self.before_epoch()
        for it in range(self.first_iter(epoch), self.epoch_iters):
            self.iter = it
            self.before_step()
            self.run_step()
            self.after_step()
        self.after_epoch()

    def run_step(self) -> Optional[StepTimings]:
        """One step at position (`epoch`, `iter`); a subclass defines it (and may return the step's timings)."""
        raise NotImplementedError

    def before_train(self) -> None:
        for h in self._hooks:
            h.before_train()

    def after_train(self) -> None:
        for h in self._hooks:
            h.after_train()

    def before_epoch(self) -> None:
        for h in self._hooks:
            h.before_epoch()

    def after_epoch(self) -> None:
        for h in self._hooks:
            h.after_epoch()

    def before_step(self) -> None:
        for h in self._hooks:
            h.before_step()

    def after_step(self) -> None:
        for h in self._hooks:
            h.after_step()
