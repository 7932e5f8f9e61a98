#!/usr/bin/env python
"""Clip decoding speed: the project's decoder against a plain baseline, side by side in one process.

    python benchmarks/decode.py                       # the synthetic set (generated into data_cache/ if needed)
    python benchmarks/decode.py --videos a.mp4 b.mp4  # any files
    python benchmarks/decode.py --short-side 256      # resize while converting, as training does

Baseline (written here, what PySlowFast's PyAV path does): seek to the clip, decode every frame of the
footprint, convert every decoded frame to an RGB array, then pick the sampled ones. The project's decoder
seeks once, decodes forward and converts (and resizes) only the sampled frames. Both resize at the same
point (in the conversion), so their frames must be bit-identical; the benchmark checks that.

Reported, as the median of --repeats passes over the same clips: clips/s and frames/s (one process, so
per core) for 16-frame training clips over a 5.12 s footprint, multi-view clips (10 per video) and
full-video sampling (250 frames), and the ratio project / baseline.
"""

import argparse
import glob
import os
import statistics
import sys
import time

import av
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vtn.datasets.decoder import PyAVDecoder  # noqa: E402
from vtn.datasets.sampling import full_video_indices, train_clip_indices, view_clip_indices  # noqa: E402
from vtn.datasets.transforms import scaled_size  # noqa: E402


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


def make_workload(paths, decoder, protocol, rng, seconds=5.12, frames=16, views=10, full=250):
    jobs = []
    for path in paths:
        info = decoder.probe(path)
        if protocol == "train":
            idx = train_clip_indices(info.num_frames, info.fps, frames, seconds, rng, times=info.times)
            jobs.append((path, info, idx))
        elif protocol == "multi_view":
            jobs += [
                (path, info, view_clip_indices(info.num_frames, info.fps, frames, seconds, k, views, times=info.times))
                for k in range(views)
            ]
        else:
            jobs.append((path, info, full_video_indices(info.num_frames, full, info.fps, info.times)))
    return jobs


def time_pass(fn, jobs, short_side):
    start = time.perf_counter()
    frames = 0
    for path, info, idx in jobs:
        size = None if not short_side else scaled_size(info.width, info.height, short_side)
        out, _ = fn(path, idx, size, info=info)  # the probe is made once per video, as the datasets do
        frames += len(out)
    return time.perf_counter() - start, frames


def check_identical(jobs, decoder, short_side):
    for path, info, idx in jobs[:20]:
        size = None if not short_side else scaled_size(info.width, info.height, short_side)
        a, ia = decoder.decode(path, idx, size, info=info)
        b, ib = baseline_decode(path, idx, size)
        if not (np.array_equal(a, b) and np.array_equal(ia, ib)):
            return False
    return True


def synthetic_videos():
    from vtn.datasets.synthetic import SyntheticSpec, make_synthetic_dataset

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data_cache", "bench_synthetic")
    if not os.path.isdir(root):
        make_synthetic_dataset(
            root,
            SyntheticSpec(train_per_class=4, val_per_class=0, test_per_class=0, duration_range=(8.0, 12.0)),
            workers=2,
        )
    return sorted(glob.glob(os.path.join(root, "videos", "train", "*.mp4")))


def build_parser():
    """The command line of this benchmark (tests/test_docs.py parses the documented commands with it)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", nargs="*", default=None, help="video files (default: the synthetic set)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--short-side", type=int, default=0, help="resize while converting (0: native size)")
    return p


def main():
    args = build_parser().parse_args()
    paths = args.videos or synthetic_videos()
    decoder = PyAVDecoder()
    print(f"{len(paths)} videos; short side {args.short_side or 'native'}; median of {args.repeats} passes")
    print(
        f"{'workload':<28}{'project clips/s':>16}{'baseline clips/s':>18}{'project frames/s':>18}{'ratio':>8}"
        "  identical"
    )
    for protocol, label in (
        ("train", "train clip 16 f / 5.12 s"),
        ("multi_view", "multi-view 10 x 16 f"),
        ("full", "full video 250 f"),
    ):
        jobs = make_workload(paths, decoder, protocol, np.random.default_rng(0))
        same = check_identical(jobs, decoder, args.short_side)
        ours, base = [], []
        for _ in range(args.repeats):  # interleaved, so that machine noise hits both alike
            t, n = time_pass(decoder.decode, jobs, args.short_side)
            ours.append(t)
            t, _ = time_pass(baseline_decode, jobs, args.short_side)
            base.append(t)
        o, b = statistics.median(ours), statistics.median(base)
        print(f"{label:<28}{len(jobs) / o:>16.1f}{len(jobs) / b:>18.1f}{n / o:>18.0f}{b / o:>7.2f}x  {same}")


if __name__ == "__main__":
    main()
