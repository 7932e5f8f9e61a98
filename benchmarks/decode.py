#!/usr/bin/env python
"""Clip decoding speed: the decoder's default against today's (no frame skipping) and a plain baseline.

    python benchmarks/decode.py                          # the generated sets, 1 process and one per core
    python benchmarks/decode.py --short-side 256         # resize while converting, as training does
    python benchmarks/decode.py --videos a.mp4 b.mp4     # any files, as one set
    python benchmarks/decode.py --sets h264_bframes --threads   # also each FFmpeg thread type, skipping on/off

Three decoders read the same clips:
- baseline (written here, what PySlowFast's PyAV path does): seek to the clip, decode every frame of the
  footprint, convert every decoded frame to an RGB array, then pick the sampled ones;
- today: the project's decoder with DATA.DECODE_SKIP_NONREF False and DATA.DECODE_THREADS AUTO (one seek,
  decode forward, convert only the sampled frames);
- default: the project's decoder as the default config builds it (non-reference frames that no sampled frame
  needs are not decoded; DATA.DECODE_THREADS DEFAULT: frame and slice threads in 1 process, slice threads in
  the processes that decode at once, which stand for DataLoader workers).
All three resize at the same point (in the conversion), and the benchmark checks that they return
bit-identical frames for every clip it times.

The generated sets (data_cache/bench_decode/, made once): 4 Kinetics-like videos each (10 s at 30 fps,
640x360 and 480x360, a camera panning over texture; see kinetics_like.py): H.264 (libx264 preset medium, crf
23, 3 B-frames in a pyramid, one slice per frame: what YouTube and ffmpeg write), H.264 without B-frames,
MPEG-4 part 2 with and without B-frames, and VP9 in WebM. Workloads: 16-frame training clips over 5.12 s (4 per
video), multi-view clips (10 per video) and full-video sampling (250 frames). Reported: clips/s, the median of
--repeats passes interleaved over the decoders, with 1 process and with N processes decoding at once (each
the whole workload, as data-loader workers do; --procs), the decoded frames per clip, and the ratios.
"""

import argparse
import os
import statistics
import sys
import time
from multiprocessing import get_context

import av
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.kinetics_like import cpu_seconds, load_average, write_video  # noqa: E402
from vtn.config import get_cfg  # noqa: E402
from vtn.datasets.sampling import full_video_indices, train_clip_indices, view_clip_indices  # noqa: E402
from vtn.datasets.transforms import scaled_size  # noqa: E402
from vtn.video import decoder as decoder_module  # noqa: E402
from vtn.video.decoder import THREAD_TYPES, PyAVDecoder, build_decoder  # noqa: E402

CACHE = os.path.join(ROOT, "data_cache", "bench_decode")
SIZES = ((640, 360), (480, 360))
# name -> (file extension, write_video keyword arguments); each set's videos are made with them
X264 = {"preset": "medium", "crf": "23"}
SETS = {
    "h264_bframes": (".mp4", dict(codec="libx264", options=X264, thread_type="FRAME")),
    "h264_no_bframes": (
        ".mp4",
        dict(codec="libx264", options={**X264, "x264-params": "bframes=0"}, thread_type="FRAME"),
    ),
    "mpeg4_bframes": (".mp4", dict(codec="mpeg4", max_b_frames=2, bit_rate=1_500_000)),
    "mpeg4_no_bframes": (".mp4", dict(codec="mpeg4", bit_rate=1_500_000)),
    "vp9": (".webm", dict(codec="libvpx-vp9", options={"deadline": "realtime", "cpu-used": "8", "crf": "32"})),
}
VIDEOS_PER_SET, SECONDS, FPS = 4, 10, 30
WORKLOADS = (
    ("train", "train clip 16 f / 5.12 s"),
    ("multi_view", "multi-view 10 x 16 f"),
    ("full", "full video 250 f"),
)


def baseline_decode(path, indices, size, info=None):
    """Seek, decode the whole footprint, convert all frames, then pick the sampled ones."""
    indices = np.asarray(indices)
    first, last = int(indices.min()), int(indices.max())
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = stream.average_rate
        start = stream.start_time or 0
        if first > 0:
            container.seek(start + int(first / fps / stream.time_base), stream=stream, backward=True)
        converted = {}
        for frame in container.decode(stream):
            idx = int(round((frame.pts - start) * stream.time_base * fps))
            if idx > last:
                break
            kw = {} if size is None else {"width": size[0], "height": size[1]}
            converted[idx] = frame.to_ndarray(format="rgb24", **kw)  # every frame of the footprint
    keep = [i for i in indices.tolist() if i in converted]
    return np.stack([converted[i] for i in keep]), np.asarray(keep)


def decoders(threads=None) -> dict:
    """name -> decoder factory: today's, the default config's, or (threads) one per thread type and skipping."""
    if threads:
        return {
            f"{t} {'skip' if skip else 'full'}": (lambda t=t, skip=skip: PyAVDecoder(threads=t, skip_nonref=skip))
            for t in THREAD_TYPES
            for skip in (False, True)
        }
    return {
        "baseline": None,
        "today": lambda: PyAVDecoder(threads="AUTO", skip_nonref=False),
        "default": lambda: build_decoder(get_cfg()),
    }


def make_workload(paths, protocol, rng, train_clips=4, seconds=5.12, frames=16, views=10, full=250):
    probe = PyAVDecoder().probe
    jobs = []
    for path in paths:
        info = probe(path)
        n, fps, times = info.num_frames, info.fps, info.times
        if protocol == "train":
            clips = [train_clip_indices(n, fps, frames, seconds, rng, times=times) for _ in range(train_clips)]
        elif protocol == "multi_view":
            clips = [view_clip_indices(n, fps, frames, seconds, k, views, times=times) for k in range(views)]
        else:
            clips = [full_video_indices(n, full, fps, times)]
        jobs += [(path, info, idx) for idx in clips]
    return jobs


def _size(info, short_side):
    return None if not short_side else scaled_size(info.width, info.height, short_side)


def time_pass(args) -> tuple[float, float, int]:
    """(seconds, CPU seconds, frames decoded) of one pass of `name`'s decoder over the jobs."""
    name, jobs, short_side, threads = args
    factory = decoders(threads)[name]
    decoder = factory() if factory else None
    decode = decoder.decode if decoder else baseline_decode
    start, cpu = time.perf_counter(), cpu_seconds()
    for path, info, idx in jobs:
        decode(path, idx, _size(info, short_side), info=info)  # the probe is made once per video, as datasets do
    return time.perf_counter() - start, cpu_seconds() - cpu, decoder.frames_decoded if decoder else 0


def check_identical(jobs, names, short_side, threads) -> tuple[bool, int]:
    """(whether the project's decoders return the same frames for every job, jobs where the baseline does too:
    its seek can land after the clip's first frame in files with B-frames, which the project's decoder detects)."""
    made = {name: (f() if f else None) for name, f in decoders(threads).items() if name in names}
    same, baseline_same = True, 0
    for path, info, idx in jobs:
        size = _size(info, short_side)
        outs = {name: (d.decode if d else baseline_decode)(path, idx, size, info=info) for name, d in made.items()}
        ours = [o for name, o in outs.items() if name != "baseline"]
        same &= all(np.array_equal(o[0], ours[0][0]) and np.array_equal(o[1], ours[0][1]) for o in ours[1:])
        if "baseline" in outs:
            b = outs["baseline"]
            baseline_same += np.array_equal(b[0], ours[0][0]) and np.array_equal(b[1], ours[0][1])
    return same, baseline_same


def measure(jobs, names, short_side, repeats, procs, threads, pool):
    """name -> {procs: (clips/s, CPU ms/clip)}, and name -> decoded frames per clip."""
    rates, cpus, decoded = {}, {}, {}
    for r in range(repeats):  # interleaved, and each pass in another order, so that drift hits every decoder alike
        for name in names[r % len(names) :] + names[: r % len(names)]:
            for n in procs:
                if n == 1:
                    seconds, cpu, frames = time_pass((name, jobs, short_side, threads))
                    decoded[name] = frames / len(jobs)
                else:
                    start = time.perf_counter()
                    passes = pool.map(time_pass, [(name, jobs, short_side, threads)] * n, chunksize=1)
                    seconds, cpu = time.perf_counter() - start, sum(p[1] for p in passes)
                    decoded[name] = passes[0][2] / len(jobs)
                rates.setdefault(name, {}).setdefault(n, []).append(n * len(jobs) / seconds)
                cpus.setdefault(name, {}).setdefault(n, []).append(1000 * cpu / (n * len(jobs)))
    return (
        {k: {n: (statistics.median(v[n]), statistics.median(cpus[k][n])) for n in v} for k, v in rates.items()},
        decoded,
    )


def _as_loader_worker() -> None:
    """The processes that decode at once stand for DataLoader workers (DATA.DECODE_THREADS DEFAULT)."""
    decoder_module.LOADER_WORKER = True


def generated_set(name: str) -> list:
    """The paths of a generated set, made (2 processes) unless they are there."""
    ext, kwargs = SETS[name]
    folder = os.path.join(CACHE, name)
    paths = [os.path.join(folder, f"video_{i}{ext}") for i in range(VIDEOS_PER_SET)]
    todo = [(p, i, name) for i, p in enumerate(paths) if not os.path.exists(p)]
    if todo:
        start = time.monotonic()
        with get_context("fork").Pool(2) as pool:
            pool.map(_make_video, todo)
        print(f"generated {len(todo)} {name} videos into {folder} in {time.monotonic() - start:.1f} s")
    return paths


def _make_video(args) -> None:
    path, i, name = args
    part = path + ".part" + os.path.splitext(path)[1]
    write_video(part, np.random.default_rng([11, i]), SIZES[i % len(SIZES)], SECONDS * FPS, FPS, **SETS[name][1])
    os.replace(part, path)


def available(name: str) -> bool:
    return SETS[name][1]["codec"] in av.codecs_available


def build_parser():
    """The command line of this benchmark (tests/test_docs.py parses the documented commands with it)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", nargs="*", default=None, help="video files, as one set (default: the generated sets)")
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS), help="generated sets to run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--short-side", type=int, default=0, help="resize while converting (0: native size)")
    p.add_argument(
        "--procs", type=int, nargs="+", default=None, help="processes decoding at once (default: 1 and the cores)"
    )
    p.add_argument("--threads", action="store_true", help="instead: each FFmpeg thread type, skipping on and off")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    procs = args.procs or sorted({1, os.cpu_count() or 1})
    sets = {"files": args.videos} if args.videos else {s: generated_set(s) for s in args.sets if available(s)}
    names = list(decoders(args.threads))
    default = get_cfg().DATA
    print(
        f"load average at start: {load_average()}; short side {args.short_side or 'native'}; median of "
        f"{args.repeats} passes; processes {procs}; default: DECODE_SKIP_NONREF {default.DECODE_SKIP_NONREF}, "
        f"DECODE_THREADS {default.DECODE_THREADS}"
    )
    with get_context("fork").Pool(max(procs), initializer=_as_loader_worker) as pool:
        for set_name, paths in sets.items():
            print(f"\n## {set_name}: {len(paths)} videos")
            for protocol, label in WORKLOADS:
                jobs = make_workload(paths, protocol, np.random.default_rng(0))
                same = check_identical(jobs, names, args.short_side, args.threads)
                rates, decoded = measure(jobs, names, args.short_side, args.repeats, procs, args.threads, pool)
                report(label, rates, decoded, procs, same, args.threads, len(jobs))
    print(f"\nload average at end: {load_average()}")


def report(label, rates, decoded, procs, same, threads, num_jobs):
    baseline = "" if threads else f"; the baseline's in {same[1]} of {num_jobs} clips"
    print(f"\n{label}: frames identical: {'yes' if same[0] else 'NO'}{baseline}")
    if threads:
        ref = rates["AUTO full"]
        columns = " | ".join(f"{n} proc clips/s (CPU ms/clip)" for n in procs)
        print(f"| thread type, frames | {columns} | decoded/clip |")
        print("|---" * (len(procs) + 2) + "|")
        for name, r in rates.items():
            cells = [f"{r[n][0]:.1f} ({r[n][1]:.0f}) {r[n][0] / ref[n][0]:.2f}x" for n in procs]
            print(f"| {name} | " + " | ".join(cells) + f" | {decoded[name]:.0f} |")
        return
    print(
        "| processes | baseline clips/s | today clips/s | default clips/s | default / today | today / baseline "
        "| CPU ms/clip today / default |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in procs:
        b, t, d = rates["baseline"][n][0], rates["today"][n][0], rates["default"][n][0]
        print(
            f"| {n} | {b:.1f} | {t:.1f} | {d:.1f} | **{d / t:.2f}x** | {t / b:.2f}x "
            f"| {rates['today'][n][1]:.0f} / {rates['default'][n][1]:.0f} |"
        )
    print(f"decoded frames per clip: today {decoded['today']:.0f}, default {decoded['default']:.0f}")


if __name__ == "__main__":
    main()
