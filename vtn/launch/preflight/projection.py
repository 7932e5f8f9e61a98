"""Counting the run for the preflight: the epochs, validation passes and checkpoint writes the hooks will make,
one checkpoint save timed, the epoch and the whole run projected from the measured pieces, and the disk the
run's checkpoints take against the free space of OUTPUT_DIR."""

import os
import shutil
import tempfile

from vtn.engine import distributed as du
from vtn.engine.checkpoint import save_checkpoint
from vtn.engine.output_dir import checkpoints_kept
from vtn.launch.preflight.inference import project_inference, test_pass_protocols
from vtn.launch.preflight.steps import StepSummary
from vtn.launch.preflight.timing import timed
from vtn.utils.files import TEMP_PREFIX


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


def measure_checkpoint(trainer, output_dir: str) -> tuple[float, int]:
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


def project_run(cfg, trainer, s: StepSummary, warmup_s: float, val_times, tests, save_s: float) -> dict:
    """The epoch and the whole run from the measured pieces (the epochs left, the validation passes, the test
    passes of TEST.PROTOCOLS and the shuffle ablation, the checkpoint writes)."""
    start, iters = trainer.start_epoch, trainer.epoch_iters
    epochs = epochs_left(cfg, start)
    train_time = epochs * iters * s.step_time_s + (warmup_s if epochs else 0.0)
    passes = validation_passes(cfg, start)
    val_batches = len(trainer.val_loader) if trainer.val_loader is not None else 0
    val_time = passes * project_inference(val_times, val_batches)
    test_time = sum(project_inference(*tests[p]) for p in test_pass_protocols(trainer.cfg)) if tests else 0.0
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


def disk_result(cfg, checkpoint_bytes: int) -> dict:
    """The size of a checkpoint, how many the run keeps (TRAIN.CHECKPOINT_KEEP), the disk they take and the free
    space of OUTPUT_DIR (measured by the master; 0 on the other ranks)."""
    kept = checkpoints_kept(cfg)
    return {
        "checkpoint_bytes": checkpoint_bytes,
        "checkpoints_kept": kept,
        "checkpoint_disk_bytes": checkpoint_bytes * kept,
        "free_disk_bytes": shutil.disk_usage(cfg.OUTPUT_DIR).free if du.is_master() else 0,
    }
