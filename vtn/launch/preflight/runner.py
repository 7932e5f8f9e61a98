"""One preflight process and the tool's entry: every process of the job (launched as tools/run_net.py's are)
builds a PreflightTrainer on a scratch clone of the config, measures, and the master reports."""

import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Optional

import torch

from vtn.config import eval_batch_per_process
from vtn.datasets import check_splits
from vtn.engine import distributed as du
from vtn.launch.preflight.batch_search import find_batch, free_device_memory
from vtn.launch.preflight.collectives import timed_allreduce
from vtn.launch.preflight.failures import PreflightFailure, failure_line
from vtn.launch.preflight.inference import measure_evaluation
from vtn.launch.preflight.loader import measure_loader
from vtn.launch.preflight.projection import disk_result, measure_checkpoint, project_run
from vtn.launch.preflight.report import publish_report, verdict
from vtn.launch.preflight.steps import (
    PreflightTrainer,
    data_wait_result,
    measure_training,
    preflight_config,
    summarize_steps,
    throughput_result,
    warmup_steps,
)
from vtn.launch.processes import launch_job
from vtn.utils.logging import setup_logging
from vtn.utils.rng import seed_everything

DEFAULT_STEPS = 30  # training steps measured on a GPU
DEFAULT_CPU_STEPS = 8  # on the CPU (the demo config's preflight stays under a minute)
LOADER_BATCHES = 20  # at most this many batches time the loader alone


@dataclass
class Options:
    """What tools/preflight.py asks of a preflight."""

    steps: Optional[int] = None  # None: DEFAULT_STEPS on a GPU, DEFAULT_CPU_STEPS on the CPU
    find_batch: bool = False
    inference_batches: int = 2  # validation batches timed (the first includes the loader's start-up)
    result: dict = field(default_factory=dict)  # the master's result (single-process runs read it back)


def measure(trainer: PreflightTrainer, cfg, options: Options) -> dict:
    """Every measurement of one process, and the projections; collective over the ranks."""
    device = trainer.device
    steps = max(options.steps or (DEFAULT_STEPS if device.type == "cuda" else DEFAULT_CPU_STEPS), 2)
    allreduce_s = timed_allreduce(device, float(cfg.get("DIST_TIMEOUT", 1800)))
    warmup = warmup_steps(steps)
    loader_cps = measure_loader(trainer.train_loader, min(max(steps - warmup, 1), LOADER_BATCHES), warmup)
    records, warmup, peak = measure_training(trainer, steps)
    s = summarize_steps(records, warmup)
    # the one-time cost of the first steps (allocator, kernels, workers) beyond their median pace, paid once
    warmup_s = max(sum(r.total for r in records[:warmup]) - warmup * s.step_time_s, 0.0)
    max_batch = find_batch(trainer, next(iter(trainer.train_loader))) if options.find_batch else None
    free_device_memory(trainer)
    val_times, tests = measure_evaluation(trainer, cfg, options.inference_batches)
    save_s, ckpt_bytes = measure_checkpoint(trainer, cfg.OUTPUT_DIR) if du.is_master() else (0.0, 0)
    du.barrier()
    result = {
        **throughput_result(trainer, s, loader_cps),
        **data_wait_result(trainer, records, warmup),
        "peak_memory_bytes": int(peak),
        "memory_kind": "CUDA max_memory_allocated" if device.type == "cuda" else "peak RSS",
        **project_run(cfg, trainer, s, warmup_s, val_times, tests, save_s),
        **disk_result(cfg, ckpt_bytes),
        "allreduce_s": allreduce_s,
        "processes": du.get_world_size(),
        "device": str(device),
        "batch_per_process": trainer.batch_plan.per_process,
        "steps_measured": len(records) - warmup,
        "warmup_steps": warmup,
        "max_batch_per_process": max_batch[0] if max_batch else None,
        "max_batch_estimated": max_batch[1] if max_batch else None,
    }
    result["verdict"] = verdict(loader_cps, result["clips_per_s"], result["model_clips_per_s"])
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
    publish_report(result, cfg.OUTPUT_DIR)


def preflight_main(cfg, options: Options, init_method: Optional[str] = None, tool: str = "preflight") -> int:
    """Run the preflight in every process of the job; 1 (after one line on stderr) on a PreflightFailure."""
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
