"""--find-batch: the largest per-process training batch that fits. On CUDA tried for real (doubling until out of
memory, then bisecting) through the trainer's public step with a given batch; on the CPU estimated from the peak
memory of two batch sizes against MemAvailable."""

import gc
from collections.abc import Callable

import torch

from vtn.engine.trainer import Trainer, synchronize
from vtn.launch.preflight.loader import batch_clips
from vtn.launch.preflight.timing import mem_available_bytes, peak_memory_bytes

FIND_BATCH_CAP = 4096  # --find-batch never tries more clips per process than this
MEMORY_SAFETY = 0.9  # the CPU estimate of --find-batch uses 90% of MemAvailable


def largest_fitting(fits: Callable[[int], bool], start: int, cap: int = FIND_BATCH_CAP) -> int:
    """The largest n <= cap with fits(n), assuming fits is monotone: double from `start` until it fails, then
    bisect. 0 when not even one clip fits."""
    lo, n = 0, max(1, min(start, cap))
    while fits(n):
        lo = n
        if n >= cap:
            return n
        n = min(2 * n, cap)
    hi = n
    if lo == 0 and hi > 1:  # `start` itself failed: look below it
        return largest_fitting(fits, 1, hi - 1) if fits(1) else 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def estimate_max_batch(batch: int, peak_at_batch: int, peak_at_double: int, available: int) -> int:
    """The CPU estimate of --find-batch: memory grows by (peak at 2b - peak at b) / b per clip; the largest batch
    whose growth over batch b fits in MEMORY_SAFETY of `available`. When no growth is measurable (the allocator
    kept the memory of the smaller batch) the answer is FIND_BATCH_CAP."""
    per_clip = (peak_at_double - peak_at_batch) / batch
    if per_clip <= 0:
        return FIND_BATCH_CAP
    return int(min(2 * batch + max(available * MEMORY_SAFETY, 0) / per_clip, FIND_BATCH_CAP))


def repeat_batch(batch: dict, clips: int) -> dict:
    """`batch` grown (or cut) to `clips` clips by repeating its clips."""
    size = batch_clips(batch)
    index = torch.arange(clips) % size
    out = {}
    for key, value in batch.items():
        if torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == size:
            out[key] = value[index]
        elif isinstance(value, list) and len(value) == size:
            out[key] = [value[i] for i in index.tolist()]
        else:
            out[key] = value
    return out


def one_step(trainer: Trainer, batch: dict) -> None:
    """One training step of `batch` with its optimizer step (as at the last step of an epoch), the device
    synchronised; nothing is left for the hooks."""
    trainer.model.train()
    trainer.iter = trainer.epoch_iters - 1  # the last step of an epoch always takes the optimizer step
    trainer.run_step(batch)
    synchronize(trainer.device)
    trainer.step_output = None


def free_device_memory(trainer: Trainer) -> None:
    """Drop the gradients and the last step's outputs, and give the cached CUDA memory back."""
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.step_output = None
    gc.collect()
    if trainer.device.type == "cuda":
        torch.cuda.empty_cache()


def find_batch(trainer: Trainer, template: dict) -> tuple[int, bool]:
    """(largest per-process training batch, whether it is an estimate). CUDA: tried for real, doubling until out
    of memory, then bisecting. CPU: estimated from the peak memory of one step at b and one at 2b against
    MemAvailable."""
    batch = trainer.batch_plan.per_process
    if trainer.device.type == "cuda":

        def fits(clips: int) -> bool:
            try:
                one_step(trainer, repeat_batch(template, clips))
                return True
            except torch.cuda.OutOfMemoryError:
                return False
            finally:
                free_device_memory(trainer)

        return largest_fitting(fits, batch), False
    one_step(trainer, repeat_batch(template, batch))
    at_batch = peak_memory_bytes(trainer.device)
    one_step(trainer, repeat_batch(template, 2 * batch))
    at_double = peak_memory_bytes(trainer.device)
    free_device_memory(trainer)
    available = mem_available_bytes() or 0
    return estimate_max_batch(batch, at_batch, at_double, available), True
