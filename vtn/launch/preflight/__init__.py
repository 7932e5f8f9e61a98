"""Preflight: run the real config on the real devices and data for a few steps, measure, and project the run.

`preflight_main` is what tools/preflight.py runs. Every process of the job (launched as tools/run_net.py's are)
builds a `PreflightTrainer` (the Trainer with no hook that writes anything, on a clone of the config whose
OUTPUT_DIR is a private temporary folder, AUTO_RESUME off, its step timings synchronised with the device) and
measures: training steps (data wait, also by rank, forward and backward, optimizer step), the training loader
alone, one or two batches of the validation and test inference, one checkpoint save (into a temporary file of
OUTPUT_DIR, deleted afterwards), a timed all-reduce, and peak memory. The master prints a short report and writes
OUTPUT_DIR/preflight.json; nothing else of OUTPUT_DIR is touched. A failure the user must act on (out of memory,
a disk too small, a rank that does not answer) raises `PreflightFailure`: one line, exit status 1.

One module per job: timing.py (device timing and memory), failures.py (the one-line failures), steps.py
(training steps and their summary), loader.py (the loader alone), inference.py (validation and test batches),
projection.py (counting the run, checkpoints, disk), collectives.py, batch_search.py (--find-batch),
report.py (the verdict and the report) and runner.py (one process, and the tool's entry). The preflight drives
the trainer through its public methods only (`run_step` with or without a given batch, `synchronize_timings`).
"""

from vtn.launch.preflight.batch_search import (
    FIND_BATCH_CAP,
    MEMORY_SAFETY,
    estimate_max_batch,
    find_batch,
    largest_fitting,
    repeat_batch,
)
from vtn.launch.preflight.collectives import max_over_ranks, sum_over_ranks, timed_allreduce
from vtn.launch.preflight.failures import PreflightFailure, failure_line
from vtn.launch.preflight.inference import inference_batch_times, project_inference
from vtn.launch.preflight.loader import measure_loader
from vtn.launch.preflight.projection import checkpoint_writes, epochs_left, project_run, validation_passes
from vtn.launch.preflight.report import DATA_BOUND_MARGIN, REPORT_FILE, format_report, verdict
from vtn.launch.preflight.runner import (
    DEFAULT_CPU_STEPS,
    DEFAULT_STEPS,
    LOADER_BATCHES,
    Options,
    measure,
    preflight_main,
    run_preflight,
)
from vtn.launch.preflight.steps import (
    PreflightTrainer,
    StepSummary,
    StepTime,
    data_wait_result,
    measure_steps,
    preflight_config,
    summarize_steps,
    warmup_steps,
)
from vtn.launch.preflight.timing import mem_available_bytes, peak_memory_bytes, timed

__all__ = [
    "DATA_BOUND_MARGIN",
    "DEFAULT_CPU_STEPS",
    "DEFAULT_STEPS",
    "FIND_BATCH_CAP",
    "LOADER_BATCHES",
    "MEMORY_SAFETY",
    "REPORT_FILE",
    "Options",
    "PreflightFailure",
    "PreflightTrainer",
    "StepSummary",
    "StepTime",
    "checkpoint_writes",
    "data_wait_result",
    "epochs_left",
    "estimate_max_batch",
    "failure_line",
    "find_batch",
    "format_report",
    "inference_batch_times",
    "largest_fitting",
    "max_over_ranks",
    "measure",
    "measure_loader",
    "measure_steps",
    "mem_available_bytes",
    "peak_memory_bytes",
    "preflight_config",
    "preflight_main",
    "project_inference",
    "project_run",
    "repeat_batch",
    "run_preflight",
    "sum_over_ranks",
    "summarize_steps",
    "timed",
    "timed_allreduce",
    "validation_passes",
    "verdict",
    "warmup_steps",
]
