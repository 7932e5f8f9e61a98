"""Training steps for the preflight: the trainer it measures with, a few real steps timed through the trainer's
public step (`Trainer.run_step` with `synchronize_timings` on) and their summary (median step time and its split
into data wait, forward and backward, optimizer; the data wait by rank as a training run's log has it)."""

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from vtn.engine.data_wait import WaitWindow, gather_by_rank
from vtn.engine.hooks import LRScheduler
from vtn.engine.lr_policy import set_lr
from vtn.engine.trainer import Trainer
from vtn.launch.preflight.collectives import max_over_ranks, sum_over_ranks
from vtn.launch.preflight.failures import is_out_of_memory, out_of_memory_failure
from vtn.launch.preflight.timing import peak_memory_bytes, reset_peak_memory


class PreflightTrainer(Trainer):
    """The Trainer with only the learning-rate hook (no metrics file, checkpoint or validation hook), its step
    timings synchronised with the device."""

    synchronize_timings = True

    def build_hooks(self) -> list:
        return [LRScheduler(self.lr_policy, set_lr)]


def preflight_config(cfg, scratch_dir: str):
    """A clone of `cfg` the trainer may use without touching the run: OUTPUT_DIR is `scratch_dir` and nothing is
    resumed (TRAIN.CHECKPOINT_FILE_PATH is still loaded, so a bad path is caught)."""
    clone = cfg.clone()
    clone.defrost()
    clone.OUTPUT_DIR = scratch_dir
    clone.TRAIN.AUTO_RESUME = False
    clone.freeze()
    return clone


@dataclass
class StepTime:
    """Seconds of one measured step: all of it, its data wait, its optimizer step."""

    total: float
    data: float
    optimizer: float


def measure_steps(trainer: Trainer, steps: int) -> list[StepTime]:
    """`steps` training steps (over as many epochs as it takes) with the hooks around them, as the train loop
    runs them; each timed by the trainer (device synchronised when it is a PreflightTrainer)."""
    records = []
    for i in range(steps):
        epoch, it = divmod(i, trainer.epoch_iters)
        if it == 0:
            trainer.epoch = epoch
            trainer.before_epoch()
        trainer.iter = it
        trainer.before_step()
        timings = trainer.run_step()
        trainer.after_step()
        records.append(StepTime(timings.total, timings.data, timings.optimizer))
    return records


def warmup_steps(steps: int) -> int:
    """The first steps left out of the medians (worker start-up, allocator and cuDNN warm-up)."""
    return min(3, max(steps - 1, 0) // 2)


@dataclass
class StepSummary:
    """The median step and its split (seconds), which adds up to it."""

    step_time_s: float
    data_wait_s: float
    forward_backward_s: float
    optimizer_s: float


def summarize_steps(records: Sequence[StepTime], warmup: int) -> StepSummary:
    """The median step time over the steps after `warmup`, split into data wait, optimizer (it runs once per
    TRAIN.ACCUMULATION_STEPS steps) and forward and backward (the rest) in the proportions of their means, so that
    the split adds up and no part vanishes because the medians of the parts cross (a loaded machine, where the
    median data wait can reach the median step)."""
    kept = list(records[warmup:]) or list(records)
    step = statistics.median(r.total for r in kept)
    total = sum(r.total for r in kept)
    if total <= 0:
        return StepSummary(step, 0.0, step, 0.0)
    data = step * sum(r.data for r in kept) / total
    optimizer = step * sum(r.optimizer for r in kept) / total
    return StepSummary(step, data, max(step - data - optimizer, 0.0), optimizer)


def data_wait_result(trainer: Trainer, records: Sequence[StepTime], warmup: int) -> dict:
    """Every rank's data wait per step over the steps after `warmup`, as the training log writes it: lists by rank
    of data_wait_p50/p90/max/mean and data_wait_share, and slowest_rank (data_wait.py); collective over the
    ranks."""
    window = WaitWindow()
    for r in list(records[warmup:]) or list(records):
        window.add(r.data, r.total)
    return gather_by_rank(window, trainer.device)


def measure_training(trainer: Trainer, steps: int) -> tuple[list[StepTime], int, float]:
    """(step times, warm-up steps, peak memory in bytes, the most of any rank) of `steps` training steps; out of
    memory there is a PreflightFailure that says what to lower."""
    device = trainer.device
    reset_peak_memory(device)
    try:
        records = measure_steps(trainer, steps)
    except RuntimeError as e:
        if is_out_of_memory(e):
            raise out_of_memory_failure(trainer.batch_plan.per_process) from e
        raise
    return records, warmup_steps(steps), max_over_ranks(peak_memory_bytes(device), device)


def throughput_result(trainer: Trainer, s: StepSummary, loader_clips_per_s: float) -> dict:
    """The step time and its split, and the clips per second of the training (this process and all), of the model
    alone (forward, backward and optimizer) and of the loader alone; collective over the ranks."""
    per_process = trainer.batch_plan.per_process
    clips_per_s = per_process / s.step_time_s
    compute = s.forward_backward_s + s.optimizer_s
    return {
        "step_time_s": s.step_time_s,
        "data_wait_s": s.data_wait_s,
        "forward_backward_s": s.forward_backward_s,
        "optimizer_s": s.optimizer_s,
        "data_wait_fraction": s.data_wait_s / s.step_time_s if s.step_time_s > 0 else 0.0,
        "clips_per_s": clips_per_s,
        "clips_per_s_total": sum_over_ranks(clips_per_s, trainer.device),
        "model_clips_per_s": per_process / compute if compute > 0 else clips_per_s,
        "loader_clips_per_s": loader_clips_per_s,
    }
