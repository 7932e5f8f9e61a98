"""Preflight: run the real config on the real devices and data for a few steps, measure, and project the run.

`preflight_main` is what tools/preflight.py runs. Every process of the job (launched as tools/run_net.py's are)
builds a `PreflightTrainer` (the Trainer with no hook that writes anything, on a clone of the config whose
OUTPUT_DIR is a private temporary folder, AUTO_RESUME off) and measures: training steps (data wait, forward and
backward, optimizer step), the training loader alone, one or two batches of the validation and test inference,
one checkpoint save (into a temporary file of OUTPUT_DIR, deleted afterwards), a timed all-reduce, and peak
memory. The master prints a short report and writes OUTPUT_DIR/preflight.json; nothing else of OUTPUT_DIR is
touched. A failure the user must act on (out of memory, a disk too small, a rank that does not answer) raises
`PreflightFailure`: one line, exit status 1.
"""

import datetime
import gc
import logging
import os
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Optional

import torch
import torch.distributed as dist

from vtn.config import eval_batch_per_process
from vtn.datasets import build_loader, check_splits, shuffle_dataset
from vtn.engine import distributed as du
from vtn.engine.checkpoint import save_checkpoint
from vtn.engine.evaluator import run_inference
from vtn.engine.hooks import LRScheduler
from vtn.engine.lr_policy import set_lr
from vtn.engine.output_dir import checkpoints_kept
from vtn.engine.tester import test_runs
from vtn.engine.trainer import Trainer
from vtn.launch.processes import launch_job
from vtn.utils.files import TEMP_PREFIX, write_json_atomic
from vtn.utils.logging import setup_logging
from vtn.utils.rng import seed_everything

logger = logging.getLogger(__name__)

REPORT_FILE = "preflight.json"
DEFAULT_STEPS = 30  # training steps measured on a GPU
DEFAULT_CPU_STEPS = 8  # on the CPU (the demo config's preflight stays under a minute)
LOADER_BATCHES = 20  # at most this many batches time the loader alone
DATA_BOUND_MARGIN = 1.1  # the loader must give 10% more clips/s than the training takes to be out of the way
FIND_BATCH_CAP = 4096  # --find-batch never tries more clips per process than this
MEMORY_SAFETY = 0.9  # the CPU estimate of --find-batch uses 90% of MemAvailable


class PreflightFailure(RuntimeError):
    """A measured reason the run would fail (out of memory, disk too small, a rank that does not answer): the
    tool prints it as one line and exits with status 1."""


# ----------------------------------------------------------------------------- device timing
def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, func: Callable[[], object]) -> tuple[float, object]:
    """(seconds, result) of `func()`, with the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    result = func()
    synchronize(device)
    return time.perf_counter() - start, result


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int:
    """CUDA: the most memory allocated on `device` since the last reset; CPU: the process's peak RSS (Linux
    reports ru_maxrss in KiB)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def mem_available_bytes(meminfo: str = "/proc/meminfo") -> Optional[int]:
    """MemAvailable of /proc/meminfo in bytes (None where there is no such file)."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError)


def out_of_memory_failure(clips: int) -> PreflightFailure:
    return PreflightFailure(
        f"out of memory at {clips} clips per process: lower TRAIN.BATCH_SIZE, use VTN.GRAD_CHECKPOINTING True (if "
        "the backbone supports it) or TRAIN.MIXED_PRECISION True, raise TRAIN.ACCUMULATION_STEPS to keep the "
        "effective batch, or run tools/preflight.py with --find-batch"
    )


# ----------------------------------------------------------------------------- the trainer
class PreflightTrainer(Trainer):
    """The Trainer with only the learning-rate hook (no metrics file, checkpoint or validation hook) and its
    optimizer step timed (`optimizer_time` accumulates the seconds, device synchronised)."""

    optimizer_time = 0.0

    def build_hooks(self) -> list:
        return [LRScheduler(self.lr_policy, set_lr)]

    def _optimizer_step(self) -> None:
        seconds, _ = timed(self.device, super()._optimizer_step)
        self.optimizer_time += seconds


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
    total: float
    data: float
    optimizer: float


def measure_steps(trainer: Trainer, steps: int) -> list[StepTime]:
    """`steps` training steps (over as many epochs as it takes), each timed with the device synchronised."""
    records = []
    for i in range(steps):
        epoch, it = divmod(i, trainer.epoch_iters)
        if it == 0:
            trainer.epoch = epoch
            trainer.before_epoch()
        trainer.iter = it
        trainer.optimizer_time = 0.0

        def step():
            trainer.before_step()
            trainer.run_step()

        total, _ = timed(trainer.device, step)
        out = trainer.step_output
        trainer.after_step()
        data = min(out["data_time"], total) if out is not None else 0.0
        records.append(StepTime(total, data, trainer.optimizer_time))
    return records


def warmup_steps(steps: int) -> int:
    """The first steps left out of the medians (worker start-up, allocator and cuDNN warm-up)."""
    return min(3, max(steps - 1, 0) // 2)


@dataclass
class StepSummary:
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


# ----------------------------------------------------------------------------- the loader alone
def epochs_of_batches(loader) -> Iterator:
    """The batches of `loader` epoch after epoch, in the training order."""
    epoch = 0
    while True:
        shuffle_dataset(loader, epoch)
        yield from loader
        epoch += 1


def batch_clips(batch) -> int:
    return int(batch["label"].shape[0])


def measure_loader(loader, batches: int, warmup: int) -> float:
    """Clips per second of `loader` alone (no model), over `batches` batches after `warmup` ones."""
    iterator = epochs_of_batches(loader)
    for _ in range(warmup):
        next(iterator)
    start, clips = time.perf_counter(), 0
    for batch in islice(iterator, batches):
        clips += batch_clips(batch)
    seconds = time.perf_counter() - start
    iterator.close()
    return clips / max(seconds, 1e-9)


# ----------------------------------------------------------------------------- inference
class _NextBatches:
    """A loader look-alike for `run_inference`: each pass gives the next batch of one iterator over `loader`."""

    def __init__(self, loader):
        self.dataset = loader.dataset
        self._iterator = iter(loader)

    def __len__(self) -> int:
        return 1

    def __iter__(self):
        return islice(self._iterator, 1)


def inference_batch_times(model, loader, cfg, device, batches: int, desc: str) -> list[float]:
    """Seconds of each of the first `batches` batches of `run_inference` over `loader` (the first includes the
    loader's start-up)."""
    view = _NextBatches(loader)
    count = min(batches, len(loader))
    return [timed(device, lambda: run_inference(model, view, cfg, device, desc=desc))[0] for _ in range(count)]


def project_inference(times: Sequence[float], batches: int) -> float:
    """Seconds of an inference pass of `batches` batches from measured batch times: the first as it was (start-up
    included), the others at the last measured one's pace."""
    if not batches or not times:
        return 0.0
    return times[0] + times[-1] * (batches - 1)


# ----------------------------------------------------------------------------- counting the run
def epochs_left(cfg, start_epoch: int) -> int:
    return max(cfg.SOLVER.MAX_EPOCH - start_epoch, 0)


def validation_passes(cfg, start_epoch: int) -> int:
    """Validation passes of the run: every TRAIN.EVAL_PERIOD epochs and after the last (hooks.EvalHook)."""
    period, last = cfg.TRAIN.EVAL_PERIOD, cfg.SOLVER.MAX_EPOCH
    if period <= 0:
        return 0
    return sum(1 for done in range(start_epoch + 1, last + 1) if done % period == 0 or done == last)


def checkpoint_writes(cfg, start_epoch: int, epoch_iters: int) -> int:
    """Checkpoints the run writes (hooks.PeriodicCheckpointer): every TRAIN.CHECKPOINT_PERIOD epochs and after the
    last, every TRAIN.CHECKPOINT_ITERS steps inside an epoch, and at most one best copy per validation pass."""
    period, last, iters = cfg.TRAIN.CHECKPOINT_PERIOD, cfg.SOLVER.MAX_EPOCH, cfg.TRAIN.CHECKPOINT_ITERS
    epochs = range(start_epoch + 1, last + 1)
    periodic = sum(1 for done in epochs if done % period == 0 or done == last)
    inside = len(epochs) * ((epoch_iters - 1) // iters) if iters > 0 else 0
    return periodic + inside + validation_passes(cfg, start_epoch)


def measure_checkpoint(trainer: Trainer, output_dir: str) -> tuple[float, int]:
    """(seconds, bytes) of one checkpoint saved with the project's `save_checkpoint` into a temporary file of
    `output_dir` (named like the temporaries a run removes at its start), deleted afterwards."""
    os.makedirs(output_dir, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix=TEMP_PREFIX + "preflight-", suffix=".pyth", dir=output_dir)
    os.close(fd)
    try:
        state = (trainer.model, trainer.optimizer, trainer.scaler, trainer.ema)
        seconds, _ = timed(trainer.device, lambda: save_checkpoint(path, trainer.cfg, *state, 0, 0, None))
        return seconds, os.path.getsize(path)
    finally:
        if os.path.exists(path):
            os.unlink(path)


# ----------------------------------------------------------------------------- collectives
def timed_allreduce(device: torch.device, timeout_s: float) -> float:
    """Seconds of an all-reduce of one number across every rank (with one process: the trivial sum). First a
    check that every rank answers within `timeout_s`: gloo's monitored_barrier names the ranks that did not; on
    NCCL the all-reduce itself is waited for with that timeout."""
    world = du.get_world_size()
    value = torch.ones(1, device=device)
    if world == 1:
        return timed(device, lambda: value.add_(0))[0]
    timeout = datetime.timedelta(seconds=timeout_s)
    if dist.get_backend() == "gloo":
        try:
            dist.monitored_barrier(timeout=timeout, wait_all_ranks=True)
        except RuntimeError as e:
            detail = " ".join(str(e).split("\n")[0].split())
            raise PreflightFailure(
                f"rank unreachable: {detail} (DIST_TIMEOUT = {timeout_s:g} s, this is rank {du.get_rank()} of "
                f"{world}); {du.TROUBLESHOOTING}"
            ) from e

    def reduce():
        work = dist.all_reduce(value, async_op=True)
        if not work.wait(timeout=timeout):
            raise RuntimeError("timed out")

    try:
        return timed(device, reduce)[0]
    except RuntimeError as e:
        raise PreflightFailure(
            f"rank unreachable: the all-reduce across {world} ranks did not finish within DIST_TIMEOUT = "
            f"{timeout_s:g} s on rank {du.get_rank()} ({' '.join(str(e).split())[:200]}); {du.TROUBLESHOOTING}"
        ) from e


def max_over_ranks(value: float, device: torch.device) -> float:
    return float(du.all_gather_cat(torch.tensor([float(value)], device=device, dtype=torch.float64)).max())


def sum_over_ranks(value: float, device: torch.device) -> float:
    return float(du.all_reduce_sum(torch.tensor([float(value)], device=device, dtype=torch.float64)))


# ----------------------------------------------------------------------------- --find-batch
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
    """One training step of `batch` (with its optimizer step), the device synchronised."""
    trainer.model.train()
    trainer._batches = iter([batch])
    trainer.iter = trainer.epoch_iters - 1  # the last step of an epoch always takes the optimizer step
    trainer._tick = time.perf_counter()
    trainer.run_step()
    synchronize(trainer.device)
    trainer.step_output = None


def free_device_memory(trainer: Trainer) -> None:
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


# ----------------------------------------------------------------------------- the verdict and the report
def _rate(clips_per_s: float) -> str:
    """A rate with its significant digits, also below 1 clip/s (a large model on a CPU)."""
    return f"{clips_per_s:.1f}" if clips_per_s >= 10 else f"{clips_per_s:.3g}"


def verdict(loader_clips_per_s: float, clips_per_s: float, model_clips_per_s: float) -> str:
    """Data-bound when the loader alone gives less than DATA_BOUND_MARGIN x the clips/s training achieves."""
    if loader_clips_per_s < clips_per_s * DATA_BOUND_MARGIN:
        return (
            f"data-bound: the loader gives {_rate(loader_clips_per_s)} clips/s, the model takes "
            f"{_rate(model_clips_per_s)}; "
            "add workers (DATA_LOADER.NUM_WORKERS), resize the videos (tools/resize_videos.py), or cache features"
        )
    return (
        f"compute-bound: the model takes {_rate(model_clips_per_s)} clips/s and the loader gives "
        f"{_rate(loader_clips_per_s)}; speed up the model (TRAIN.MIXED_PRECISION on a GPU, a smaller backbone or "
        "fewer frames) or add devices"
    )


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


def _duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


def format_report(r: dict) -> str:
    """The short human report of a preflight result."""
    lines = [
        f"Preflight of {r['processes']} process(es) on {r['device']}, {r['steps_measured']} steps measured "
        f"(after {r['warmup_steps']} warm-up), batch {r['batch_per_process']} per process:",
        f"  step time          {r['step_time_s']:.4f} s  (data wait {r['data_wait_s']:.4f}, forward+backward "
        f"{r['forward_backward_s']:.4f}, optimizer {r['optimizer_s']:.4f}; data wait {r['data_wait_fraction']:.0%})",
        f"  throughput         {_rate(r['clips_per_s'])} clips/s per process, {_rate(r['clips_per_s_total'])} in all; "
        f"the loader alone {_rate(r['loader_clips_per_s'])} clips/s per process",
        f"  peak memory        {_size(r['peak_memory_bytes'])} ({r['memory_kind']}, the most of any rank)",
        f"  epoch              {r['steps_per_epoch']} steps, {_duration(r['epoch_time_s'])}",
        f"  whole run          {_duration(r['run_time_s'])} ({r['epochs']} epochs {_duration(r['train_time_s'])}, "
        f"{r['validation_passes']} validation passes {_duration(r['validation_time_s'])}, test "
        f"{_duration(r['test_time_s'])}, {r['checkpoint_writes']} checkpoint writes "
        f"{_duration(r['checkpoint_time_s'])})",
        f"  checkpoints        {_size(r['checkpoint_bytes'])} each, {_size(r['checkpoint_disk_bytes'])} kept at "
        f"most; {_size(r['free_disk_bytes'])} free in OUTPUT_DIR",
        f"  all-reduce         {r['allreduce_s'] * 1e3:.3f} ms across {r['processes']} rank(s)",
    ]
    if r.get("max_batch_per_process") is not None:
        how = "an estimate from the memory growth between two batch sizes" if r["max_batch_estimated"] else "tried"
        lines.append(f"  largest batch      {r['max_batch_per_process']} clips per process ({how})")
    lines.append(f"  verdict            {r['verdict']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- one process
@dataclass
class Options:
    steps: Optional[int] = None  # None: DEFAULT_STEPS on a GPU, DEFAULT_CPU_STEPS on the CPU
    find_batch: bool = False
    inference_batches: int = 2  # validation batches timed (the first includes the loader's start-up)
    result: dict = field(default_factory=dict)  # the master's result (single-process runs read it back)


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


def measure_evaluation(trainer: Trainer, cfg, batches: int) -> tuple[list[float], dict]:
    """(seconds of the first `batches` validation batches, {test protocol: (seconds of its first batch, its
    number of batches)} when TEST.ENABLE)."""
    model, device, clone = trainer.model, trainer.device, trainer.cfg
    val = trainer.val_loader
    val_times = inference_batch_times(model, val, clone, device, batches, "val") if val is not None else []
    tests = {}
    if cfg.TEST.ENABLE:
        for protocol in dict.fromkeys(p for p, _ in test_runs(clone)):
            loader = build_loader(clone, "test", protocol)
            tests[protocol] = (inference_batch_times(model, loader, clone, device, 1, f"test {protocol}"), len(loader))
    return val_times, tests


def project_run(cfg, trainer: Trainer, s: StepSummary, warmup_s: float, val_times, tests, save_s: float) -> dict:
    """The epoch and the whole run from the measured pieces (the epochs left, the validation passes, the test
    passes of TEST.PROTOCOLS and the shuffle ablation, the checkpoint writes)."""
    start, iters = trainer.start_epoch, trainer.epoch_iters
    epochs = epochs_left(cfg, start)
    train_time = epochs * iters * s.step_time_s + (warmup_s if epochs else 0.0)
    passes = validation_passes(cfg, start)
    val_batches = len(trainer.val_loader) if trainer.val_loader is not None else 0
    val_time = passes * project_inference(val_times, val_batches)
    test_time = sum(project_inference(*tests[p]) for p, _ in test_runs(trainer.cfg)) if tests else 0.0
    writes = checkpoint_writes(cfg, start, iters)
    return {
        "steps_per_epoch": iters,
        "epoch_time_s": iters * s.step_time_s,
        "epochs": epochs,
        "train_time_s": train_time,
        "warmup_extra_s": warmup_s,
        "validation_passes": passes,
        "validation_batches": val_batches,
        "validation_batch_s": val_times,
        "validation_time_s": val_time,
        "test_batch_s": {p: t for p, (t, _) in tests.items()},
        "test_batches": {p: n for p, (_, n) in tests.items()},
        "test_time_s": test_time,
        "checkpoint_save_s": save_s,
        "checkpoint_writes": writes,
        "checkpoint_time_s": writes * save_s,
        "run_time_s": train_time + val_time + test_time + writes * save_s,
    }


def measure(trainer: Trainer, cfg, options: Options) -> dict:
    """Every measurement of one process, and the projections; collective over the ranks."""
    device, world = trainer.device, du.get_world_size()
    steps = max(options.steps or (DEFAULT_STEPS if device.type == "cuda" else DEFAULT_CPU_STEPS), 2)
    per_process = trainer.batch_plan.per_process
    allreduce_s = timed_allreduce(device, float(cfg.get("DIST_TIMEOUT", 1800)))
    loader_cps = measure_loader(
        trainer.train_loader, min(max(steps - warmup_steps(steps), 1), LOADER_BATCHES), warmup_steps(steps)
    )
    records, warmup, peak = measure_training(trainer, steps)
    s = summarize_steps(records, warmup)
    # the one-time cost of the first steps (allocator, kernels, workers) beyond their median pace, paid once
    warmup_s = max(sum(r.total for r in records[:warmup]) - warmup * s.step_time_s, 0.0)
    clips_per_s = per_process / s.step_time_s
    compute = s.forward_backward_s + s.optimizer_s
    model_cps = per_process / compute if compute > 0 else clips_per_s
    max_batch = find_batch(trainer, next(iter(trainer.train_loader))) if options.find_batch else None
    free_device_memory(trainer)
    val_times, tests = measure_evaluation(trainer, cfg, options.inference_batches)
    save_s, ckpt_bytes = measure_checkpoint(trainer, cfg.OUTPUT_DIR) if du.is_master() else (0.0, 0)
    du.barrier()
    result = {
        "step_time_s": s.step_time_s,
        "data_wait_s": s.data_wait_s,
        "forward_backward_s": s.forward_backward_s,
        "optimizer_s": s.optimizer_s,
        "data_wait_fraction": s.data_wait_s / s.step_time_s if s.step_time_s > 0 else 0.0,
        "clips_per_s": clips_per_s,
        "clips_per_s_total": sum_over_ranks(clips_per_s, device),
        "model_clips_per_s": model_cps,
        "loader_clips_per_s": loader_cps,
        "peak_memory_bytes": int(peak),
        "memory_kind": "CUDA max_memory_allocated" if device.type == "cuda" else "peak RSS",
        **project_run(cfg, trainer, s, warmup_s, val_times, tests, save_s),
        "checkpoint_bytes": ckpt_bytes,
        "checkpoints_kept": checkpoints_kept(cfg),
        "checkpoint_disk_bytes": ckpt_bytes * checkpoints_kept(cfg),
        "free_disk_bytes": shutil.disk_usage(cfg.OUTPUT_DIR).free if du.is_master() else 0,
        "allreduce_s": allreduce_s,
        "processes": world,
        "device": str(device),
        "batch_per_process": per_process,
        "steps_measured": len(records) - warmup,
        "warmup_steps": warmup,
        "max_batch_per_process": max_batch[0] if max_batch else None,
        "max_batch_estimated": max_batch[1] if max_batch else None,
    }
    result["verdict"] = verdict(loader_cps, clips_per_s, model_cps)
    return result


def run_preflight(cfg, options: Options) -> None:
    """What every process runs (launch_job starts them): measure, then the master reports and writes the json.
    A disk too small for the run's checkpoints raises PreflightFailure after the json is written."""
    master = du.is_master()
    setup_logging(None, master)
    seed_everything(cfg.RNG_SEED + du.get_rank())
    check_splits(cfg)  # a missing dataset: one line, status 2 (a UserError through run_main)
    scratch = tempfile.mkdtemp(prefix="vtn-preflight-")
    try:
        trainer = PreflightTrainer(preflight_config(cfg, scratch))
        try:
            result = measure(trainer, cfg, options)
        except torch.cuda.OutOfMemoryError as e:  # outside the training steps: an inference batch
            raise PreflightFailure(
                f"out of memory in an inference batch of {eval_batch_per_process(cfg, du.get_world_size())} views per "
                "process: lower TEST.BATCH_SIZE (or TEST.FULL_VIDEO_FRAMES for the full-video protocol)"
            ) from e
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not master:
        return
    options.result.update(result)
    print(format_report(result), flush=True)
    write_json_atomic(result, os.path.join(cfg.OUTPUT_DIR, REPORT_FILE))
    print(f"Written {os.path.join(cfg.OUTPUT_DIR, REPORT_FILE)}", flush=True)
    if result["checkpoint_disk_bytes"] > result["free_disk_bytes"]:
        raise PreflightFailure(
            f"disk too small: the run keeps up to {result['checkpoints_kept']} checkpoints of "
            f"{_size(result['checkpoint_bytes'])} ({_size(result['checkpoint_disk_bytes'])}) but OUTPUT_DIR "
            f"{cfg.OUTPUT_DIR} has {_size(result['free_disk_bytes'])} free: free space, lower TRAIN.CHECKPOINT_KEEP "
            "or choose another OUTPUT_DIR"
        )


def failure_line(error: BaseException) -> Optional[str]:
    """The one line of a PreflightFailure, also when it comes from a spawned process (whose exception reaches the
    parent as text); None for any other error."""
    if isinstance(error, PreflightFailure):
        return str(error)
    text = str(error)
    marker = "PreflightFailure: "
    if marker in text:
        return text[text.rindex(marker) + len(marker) :].strip().split("\n")[0]
    return None


def preflight_main(cfg, options: Options, init_method: Optional[str] = None, tool: str = "preflight") -> int:
    """Run the preflight in every process of the job; 1 (after one line on stderr) on a PreflightFailure."""
    import sys

    try:
        launch_job(cfg, _Runner(options), init_method=init_method)
    except Exception as e:  # noqa: BLE001  (only a PreflightFailure is turned into a line; the rest re-raised)
        line = failure_line(e)
        if line is None:
            raise
        print(f"{tool}: error: {line}", file=sys.stderr)
        return 1
    return 0


class _Runner:
    """run_preflight with its options, picklable for the processes launch_job spawns."""

    def __init__(self, options: Options):
        self.options = options

    def __call__(self, cfg) -> None:
        run_preflight(cfg, self.options)


__all__ = [
    "DEFAULT_STEPS",
    "Options",
    "PreflightFailure",
    "PreflightTrainer",
    "estimate_max_batch",
    "largest_fitting",
    "preflight_main",
    "run_preflight",
    "verdict",
]
