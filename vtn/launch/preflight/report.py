"""The verdict and the report of a preflight: data- or compute-bound, the short human report, OUTPUT_DIR/
preflight.json, and the disk check that follows them."""

import datetime
import os

from vtn.engine.data_wait import slowest_summary
from vtn.launch.preflight.failures import PreflightFailure
from vtn.utils.files import write_json_atomic

REPORT_FILE = "preflight.json"
DATA_BOUND_MARGIN = 1.1  # the loader must give 10% more clips/s than the training takes to be out of the way


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


def data_wait_line(r: dict) -> str:
    """Each rank's data wait per step, short: the figures of the rank that waits the most, the share of the step
    by rank, and the slowest rank when one passes the margin of vtn/engine/data_wait.py."""
    means, share = r["data_wait_mean"], r["data_wait_share"]
    worst = max(range(len(means)), key=lambda i: means[i])
    figures = ", ".join(f"{k} {r['data_wait_' + k][worst]:.4f} s" for k in ("p50", "p90", "max"))
    if len(means) == 1:
        return f"  data wait/step     {figures}; {share[0]:.0%} of the step time"
    line = (
        f"  data wait/step     rank {worst} waits the most: {figures}; {min(share):.0%}-{max(share):.0%} of the "
        f"step time over {len(means)} ranks"
    )
    slowest = slowest_summary(r)
    return line + (f"; {slowest}" if slowest else "")


def format_report(r: dict) -> str:
    """The short human report of a preflight result."""
    lines = [
        f"Preflight of {r['processes']} process(es) on {r['device']}, {r['steps_measured']} steps measured "
        f"(after {r['warmup_steps']} warm-up), batch {r['batch_per_process']} per process:",
        f"  step time          {r['step_time_s']:.4f} s  (data wait {r['data_wait_s']:.4f}, forward+backward "
        f"{r['forward_backward_s']:.4f}, optimizer {r['optimizer_s']:.4f}; data wait {r['data_wait_fraction']:.0%})",
        *([data_wait_line(r)] if "data_wait_mean" in r else []),
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


def publish_report(result: dict, output_dir: str) -> None:
    """Print the report and write it to OUTPUT_DIR/preflight.json; then a disk too small for the run's checkpoints
    raises PreflightFailure (the json is written first, so that the numbers behind the failure are kept)."""
    print(format_report(result), flush=True)
    path = os.path.join(output_dir, REPORT_FILE)
    write_json_atomic(result, path)
    print(f"Written {path}", flush=True)
    if result["checkpoint_disk_bytes"] > result["free_disk_bytes"]:
        raise PreflightFailure(
            f"disk too small: the run keeps up to {result['checkpoints_kept']} checkpoints of "
            f"{_size(result['checkpoint_bytes'])} ({_size(result['checkpoint_disk_bytes'])}) but OUTPUT_DIR "
            f"{output_dir} has {_size(result['free_disk_bytes'])} free: free space, lower TRAIN.CHECKPOINT_KEEP "
            "or choose another OUTPUT_DIR"
        )
