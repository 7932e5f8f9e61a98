#!/usr/bin/env python
"""Resizing speed of tools/resize_videos.py (vtn/preparation/resize.py) with 1 and 2 worker processes.

    python benchmarks/resize.py                          # 16 synthetic videos, short side 320, 1 then 2 workers
    python benchmarks/resize.py --preset veryfast --repeats 3
    python benchmarks/resize.py --input data/kinetics400/videos --workers 1 2 4   # any folder of videos

The synthetic set (generated once into data_cache/bench_resize/, regenerated when its settings change) is
Kinetics-like: --videos videos of 4-8 s at 30 fps, sizes cycling through 640x360, 480x360 and 360x640
(portrait), each a camera panning over a textured background with a moving square and a little noise, encoded
as H.264 (libx264, veryfast, crf 23: about 0.4 Mb/s). Each run resizes every video into a fresh
temporary folder with the tool's own code (walk, decode, resize, encode, rename) and the tool's defaults
(libx264, crf 23, preset medium, audio dropped), one configuration after the other (interleaved over
--repeats runs; medians reported). With N workers each process gives its decoder and encoder cpu_count / N
threads, as the tool does, so one worker already uses every core. CPU s/video is the CPU time (user + system)
of this process and its worker processes per video: the work itself, which the machine's load does not change
much, where the wall-clock columns depend on the cores left free. The 1-minute load averages (/proc/loadavg)
are printed at the start and the end.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from multiprocessing import get_context

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.kinetics_like import cpu_seconds, load_average, write_video  # noqa: E402
from vtn.preparation.resize import X264_PRESETS, ResizeOptions  # noqa: E402
from vtn.preparation.resize_jobs import plan, run_jobs  # noqa: E402

CACHE = os.path.join(ROOT, "data_cache", "bench_resize")
SIZES = ((640, 360), (480, 360), (360, 640))
FPS = 30


def _make_video(args) -> None:
    folder, i = args
    rng = np.random.default_rng([7, i])
    num_frames = int(round(rng.uniform(4, 8) * FPS))
    path = os.path.join(folder, f"video_{i:03d}.mp4")
    write_video(path, rng, SIZES[i % len(SIZES)], num_frames, FPS, options={"preset": "veryfast", "crf": "23"})


def synthetic_videos(count: int) -> str:
    """The folder of the synthetic set, generated (2 processes) unless it is there with these settings."""
    settings = {"videos": count, "sizes": [list(s) for s in SIZES], "fps": FPS, "version": 2}
    manifest = os.path.join(CACHE, "settings.json")
    try:
        with open(manifest) as f:
            if json.load(f) == settings:
                return os.path.join(CACHE, "videos")
    except (OSError, ValueError):
        pass
    shutil.rmtree(CACHE, ignore_errors=True)
    folder = os.path.join(CACHE, "videos")
    os.makedirs(folder)
    start = time.monotonic()
    with get_context("fork").Pool(2) as pool:
        pool.map(_make_video, [(folder, i) for i in range(count)])
    with open(manifest, "w") as f:
        json.dump(settings, f)
    print(f"generated {count} videos into {folder} in {time.monotonic() - start:.1f} s")
    return folder


def folder_mb(folder: str) -> float:
    return sum(os.path.getsize(os.path.join(r, n)) for r, _, names in os.walk(folder) for n in names) / 1e6


def frame_count(folder: str) -> int:
    import av

    total = 0
    for root, _, names in os.walk(folder):
        for name in names:
            with av.open(os.path.join(root, name)) as c:
                total += sum(1 for p in c.demux(c.streams.video[0]) if p.size > 0)
    return total


def time_run(input_dir: str, options: ResizeOptions, workers: int) -> tuple[float, float, float, int]:
    """(seconds, CPU seconds, output MB, videos) of one resize of the whole folder into a fresh temporary folder."""
    out = tempfile.mkdtemp(prefix="bench_resize_out_")
    try:
        jobs = plan(input_dir, out).todo
        start, cpu = time.perf_counter(), cpu_seconds()
        outcomes = run_jobs(jobs, options, workers, log=lambda line: None)
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        failed = [o for o in outcomes if not o.ok]
        if failed:
            raise SystemExit(f"{len(failed)} videos failed, e.g. {failed[0].rel}: {failed[0].reason}")
        return seconds, cpu, folder_mb(out), len(outcomes)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def build_parser():
    """The command line of this benchmark (tests/test_docs.py parses the documented commands with it)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", default="", help="a folder of videos (default: the synthetic set)")
    p.add_argument("--videos", type=int, default=16, help="videos in the synthetic set (default: 16)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time (default: 1 2)")
    p.add_argument("--short-side", type=int, default=320)
    p.add_argument("--crf", type=int, default=23)
    p.add_argument("--preset", default="medium", choices=X264_PRESETS)
    p.add_argument("--repeats", type=int, default=1, help="runs per worker count; the median is reported")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    print(f"load average at start: {load_average()}")
    folder = args.input or synthetic_videos(args.videos)
    options = ResizeOptions(args.short_side, args.crf, args.preset).resolved()
    in_mb, frames = folder_mb(folder), frame_count(folder)
    print(
        f"{folder}: {frames} frames, {in_mb:.1f} MB; {options.codec}, short side {options.short_side}, crf "
        f"{options.crf}, preset {options.preset}; median of {args.repeats} run(s)"
    )
    times, cpus = {w: [] for w in args.workers}, {w: [] for w in args.workers}
    out_mb, videos = {}, 0
    for _ in range(args.repeats):
        for workers in args.workers:
            seconds, cpu, out_mb[workers], videos = time_run(folder, options, workers)
            times[workers].append(seconds)
            cpus[workers].append(cpu)
    print()
    print(
        "| workers | videos | seconds | videos/s | videos/s per worker | frames/s | CPU s/video | input MB "
        "| output MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for workers in args.workers:
        s, cpu = statistics.median(times[workers]), statistics.median(cpus[workers])
        print(
            f"| {workers} | {videos} | {s:.1f} | {videos / s:.2f} | {videos / s / workers:.2f} | {frames / s:.0f} "
            f"| {cpu / videos:.2f} | {in_mb:.1f} | {out_mb[workers]:.2f} |"
        )
    print()
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
