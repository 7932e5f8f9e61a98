#!/usr/bin/env python
"""Test-time data cost: the multi-view loader per-view against once per video, the full-video loader against an
older revision, and what the shuffle ablation adds to the demo's test phase.

    python benchmarks/test_loader.py                     # multi-view: 8 videos, 1 process and a worker per core
    python benchmarks/test_loader.py --quick             # 2 videos, 1 pass: a smoke test
    python benchmarks/test_loader.py --videos 16 --repeats 5 --workers 4
    python benchmarks/test_loader.py --videos 0 --inputs a.mp4 b.mkv   # real files only (--inputs adds them)
    python benchmarks/test_loader.py --part full_video   # the full-video loader, this checkout against 062d901
    python benchmarks/test_loader.py --part full_video --against HEAD~1
    python benchmarks/test_loader.py --part shuffle      # the demo's test phase without and with the shuffle ablation
    python benchmarks/test_loader.py --part all

--part multi_view (the default, ~2 min). The loader is the project's test loader (`vtn.datasets.build_loader(cfg,
"test", "multi_view")` on the real `kinetics` dataset, reading a PySlowFast `path label` test.csv): decode, scale,
crop, normalise and batch every view, no model. Config: configs/Kinetics/VIT_B_VTN.yaml (16 frames over 5.12 s per
clip, TEST.NUM_ENSEMBLE_VIEWS 10 x TEST.NUM_SPATIAL_CROPS 3 = 30 views per video, DATA.TEST_SCALE 256,
DATA.TEST_CROP_SIZE 224) with NUM_GPUS 0, TEST.BATCH_SIZE 8 views per process (SOLVER.REFERENCE_WORLD_SIZE 0:
PySlowFast's meaning, the batch over all processes, here one) and DATA_LOADER.PERSISTENT_WORKERS False (so that the
workers exit, and their CPU time is counted, at the end of each pass). Cases: DATA.DECODE_VIDEO_ONCE False (per-view:
30 decodes per video) and True (once: the union of the frames of a video's clips decoded once, the crops cut from
the same frames) x DATA_LOADER.NUM_WORKERS 0 (the main process) and one worker per core (--workers). Each pass
builds its loader (worker start-up and the probes included) and reads the whole test set; the cases are interleaved,
in a rotated order at each repeat, and the medians of --repeats passes are reported: videos/s (wall clock) and CPU
ms per video (this process and its exited workers), with the ratios once / per-view.

Before timing, every view of the first 2 videos is read in both modes (per-view in the main process, once in the
main process and with the workers) and compared: torch.equal on the frames and frame indices of each
(video_idx, temporal_idx, spatial_idx).

The generated videos (data_cache/bench_test_loader/, made once): Kinetics-like clips (a camera panning over
texture with a moving square, see kinetics_like.py) of 10 s, short side 256 as Kinetics is usually resized,
alternately 340x256 at 30 fps and 456x256 at 25 fps, H.264 (libx264 preset medium, crf 23, 3 B-frames, one
slice per frame, as the ffmpeg command line writes it).

--part full_video. The full-video test loader (`build_loader(cfg, "test", "full_video")`: TEST.FULL_VIDEO_FRAMES
250 frames spread over each video, scaled to 256 and centre-cropped to 224, normalised, batched; no model) on the
same generated videos and config, TEST.BATCH_SIZE --full-batch videos per batch (1: the config's 8 over 8 GPUs),
DATA_LOADER.NUM_WORKERS 0 and one per core, for this checkout against --against (default 062d901, the full-video
path before frames went straight into their final buffer and normalisation became a table lookup). The other
revision is checked out with `git worktree add` into a temporary folder (removed at the end). Every pass is a
fresh process running this file's measuring code with the tree it measures first on sys.path (this checkout's
passes too, so that both are measured alike): it imports vtn, then times one pass that builds the loader and
reads the whole set (CPU time of the process and its exited workers; imports not counted). The passes of the
two trees are interleaved, in a rotated order at each repeat; medians of --repeats. Before timing, the first
--check-videos videos are read by both trees (1 process) and their batches' "frames" and "frame_idx" compared
with torch.equal.

--part shuffle. The test phase of the demo (configs/Synthetic/VTN_TINY.yaml: its 48 test videos of the generated
synthetic dataset in data_cache/synthetic/, made on first use; TEST.PROTOCOLS as the config has them, multi_view
10x3 and full_video 250 frames, DATA_LOADER.NUM_WORKERS 2) run in this process through `vtn.engine.tester.test` on
one model of random weights (TRAIN.ENABLE False, TEST.ALLOW_RANDOM_INIT True), with TEST.SHUFFLE_ABLATION False and
True, interleaved after one untimed run, medians of --repeats; DATA_LOADER.PERSISTENT_WORKERS False so that each
pass's workers exit, and their CPU time is counted, at the end of the pass. Each test pass over the data
(`tester.test_run`) is timed (wall and CPU), and the whole `test()`. The extra cost of the ablation is reported as a
fraction of the pass without it: a second full pass for the shuffled protocol would be 100%. The unshuffled results
must be the same with and without the ablation.
"""

import argparse
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import get_context

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.kinetics_like import cpu_seconds, load_average, write_video  # noqa: E402

CACHE = os.path.join(ROOT, "data_cache", "bench_test_loader")
CONFIG_REL = os.path.join("configs", "Kinetics", "VIT_B_VTN.yaml")
CONFIG = os.path.join(ROOT, CONFIG_REL)
DEMO_CONFIG = os.path.join(ROOT, "configs", "Synthetic", "VTN_TINY.yaml")
DEMO_DATA = os.path.join(ROOT, "data_cache", "synthetic")  # the demo's DATA.PATH_TO_DATA_DIR, from the repository root
AGAINST = "062d901"
PARTS = ("multi_view", "full_video", "shuffle")
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
def config(
    data_dir: str,
    once: bool,
    workers: int,
    batch: int,
    protocol: str = "multi_view",
    full_frames: int = 250,
    config_file: str = CONFIG,
):
    from vtn.config import load_config

    opts = [
        "NUM_GPUS",
        0,
        "SOLVER.REFERENCE_WORLD_SIZE",
        0,
        "TEST.BATCH_SIZE",
        batch,
        "TEST.PROTOCOLS",
        [protocol],
        "TEST.FULL_VIDEO_FRAMES",
        full_frames,
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
    return load_config(config_file, opts)


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def load_pass(cfg, keep=None) -> dict:
    """Read the whole test set once with the protocol of TEST.PROTOCOLS: seconds, CPU seconds (all, and the exited
    workers'), views, keys seen, views not ok. `keep(key, frames, frame_idx)` receives every view."""
    from vtn.datasets import build_loader

    start, cpu, child = time.perf_counter(), cpu_seconds(), children_cpu()
    loader = build_loader(cfg, "test", cfg.TEST.PROTOCOLS[0])
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
    p.add_argument("--part", choices=(*PARTS, "all"), default="multi_view", help="what to measure (default multi_view)")
    p.add_argument("--videos", type=int, default=8, help="generated videos (default 8; 0 with --inputs: only those)")
    p.add_argument("--inputs", nargs="*", default=[], metavar="FILE", help="video files added to the set")
    p.add_argument("--repeats", type=int, default=3, help="passes per case (median reported)")
    p.add_argument("--workers", type=int, default=None, help="DATA_LOADER.NUM_WORKERS of the worker cases (cores)")
    p.add_argument("--batch", type=int, default=8, help="multi_view: TEST.BATCH_SIZE, views per batch (one process)")
    p.add_argument("--check-videos", type=int, default=2, help="videos of the frames-identical check (0: none)")
    p.add_argument("--quick", action="store_true", help="a smoke test: 2 videos, 1 pass, the check on 1 video")
    p.add_argument("--against", default=AGAINST, metavar="REV", help=f"full_video: the revision (default {AGAINST})")
    p.add_argument("--full-batch", type=int, default=1, help="full_video: TEST.BATCH_SIZE, videos per batch")
    p.add_argument("--full-frames", type=int, default=250, help="full_video: TEST.FULL_VIDEO_FRAMES")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one full_video pass (JSON spec): internal
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.child is not None:
        return full_video_child(json.loads(args.child))
    if args.quick:
        args.videos, args.repeats, args.check_videos = min(args.videos, 2), 1, min(args.check_videos, 1)
    logging.basicConfig(level=logging.WARNING)
    workers = args.workers if args.workers is not None else os.cpu_count() or 1
    print(f"load average at start: {load_average()}")
    parts = PARTS if args.part == "all" else (args.part,)
    ok = True
    for part in parts:
        if len(parts) > 1:
            print(f"\n=== {part} ({time.strftime('%H:%M:%S')}, load average {load_average()})")
        run_part = {"multi_view": multi_view_part, "full_video": full_video_part, "shuffle": shuffle_part}[part]
        ok = run_part(args, workers) and ok
    print(f"load average at end: {load_average()}")
    if not ok:
        raise SystemExit(1)


def video_set(args) -> list[str]:
    """The generated videos (made unless they are there) and --inputs, each read once."""
    missing = [p for p in args.inputs if not os.path.isfile(p)]
    if missing:
        raise SystemExit(f"no such file: {', '.join(missing)}")
    paths = generated_videos(args.videos) + [os.path.abspath(p) for p in args.inputs]
    if not paths:
        raise SystemExit("no videos: --videos 0 needs --inputs")
    read_once(paths)
    return paths


def rotated(cases: list, r: int) -> list:
    """The cases in the order of repeat `r`: each case first in turn."""
    return cases[r % len(cases) :] + cases[: r % len(cases)]


# ---------------------------------------------------------------------------- multi-view: per-view against once
def multi_view_part(args, workers: int) -> bool:
    paths = video_set(args)

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
        for mode, w in rotated(cases, r):
            res = load_pass(config(data_dir, MODES[mode], w, args.batch))
            if res["keys"] != expected or res["not_ok"]:
                raise AssertionError(
                    f"{mode}, {w} workers: {len(res['keys'])} views of {len(expected)} read, {res['not_ok']} not ok"
                )
            results[(mode, w)].append(res)
            loads.append(os.getloadavg()[0])
    report(results, workers, len(paths), views, loads)
    return same


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


# ---------------------------------------------------------------------------- full video: against a revision
def git(*argv: str) -> str:
    return subprocess.run(["git", "-C", ROOT, *argv], capture_output=True, text=True, check=True).stdout.strip()


def full_video_child(spec: dict) -> None:
    """One pass of the full-video test loader with the vtn of spec["tree"] (first on sys.path), in this fresh
    process; prints `RESULT {json}`. With spec["save"], every item's frames and frame indices go to that file."""
    tree = os.path.realpath(spec["tree"])
    sys.path.insert(0, tree)
    import av  # noqa: F401  (imported before the timed pass, as the loader's decoder and torch are)
    import torch

    import vtn
    import vtn.datasets  # noqa: F401
    import vtn.video.decoder  # noqa: F401
    from vtn.engine.components import register_components

    where = os.path.realpath(vtn.__file__)
    if not where.startswith(tree + os.sep):
        raise SystemExit(f"vtn was imported from {where}, not from {tree}")
    logging.basicConfig(level=logging.WARNING)
    register_components()
    cfg = config(
        spec["data_dir"],
        True,
        spec["workers"],
        spec["batch"],
        "full_video",
        spec["frames"],
        os.path.join(tree, CONFIG_REL),
    )
    kept = {}
    keep = (lambda k, f, i: kept.__setitem__(k, (f.clone(), i.clone()))) if spec.get("save") else None
    res = load_pass(cfg, keep=keep)
    if spec.get("save"):
        torch.save(kept, spec["save"])
    out = {k: res[k] for k in ("seconds", "cpu", "workers_cpu", "not_ok", "batches", "batch_size")}
    out.update(views=len(res["keys"]), vtn=where, threads=torch.get_num_threads())
    print("RESULT " + json.dumps(out), flush=True)


def run_child(tree: str, **spec) -> dict:
    """full_video_child in a fresh Python process (cwd: the tree it measures)."""
    spec = dict(spec, tree=tree)
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
        cwd=tree,
        capture_output=True,
        text=True,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"full_video pass with {tree} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def compare_saved(reference: str, other: str) -> tuple[int, list[str]]:
    """(items compared, what differed) between two files of full_video_child: torch.equal on frames and indices."""
    import torch

    a, b = torch.load(reference), torch.load(other)
    problems = [f"video {key}: missing in one of them" for key in sorted(set(a) ^ set(b))]
    for key in sorted(set(a) & set(b)):
        (fa, ia), (fb, ib) = a[key], b[key]
        if not torch.equal(ia, ib):
            problems.append(f"video {key}: frame_idx differ")
        elif fa.shape != fb.shape or not torch.equal(fa, fb):
            diff = (fa - fb).abs().max().item() if fa.shape == fb.shape else float("nan")
            problems.append(f"video {key}: frames differ ({tuple(fa.shape)} / {tuple(fb.shape)}, max abs {diff:.3g})")
    return len(a), problems


def full_video_part(args, workers: int) -> bool:
    paths = video_set(args)
    data_dir, check_dir = os.path.join(CACHE, "set"), os.path.join(CACHE, "check")
    write_test_csv(data_dir, paths)
    head, old_rev = git("rev-parse", "--short", "HEAD"), git("rev-parse", "--short", args.against + "^{commit}")
    old, new = f"{args.against}", f"this checkout ({head})"
    tmp = tempfile.mkdtemp(prefix="vtn-bench-test-loader-")
    old_tree = os.path.join(tmp, old_rev)
    git("worktree", "add", "--detach", "--quiet", old_tree, old_rev)
    try:
        trees = {old: old_tree, new: ROOT}
        print(
            f"{len(paths)} videos ({args.videos} generated, {len(args.inputs)} given); full_video: "
            f"TEST.FULL_VIDEO_FRAMES {args.full_frames} spread over each video, {CONFIG_REL} (scale and crop), "
            f"TEST.BATCH_SIZE {args.full_batch} video(s) per batch; {old} ({old_rev}, git worktree in {old_tree}) "
            f"against {new}; every pass a fresh process; {os.cpu_count()} cores; median of {args.repeats} "
            "interleaved passes"
        )
        same = True
        if args.check_videos:
            write_test_csv(check_dir, paths[: args.check_videos])
            start = time.perf_counter()
            files = {}
            for name, tree in trees.items():
                files[name] = os.path.join(tmp, f"check-{len(files)}.pt")
                run_child(tree, data_dir=check_dir, workers=0, batch=1, frames=args.full_frames, save=files[name])
            compared, problems = compare_saved(files[old], files[new])
            same = not problems
            print(
                f"check: the full-video frames of the first {min(args.check_videos, len(paths))} videos, {old} "
                f"against {new} (1 process each), in {time.perf_counter() - start:.1f} s"
            )
            print(
                f"frames identical: {'yes' if same else 'NO'} ({compared} videos, torch.equal of frames and frame_idx)"
            )
            for line in problems[:10]:
                print(f"  {line}")
            for f in files.values():
                os.remove(f)

        cases = [(name, w) for w in sorted({0, workers}) for name in trees]
        results = {case: [] for case in cases}
        loads = [os.getloadavg()[0]]
        for r in range(args.repeats):
            for name, w in rotated(cases, r):
                res = run_child(
                    trees[name], data_dir=data_dir, workers=w, batch=args.full_batch, frames=args.full_frames
                )
                if res["views"] != len(paths) or res["not_ok"]:
                    raise AssertionError(
                        f"{name}, {w} workers: {res['views']} of {len(paths)} read, {res['not_ok']} not ok"
                    )
                results[(name, w)].append(res)
                loads.append(os.getloadavg()[0])
    finally:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", old_tree], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    report_full_video(results, workers, len(paths), loads, old, new, args.full_frames)
    return same


def report_full_video(results, workers, num_videos, loads, old, new, frames):
    def median(case, f):
        return statistics.median(f(res) for res in results[case])

    print(f"\n1-minute load average over the passes: {min(loads):.1f}-{max(loads):.1f}")
    print("| DATA_LOADER.NUM_WORKERS | revision | videos/s | CPU ms/video (workers') | s/pass, all passes | batches |")
    print("|---|---|---|---|---|---|")
    for (name, w), runs in results.items():
        seconds = median((name, w), lambda r: r["seconds"])
        cpu = 1000 * median((name, w), lambda r: r["cpu"]) / num_videos
        own = 1000 * median((name, w), lambda r: r["workers_cpu"]) / num_videos
        passes = " ".join(f"{r['seconds']:.1f}" for r in runs)
        print(
            f"| {w} | {name} | {num_videos / seconds:.2f} | {cpu:.0f} ({own:.0f}) | {passes} | {runs[0]['batches']} |"
        )
    print()
    print(
        f"| DATA_LOADER.NUM_WORKERS | CPU ms/video {old} / now | CPU {old} / now | videos/s {old} / now "
        f"| videos/s now / {old} |"
    )
    print("|---|---|---|---|---|")
    ratios = []
    for w in sorted({0, workers}):
        rate = {n: num_videos / median((n, w), lambda r: r["seconds"]) for n in (old, new)}
        cpu = {n: 1000 * median((n, w), lambda r: r["cpu"]) / num_videos for n in (old, new)}
        ratios.append(cpu[old] / cpu[new])
        print(
            f"| {w} | {cpu[old]:.0f} / {cpu[new]:.0f} | **{cpu[old] / cpu[new]:.2f}x** | {rate[old]:.2f} / "
            f"{rate[new]:.2f} | {rate[new] / rate[old]:.2f}x |"
        )
    met = "met" if min(ratios) >= 1.25 else "NOT met"
    measured = ", ".join(f"{x:.2f}x" for x in ratios)
    print(f"\ngoal: at least 1.25x less CPU per video ({frames} frames) than {old}: {met} ({measured})")


# ---------------------------------------------------------------------------- shuffle ablation: the demo's test phase
def demo_config(ablation: bool, output_dir: str):
    from vtn.config import load_config

    opts = [
        "TRAIN.ENABLE",
        False,
        "TEST.ALLOW_RANDOM_INIT",
        True,
        "TEST.SHUFFLE_ABLATION",
        ablation,
        "DATA.PATH_TO_DATA_DIR",
        DEMO_DATA,
        "DATA_LOADER.PERSISTENT_WORKERS",
        False,
        "OUTPUT_DIR",
        output_dir,
    ]
    return load_config(DEMO_CONFIG, opts)


def shuffle_part(args, workers: int) -> bool:
    import torch

    from vtn.config import views_to_test
    from vtn.datasets.synthetic import ensure_synthetic_dataset
    from vtn.engine import tester
    from vtn.engine.components import register_components
    from vtn.models import build_model

    register_components()
    logging.getLogger("vtn.engine.tester").setLevel(logging.ERROR)  # "Testing RANDOM weights" at every run
    base = tempfile.mkdtemp(prefix="vtn-bench-shuffle-")
    try:
        cfg = demo_config(False, base)
        start, existed = time.perf_counter(), os.path.isdir(DEMO_DATA)
        ensure_synthetic_dataset(cfg)
        if not existed:
            print(f"generated the demo dataset into {DEMO_DATA} in {time.perf_counter() - start:.1f} s")
        torch.manual_seed(cfg.RNG_SEED)
        model = build_model(cfg)
        t = cfg.TEST
        with open(os.path.join(DEMO_DATA, "test.csv")) as f:
            num_videos = sum(1 for line in f if line.strip())
        print(
            f"demo test phase ({os.path.relpath(DEMO_CONFIG, ROOT)}, random weights): {num_videos} test videos, "
            f"TEST.PROTOCOLS {list(t.PROTOCOLS)} ({t.NUM_ENSEMBLE_VIEWS} x {t.NUM_SPATIAL_CROPS} views of "
            f"{cfg.DATA.NUM_FRAMES} frames; {t.FULL_VIDEO_FRAMES} frames), {cfg.DATA.TEST_CROP_SIZE} px, "
            f"TEST.BATCH_SIZE {t.BATCH_SIZE}, DATA_LOADER.NUM_WORKERS {cfg.DATA_LOADER.NUM_WORKERS}; torch "
            f"{torch.get_num_threads()} threads, {os.cpu_count()} cores; TEST.SHUFFLE_ABLATION False / True, median "
            f"of {args.repeats} interleaved runs"
        )
        print("passes with the ablation: " + ", ".join(v.name for v in views_to_test(demo_config(True, base))))

        original, passes = tester.test_run, []

        def timed_run(cfg, model, net, device, view, *rest, **kw):
            start, cpu = time.perf_counter(), cpu_seconds()
            rows = original(cfg, model, net, device, view, *rest, **kw)
            passes.append((view.name, sorted(rows), time.perf_counter() - start, cpu_seconds() - cpu))
            return rows

        start = time.perf_counter()
        tester.test(demo_config(True, tempfile.mkdtemp(dir=base)), model=model)  # first-call costs out of the runs
        print(f"warm-up run (with the ablation, untimed): {time.perf_counter() - start:.1f} s")
        cases = {"without": False, "with": True}
        results = {name: [] for name in cases}
        loads = [os.getloadavg()[0]]
        tester.test_run = timed_run
        try:
            for r in range(args.repeats):
                for name in rotated(list(cases), r):
                    out = tempfile.mkdtemp(dir=base)
                    passes.clear()
                    start, cpu = time.perf_counter(), cpu_seconds()
                    rows = tester.test(demo_config(cases[name], out), model=model)
                    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
                    results[name].append({"seconds": seconds, "cpu": cpu, "passes": list(passes), "rows": rows})
                    shutil.rmtree(out)
                    loads.append(os.getloadavg()[0])
        finally:
            tester.test_run = original
    finally:
        shutil.rmtree(base, ignore_errors=True)

    protocols = list(t.PROTOCOLS)
    problems = []
    for run in results["with"] + results["without"][1:]:
        for ref, row in zip(results["without"][0]["rows"], [r for r in run["rows"] if r["protocol"] in protocols]):
            if ref != row:
                keys = sorted(k for k in set(ref) | set(row) if ref.get(k) != row.get(k))
                problems.append(f"{row['protocol']}: {', '.join(keys)} differ")
    print(f"unshuffled results the same without and with the ablation: {'yes' if not problems else 'NO'}")
    for line in problems[:10]:
        print(f"  {line}")
    report_shuffle(results, protocols, loads)
    return not problems


def report_shuffle(results, protocols, loads):
    def median(name, f):
        return statistics.median(f(res) for res in results[name])

    def pass_of(res, protocol):
        return next(p for p in res["passes"] if p[0] == protocol)

    print(f"\n1-minute load average over the runs: {min(loads):.1f}-{max(loads):.1f}")
    print(
        "| test pass | runs (with the ablation) | wall s without / with | extra wall | CPU s without / with "
        "| extra CPU | wall s, all runs without; with |"
    )
    print("|---|---|---|---|---|---|---|")
    extras = []
    rows = [(p, lambda res, p=p: pass_of(res, p)[2], lambda res, p=p: pass_of(res, p)[3]) for p in protocols]
    rows.append(("whole test()", lambda res: res["seconds"], lambda res: res["cpu"]))
    for label, wall_of, cpu_of in rows:
        wall = {n: median(n, wall_of) for n in results}
        cpu = {n: median(n, cpu_of) for n in results}
        extra_wall, extra_cpu = (wall["with"] / wall["without"] - 1) * 100, (cpu["with"] / cpu["without"] - 1) * 100
        runs = " + ".join(pass_of(results["with"][0], label)[1]) if label in protocols else "all"
        if label in protocols:
            extras += [extra_wall, extra_cpu]
        all_runs = "; ".join(" ".join(f"{wall_of(res):.1f}" for res in results[n]) for n in ("without", "with"))
        print(
            f"| {label} | {runs} | {wall['without']:.1f} / {wall['with']:.1f} | **{extra_wall:+.0f}%** | "
            f"{cpu['without']:.1f} / {cpu['with']:.1f} | **{extra_cpu:+.0f}%** | {all_runs} |"
        )
    met = "met" if max(extras) < 50 else "NOT met"
    print(f"\ngoal: the ablation adds under 50% of a protocol's test pass (a second pass: 100%): {met}")


if __name__ == "__main__":
    main()
