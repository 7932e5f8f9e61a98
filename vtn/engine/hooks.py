"""The hooks of the default trainer (trainer.py builds them in `build_hooks`, in this order):

- `LRScheduler`: the learning rate of every step, from the fractional epoch (the trainer's LR policy).
- `MetricsWriter`: training statistics with one host sync per log line (and the loss check with it), one
  human line and one JSON line every LOG_PERIOD steps (sooner by LOG_SECONDS), the epoch summary, TensorBoard
  scalars; each rank's data wait per step (p50/p90/max, the slowest rank: data_wait.py) in the same gather.
- `EvalHook`: validation every TRAIN.EVAL_PERIOD epochs (and after the last one), keeping the best checkpoint.
- `PeriodicCheckpointer`: a checkpoint every TRAIN.CHECKPOINT_ITERS steps inside an epoch and every
  TRAIN.CHECKPOINT_PERIOD epochs (and after the last one), after the epoch's validation.

A step the trainer skipped (a non-finite loss under TRAIN.MAX_BAD_STEPS) has no `step_output`: the hooks leave it
out. Hooks of a project subclass `HookBase`; registered in HOOK_REGISTRY (`f(cfg) -> HookBase`), they are added
after these by naming them in TRAIN.HOOKS, or a Trainer subclass adds them in `build_hooks`.
"""

import logging
from typing import Callable, Optional

import torch

from vtn.config import register_check
from vtn.engine import distributed as du
from vtn.engine.meters import TrainMeter, format_stats
from vtn.engine.train_loop import HookBase
from vtn.utils.errors import ConfigError
from vtn.utils.logging import log_json_stats
from vtn.utils.registry import Registry, did_you_mean

logger = logging.getLogger(__name__)

HOOK_REGISTRY = Registry("hook")
HOOK_REGISTRY.__doc__ = "Builders `f(cfg) -> HookBase` of hooks that TRAIN.HOOKS adds to a training run."


@register_check
def check_hook_names(cfg) -> None:
    """Every name of TRAIN.HOOKS is a registered hook (checked when a config is loaded)."""
    for name in cfg.TRAIN.HOOKS:
        if name not in HOOK_REGISTRY:
            raise ConfigError(
                f"TRAIN.HOOKS names {name!r}, which is not a registered hook (registered: "
                f"{', '.join(HOOK_REGISTRY.names()) or 'none'}; a project registers its own in HOOK_REGISTRY and "
                "loads them with --import)." + did_you_mean(name, HOOK_REGISTRY.names())
            )


class LRScheduler(HookBase):
    """Sets the learning rate of every step: `policy(epoch + iter / epoch_iters)`, where `iter` is the first
    iteration of the step's accumulation window (so that N processes and one process accumulating N iterations
    take each optimizer step at the same point of the schedule)."""

    def __init__(self, policy: Callable[[float], float], set_lr: Callable):
        self.policy, self.set_lr = policy, set_lr

    def before_epoch(self) -> None:
        t = self.trainer
        t.lr = self.policy(t.epoch + t.first_iter(t.epoch) / t.epoch_iters)

    def before_step(self) -> None:
        t = self.trainer
        window = getattr(t, "accumulation", 1)
        t.lr = self.policy(t.epoch + (t.iter - t.iter % window) / t.epoch_iters)
        self.set_lr(t.optimizer, t.lr)


class MetricsWriter(HookBase):
    """Loss, accuracy and times of the steps, gathered from the processes once per log line: every LOG_PERIOD
    steps, and sooner when that would take longer than LOG_SECONDS at the step time measured so far (a slow or
    loaded machine still shows progress). The step time is the mean over processes, so every process agrees on when
    the next line (and its gather) comes. Each rank's data wait travels in the same gather: the JSON line and
    TensorBoard have it by rank (data_wait_p50/p90/max/mean, slowest_rank; data_wait_share in the epoch summary),
    the human line the worst rank's figures and the slowest rank when one passes the margin of data_wait.py."""

    def __init__(self, log_period: int, tensorboard=None, log_seconds: float = 0.0):
        self.log_period = log_period
        self.log_seconds = log_seconds
        self.tb = tensorboard
        self.meter: Optional[TrainMeter] = None
        self.next_log = log_period  # the step count (of the epoch) of the next log line

    def before_train(self) -> None:
        t = self.trainer
        self.meter = TrainMeter(t.epoch_iters, t.max_epoch, t.device)

    def before_epoch(self) -> None:
        self.next_log = self._after(self.trainer.first_iter(self.trainer.epoch))

    def _after(self, done: int) -> int:
        """The step count of the line after one at `done` steps: the next multiple of LOG_PERIOD, or sooner by
        LOG_SECONDS."""
        regular = (done // self.log_period + 1) * self.log_period
        step = self.meter.step_seconds if self.meter is not None else 0.0
        if self.log_seconds > 0 and step > 0:
            return min(regular, done + max(1, int(self.log_seconds // step)))
        return regular

    def after_step(self) -> None:
        t, out = self.trainer, self.trainer.step_output
        if out is None:
            return
        self.meter.update(
            out["loss"], out["logits"], out["labels"], out["decode_failures"], out["data_time"], out["iter_time"]
        )
        done = t.iter + 1
        if done >= self.next_log or done == t.epoch_iters:
            t.check_finite()
            mem = torch.cuda.max_memory_allocated() / 2**30 if t.device.type == "cuda" else None
            self.emit(self.meter.log_iter(t.epoch, t.iter, t.lr, mem), "train", t.epoch * t.epoch_iters + done)
            self.next_log = self._after(done)

    def after_epoch(self) -> None:
        t = self.trainer
        t.check_finite()
        stats = self.meter.log_epoch(t.epoch, t.lr)
        first = t.first_iter(t.epoch)
        if first:  # resumed mid-epoch: the summary covers the iterations of this run
            stats["iters"] = f"{first + 1}-{t.epoch_iters} (resumed mid-epoch)"
        self.emit(stats, "train_epoch", (t.epoch + 1) * t.epoch_iters)

    def emit(self, stats: dict, prefix: str, step: int) -> None:
        """One human line in the log, one JSON line in OUTPUT_DIR/json_stats.log, TensorBoard scalars."""
        if not du.is_master():
            return
        logger.info("%s: %s", stats.get("_type", prefix), format_stats(stats))
        log_json_stats(stats, self.trainer.output_dir)
        if self.tb is not None:
            self.tb.add_scalars(stats, step, prefix)

    def after_train(self) -> None:
        if self.tb is not None:
            self.tb.close()


class PeriodicCheckpointer(HookBase):
    """Checkpoints inside epochs (every `iters` steps, 0: none) and after every `period` epochs and the last."""

    def __init__(self, period: int, iters: int):
        self.period, self.iters = period, iters

    def after_step(self) -> None:
        t = self.trainer
        done = t.iter + 1
        if t.step_output is not None and self.iters and done % self.iters == 0 and done < t.epoch_iters:
            t.check_finite()
            t.save(t.epoch, done)

    def after_epoch(self) -> None:
        t = self.trainer
        done = t.epoch + 1
        if done % self.period == 0 or done == t.max_epoch:
            t.last_checkpoint = t.save(done, 0)


class EvalHook(HookBase):
    """Validation every `period` epochs and after the last; the weights of the best top-1 so far are kept as the
    best checkpoint. It runs before PeriodicCheckpointer, so that the epoch's checkpoint holds the best top-1 this
    validation found (a run resumed from it compares the next epochs with it)."""

    def __init__(self, period: int, evaluate: Callable, emit: Callable):
        self.period, self.evaluate, self.emit = period, evaluate, emit

    def after_epoch(self) -> None:
        t = self.trainer
        done = t.epoch + 1
        if done % self.period and done != t.max_epoch:
            return
        model = t.ema.module if t.ema is not None else t.model
        metrics, protocol = self.evaluate(model)
        stats = {
            "_type": "val_epoch",
            "epoch": f"{done}/{t.max_epoch}",
            "epoch_float": float(done),
            "top1_err": 100.0 - metrics["top1"],
            "top5_err": 100.0 - metrics["top5"],
            "mean_class_acc": metrics["mean_class_acc"],
            "num_failed": metrics["num_failed"],
            "protocol": protocol,
        }
        improved = t.best_metric is None or metrics["top1"] > t.best_metric
        if improved:
            t.best_metric = metrics["top1"]
        stats["best_top1"] = t.best_metric
        self.emit(stats, "val", done * t.epoch_iters)
        if improved:
            t.save_best()
