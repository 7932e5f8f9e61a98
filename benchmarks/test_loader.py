#!/usr/bin/env python
"""Multi-view test loading: every view decoding its video on its own, against one decode per video for all its views.

    python benchmarks/test_loader.py                     # 8 videos, 1 process and one worker per core (~4 min)
    python benchmarks/test_loader.py --quick             # 2 videos, 1 pass: a smoke test
    python benchmarks/test_loader.py --videos 16 --repeats 5 --workers 4
    python benchmarks/test_loader.py --videos 0 --inputs a.mp4 b.mkv   # real files only (--inputs adds them)

The loader is the project's test loader (`vtn.datasets.build_loader(cfg, "test", "multi_view")` on the real
`kinetics` dataset, reading a PySlowFast `path label` test.csv): decode, scale, crop, normalise and batch every
view, no model. Config: configs/Kinetics/VIT_B_VTN.yaml (16 frames over 5.12 s per clip, TEST.NUM_ENSEMBLE_VIEWS
10 x TEST.NUM_SPATIAL_CROPS 3 = 30 views per video, DATA.TEST_SCALE 256, DATA.TEST_CROP_SIZE 224) with NUM_GPUS
0, TEST.BATCH_SIZE 8 views per process (SOLVER.REFERENCE_WORLD_SIZE 0: PySlowFast's meaning, the batch over
all processes, here one) and DATA_LOADER.PERSISTENT_WORKERS False (so that the workers exit, and their CPU time
is counted, at the end of each pass). Cases: DATA.DECODE_VIDEO_ONCE False (per-view: 30 decodes per video) and
True (once: the union of the frames of a video's clips decoded once, the crops cut from the same frames) x
DATA_LOADER.NUM_WORKERS 0 (the main process) and one worker per core (--workers). Each pass builds its loader
(worker start-up and the probes included) and reads the whole test set; the cases are interleaved, in a
rotated order at each repeat, and the medians of --repeats passes are reported: videos/s (wall clock) and CPU ms
per video (this process and its exited workers), with the ratios once / per-view.

Before timing, every view of the first 2 videos is read in both modes (per-view in the main process, once in the
main process and with the workers) and compared: torch.equal on the frames and frame indices of each
(video_idx, temporal_idx, spatial_idx).

The generated videos (data_cache/bench_test_loader/, made once): Kinetics-like clips (a camera panning over
texture with a moving square, see kinetics_like.py) of 10 s, short side 256 as Kinetics is usually resized,
alternately 340x256 at 30 fps and 456x256 at 25 fps, H.264 (libx264 preset medium, crf 23, 3 B-frames, one
slice per frame, as the ffmpeg command line writes it).
"""

import argparse
import logging
import os
import resource
import statistics
import sys
import time
from multiprocessing import get_context

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.kinetics_like import cpu_seconds, load_average, write_video  # noqa: E402

CACHE = os.path.join(ROOT, "data_cache", "bench_test_loader")
CONFIG = os.path.join(ROOT, "configs", "Kinetics", "VIT_B_VTN.yaml")
SECONDS = 10
FORMATS = ((340, 256, 30), (456, 256, 25))  # (width, height, fps), alternately
X264 = {"preset": "medium", "crf": "23"}
MODES = {"per-view": False, "once": True}  # name -> DATA.DECODE_VIDEO_ONCE
NUM_CLASSES = 400


# ---------------------------------------------------------------------------- data
def video_name(i: int) -> str:
    width, height, fps = FORMATS[i % len(FORMATS)]
    return f"video_{i:03d}_{width}x{height}_{fps}fps.mp4"


def _make_video(i: int) -> None:
    width, height, fps = FORMATS[i % len(FORMATS)]
    path = os.path.join(CACHE, "videos", video_name(i))
    part = path + ".part.mp4"
    write_video(
        part, np.random.default_rng([23, i]), (width, height), SECONDS * fps, fps, options=X264, thread_type="FRAME"
    )
    os.replace(part, path)


def generated_videos(n: int) -> list[str]:
    """The paths of the first `n` generated videos, made (2 processes) unless they are there."""
    paths = [os.path.join(CACHE, "videos", video_name(i)) for i in range(n)]
    todo = [i for i, p in enumerate(paths) if not os.path.exists(p)]
    if todo:
        os.makedirs(os.path.join(CACHE, "videos"), exist_ok=True)
        start = time.monotonic()
        with get_context("fork").Pool(min(2, len(todo))) as pool:
            pool.map(_make_video, todo, chunksize=1)
        print(f"generated {len(todo)} videos into {os.path.join(CACHE, 'videos')} in {time.monotonic() - start:.1f} s")
    return paths


def write_test_csv(data_dir: str, paths: list[str]) -> None:
    """A PySlowFast test.csv (`path label`, space-separated): generated videos relative to DATA.PATH_PREFIX, the
    others (--inputs) absolute, which the prefix leaves as they are."""
    os.makedirs(data_dir, exist_ok=True)
    prefix = os.path.join(CACHE, "videos")
    with open(os.path.join(data_dir, "test.csv"), "w") as f:
        for i, path in enumerate(paths):
            rel = os.path.relpath(path, prefix) if os.path.dirname(path) == prefix else os.path.abspath(path)
            if " " in rel:
                raise SystemExit(f"{rel}: a path with a space cannot go into a space-separated test.csv")
            f.write(f"{rel} {i % NUM_CLASSES}\n")


def read_once(paths: list[str]) -> None:
    """Read every file once, so that no pass pays for the disk."""
    for path in paths:
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass


# ---------------------------------------------------------------------------- loading
def config(data_dir: str, once: bool, workers: int, batch: int):
    from vtn.config import load_config

    opts = [
        "NUM_GPUS",
        0,
        "SOLVER.REFERENCE_WORLD_SIZE",
        0,
        "TEST.BATCH_SIZE",
        batch,
        "TEST.PROTOCOLS",
        ["multi_view"],
        "DATA.PATH_TO_DATA_DIR",
        data_dir,
        "DATA.PATH_PREFIX",
        os.path.join(CACHE, "videos"),
        "DATA.DECODE_VIDEO_ONCE",
        once,
        "DATA_LOADER.NUM_WORKERS",
        workers,
        "DATA_LOADER.PERSISTENT_WORKERS",
        False,
        "MODEL.NUM_CLASSES",
        NUM_CLASSES,
        "OUTPUT_DIR",
        os.path.join(CACHE, "output"),
    ]
    return load_config(CONFIG, opts)


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def load_pass(cfg, keep=None) -> dict:
    """Read the whole test set once: seconds, CPU seconds (all, and the exited workers'), views, keys seen, views
    not ok. `keep(key, frames, frame_idx)` receives every view."""
    from vtn.datasets import build_loader

    start, cpu, child = time.perf_counter(), cpu_seconds(), children_cpu()
    loader = build_loader(cfg, "test", "multi_view")
    batch_size, it = loader.batch_size, iter(loader)
    keys, not_ok, batches, batch = set(), 0, 0, None
    for batch in it:
        batches += 1
        index = zip(batch["video_idx"].tolist(), batch["temporal_idx"].tolist(), batch["spatial_idx"].tolist())
        for j, key in enumerate(index):
            if key in keys:
                raise AssertionError(f"view {key} read twice in one pass")
            keys.add(key)
            if keep is not None:
                keep(key, batch["frames"][j], batch["frame_idx"][j])
        not_ok += int((~batch["ok"]).sum())
    # the workers (not persistent) have exited and been joined at the end of the iteration: their CPU time is in
    # RUSAGE_CHILDREN. No gc.collect() here: it takes 0.2 s with torch and vtn imported, the benchmark's, not the
    # loader's.
    seconds = time.perf_counter() - start
    del it, loader, batch
    return {
        "seconds": seconds,
        "cpu": cpu_seconds() - cpu,
        "workers_cpu": children_cpu() - child,
        "keys": keys,
        "not_ok": not_ok,
        "batches": batches,
        "batch_size": batch_size,
    }


def check_identical(data_dir: str, workers: int, batch: int) -> tuple[bool, int, list[str]]:
    """(same, views compared, what differed): every view of the check set, per-view in the main process against
    once in the main process and with `workers` workers."""
    import torch

    reference = {}
    load_pass(config(data_dir, False, 0, batch), keep=lambda k, f, i: reference.__setitem__(k, (f.clone(), i.clone())))
    problems = []
    for w in sorted({0, workers}):
        seen = set()

        def compare(key, frames, frame_idx, w=w, seen=seen):
            seen.add(key)
            if key not in reference:
                problems.append(f"once, {w} workers: view {key} not in the per-view pass")
                return
            ref_frames, ref_idx = reference[key]
            if not torch.equal(ref_idx, frame_idx):
                problems.append(f"once, {w} workers: view {key} frame_idx {frame_idx.tolist()} != {ref_idx.tolist()}")
            elif not torch.equal(ref_frames, frames):
                diff = (ref_frames - frames).abs().max().item()
                problems.append(f"once, {w} workers: view {key} frames differ (max abs diff {diff:.3g})")

        load_pass(config(data_dir, True, w, batch), keep=compare)
        for key in sorted(set(reference) - seen):
            problems.append(f"once, {w} workers: view {key} missing")
    return not problems, len(reference), problems


# ---------------------------------------------------------------------------- main
def build_parser():
    """The command line of this benchmark (tests/test_docs.py parses the documented commands with it)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=8, help="generated videos (default 8; 0 with --inputs: only those)")
    p.add_argument("--inputs", nargs="*", default=[], metavar="FILE", help="video files added to the set")
    p.add_argument("--repeats", type=int, default=3, help="passes per case (median reported)")
    p.add_argument("--workers", type=int, default=None, help="DATA_LOADER.NUM_WORKERS of the worker cases (cores)")
    p.add_argument("--batch", type=int, default=8, help="TEST.BATCH_SIZE: views per batch (one process)")
    p.add_argument("--check-videos", type=int, default=2, help="videos of the frames-identical check (0: none)")
    p.add_argument("--quick", action="store_true", help="a smoke test: 2 videos, 1 pass, the check on 1 video")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.quick:
        args.videos, args.repeats, args.check_videos = min(args.videos, 2), 1, min(args.check_videos, 1)
    logging.basicConfig(level=logging.WARNING)
    workers = args.workers if args.workers is not None else os.cpu_count() or 1
    print(f"load average at start: {load_average()}")
    missing = [p for p in args.inputs if not os.path.isfile(p)]
    if missing:
        raise SystemExit(f"no such file: {', '.join(missing)}")
    paths = generated_videos(args.videos) + [os.path.abspath(p) for p in args.inputs]
    if not paths:
        raise SystemExit("no videos: --videos 0 needs --inputs")
    read_once(paths)

    import torch

    from vtn.engine.components import register_components

    register_components()
    data_dir, check_dir = os.path.join(CACHE, "set"), os.path.join(CACHE, "check")
    write_test_csv(data_dir, paths)
    cfg = config(data_dir, True, 0, args.batch)
    d, t = cfg.DATA, cfg.TEST
    views = t.NUM_ENSEMBLE_VIEWS * t.NUM_SPATIAL_CROPS
    print(
        f"{len(paths)} videos ({args.videos} generated, {len(args.inputs)} given), {views} views each "
        f"({t.NUM_ENSEMBLE_VIEWS} clips x {t.NUM_SPATIAL_CROPS} crops) of {d.NUM_FRAMES} frames over "
        f"{d.TEMPORAL_FOOTPRINT} s, scale {d.TEST_SCALE}, crop {d.TEST_CROP_SIZE}; TEST.BATCH_SIZE {args.batch}; "
        f"DECODE_SKIP_NONREF {d.DECODE_SKIP_NONREF}, DECODE_THREADS {d.DECODE_THREADS}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads in the main process, {os.cpu_count()} cores; median of {args.repeats} "
        "interleaved passes"
    )

    same = True
    if args.check_videos:
        write_test_csv(check_dir, paths[: args.check_videos])
        start = time.perf_counter()
        same, compared, problems = check_identical(check_dir, workers, args.batch)
        print(
            f"check: every view of the first {min(args.check_videos, len(paths))} videos, per-view (1 process) "
            f"against once (1 process and {workers} workers), in {time.perf_counter() - start:.1f} s"
        )
        print(f"frames identical: {'yes' if same else 'NO'} ({compared} views)")
        for line in problems[:10]:
            print(f"  {line}")

    cases = [(mode, w) for w in sorted({0, workers}) for mode in MODES]
    results = {case: [] for case in cases}
    loads = [os.getloadavg()[0]]
    clips, crops = range(t.NUM_ENSEMBLE_VIEWS), range(t.NUM_SPATIAL_CROPS)
    expected = {(v, c, s) for v in range(len(paths)) for c in clips for s in crops}
    for r in range(args.repeats):
        for mode, w in cases[r % len(cases) :] + cases[: r % len(cases)]:
            res = load_pass(config(data_dir, MODES[mode], w, args.batch))
            if res["keys"] != expected or res["not_ok"]:
                raise AssertionError(
                    f"{mode}, {w} workers: {len(res['keys'])} views of {len(expected)} read, {res['not_ok']} not ok"
                )
            results[(mode, w)].append(res)
            loads.append(os.getloadavg()[0])
    report(results, workers, len(paths), views, loads)
    print(f"load average at end: {load_average()}")
    if not same:
        raise SystemExit(1)


def report(results, workers, num_videos, views, loads):
    def median(case, f):
        return statistics.median(f(res) for res in results[case])

    print(f"\n1-minute load average over the passes: {min(loads):.1f}-{max(loads):.1f}")
    print(
        "| DATA_LOADER.NUM_WORKERS | mode | videos/s | views/s | CPU ms/video (workers') | s/pass, all passes | "
        "batches |"
    )
    print("|---|---|---|---|---|---|---|")
    for (mode, w), runs in results.items():
        seconds = median((mode, w), lambda r: r["seconds"])
        cpu = 1000 * median((mode, w), lambda r: r["cpu"]) / num_videos
        own = 1000 * median((mode, w), lambda r: r["workers_cpu"]) / num_videos
        passes = " ".join(f"{r['seconds']:.1f}" for r in runs)
        print(
            f"| {w} | {mode} | {num_videos / seconds:.2f} | {num_videos * views / seconds:.1f} | {cpu:.0f} ({own:.0f}) "
            f"| {passes} | {runs[0]['batches']} |"
        )
    print()
    print(
        "| DATA_LOADER.NUM_WORKERS | videos/s per-view / once | once / per-view | CPU ms/video per-view / once "
        "| CPU per-view / once |"
    )
    print("|---|---|---|---|---|")
    for w in sorted({0, workers}):
        rate = {m: num_videos / median((m, w), lambda r: r["seconds"]) for m in MODES}
        cpu = {m: 1000 * median((m, w), lambda r: r["cpu"]) / num_videos for m in MODES}
        print(
            f"| {w} | {rate['per-view']:.2f} / {rate['once']:.2f} | **{rate['once'] / rate['per-view']:.2f}x** "
            f"| {cpu['per-view']:.0f} / {cpu['once']:.0f} | {cpu['per-view'] / cpu['once']:.2f}x |"
        )


if __name__ == "__main__":
    main()
