#!/usr/bin/env python
"""Loader worker memory over a long run: the resident memory of one persistent DataLoader worker while it decodes
many thousands of training clips of many distinct videos, so that anything a worker keeps per video or per clip
shows as growth.

    python benchmarks/worker_memory.py                   # 10,000 clips, files then shards (2 min on 2 cores)
    python benchmarks/worker_memory.py --quick           # 1,500 clips of each: a smoke test
    python benchmarks/worker_memory.py --cases files --clips 20000 --every 500
    python benchmarks/worker_memory.py --videos 6000 --cases files   # more videos than a worker keeps probes of
    python benchmarks/worker_memory.py --trace           # also what grows: tracemalloc and gc counts in the worker

The loader is the project's training loader, `vtn.datasets.build_loader(cfg, "train")` (probe, decode, sample,
jitter-scale, crop, flip, normalise, batch; no model), read epoch after epoch (`shuffle_dataset(loader, epoch)`)
until --clips clips have reached this process. Config: configs/Synthetic/VTN_TINY.yaml as read at run time (8
frames over 5.12 s, DATA.TRAIN_JITTER_SCALES [64, 80], DATA.TRAIN_CROP_SIZE 64), with NUM_GPUS 0,
TRAIN.BATCH_SIZE 10 (every 250 clips is a whole number of batches), DATA_LOADER.NUM_WORKERS 1 and
DATA_LOADER.PERSISTENT_WORKERS True: one worker decodes every clip and lives through the epochs. Cases:
- files: TRAIN.DATASET synthetic, the videos as files;
- shards: TRAIN.DATASET shards, the same videos written once by `vtn.preparation.shards.write_shards` into local
  tar shards of at most --shard-mb MB: the worker reads runs of samples into memory and decodes from bytes.

The dataset (data_cache/bench_worker_memory/, made once: 50 s for 2,400 videos here): the synthetic dataset of
vtn/datasets/synthetic.py with --videos training videos (default 2,400: 400 per class), 2-4 s each at 24-30 fps,
64x48, 48x64 or 80x64, MPEG-4 part 2 (about 17 KB each; --codec h264: libx264 ultrafast, about 87 KB). An epoch is
240 batches, so 10,000 clips are a little over 4 epochs: every video is probed once (the dataset keeps the probes
of its last vtn.datasets.video_dataset.INFO_CACHE videos) and decoded 4 times.

Every --every clips (250; and after the first batch) the worker's /proc/PID/status is read: VmRSS and its parts
RssAnon (heap, arenas, anonymous maps), RssFile (mapped files and libraries) and RssShmem (shared memory: batches on
their way to this process). The worker is up to 2 batches (DataLoader's prefetch) ahead of the count. A forked
worker maps the anonymous memory of the process it was forked from, so its RssAnon starts at about that process's
(mostly the imports of torch and vtn; printed): only the rest is the worker's own. Reported: the series; VmRSS
after 1,000 clips and at the end, their ratio (the goal of issue 27: within 5% after 10,000 clips) and the growth
per clip; the resident KB by mapping of /proc/PID/smaps ([heap], [anon], shared memory, each file) that moved
between the two.

--trace: the worker also runs tracemalloc (8 frames; 5-7x slower) and, at each SIGUSR1 from this process (after
1,000 clips, half of --clips and at the end), writes a snapshot and its gc object counts by type. Printed: the
lines whose Python allocations grew from 1,000 clips to the end (with 3 callers of the 3 largest) and from half-way
to the end, with their growth per clip, and the object types whose count grew. tracemalloc counts a block freed to
one of Python's free lists (tuples, floats) where it was first allocated, even once it is reused elsewhere; and its
own tables (not traced) add a few MB of [anon] to the worker's RSS as they grow.
"""

import argparse
import functools
import glob
import json
import linecache
import os
import pickle
import signal
import sys
import tempfile
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.kinetics_like import load_average  # noqa: E402

CONFIG = os.path.join(ROOT, "configs", "Synthetic", "VTN_TINY.yaml")
CACHE = os.path.join(ROOT, "data_cache", "bench_worker_memory")
CASES = ("files", "shards")
CLASSES = 6
BATCH = 10
REFERENCE_CLIPS = 1000
GOAL = 0.05
STATUS_FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem")
DUMP_WAIT_S = 120.0
SOURCES: dict[str, list[str]] = {}  # path -> lines, as read at the start (see source_line)


# ---------------------------------------------------------------------------- data and configs
def synthetic_opts(videos: int, codec: str) -> list:
    per_class = -(-videos // CLASSES)
    data_dir = os.path.join(CACHE, f"synthetic-{per_class * CLASSES}-{codec}")
    return [
        "DATA.PATH_TO_DATA_DIR", data_dir, "SYNTHETIC.AUTO_GENERATE", True, "SYNTHETIC.TRAIN_PER_CLASS", per_class,
        "SYNTHETIC.VAL_PER_CLASS", 1, "SYNTHETIC.TEST_PER_CLASS", 1, "SYNTHETIC.DURATION_RANGE", [2.0, 4.0],
        "SYNTHETIC.SIZES", [[64, 48], [48, 64], [80, 64]], "SYNTHETIC.CODEC", codec,
    ]  # fmt: skip


def config(args, case: str, output: str):
    """The training config of `case` (see the module docstring)."""
    from vtn.config import load_config

    opts = ["NUM_GPUS", 0, "TRAIN.BATCH_SIZE", BATCH, "SOLVER.REFERENCE_WORLD_SIZE", 0, "OUTPUT_DIR", output]
    opts += ["DATA_LOADER.NUM_WORKERS", 1, "DATA_LOADER.PERSISTENT_WORKERS", True, "MODEL.NUM_CLASSES", CLASSES]
    opts += synthetic_opts(args.videos, args.codec)
    if case == "shards":
        opts += ["TRAIN.DATASET", "shards", "DATA.PATH_TO_DATA_DIR", shards_root(args)]
    return load_config(CONFIG, opts)


def shards_root(args) -> str:
    data_dir = synthetic_opts(args.videos, args.codec)[1]
    return f"{data_dir}-shards-{args.shard_mb:g}mb"


def prepare(args, output: str) -> None:
    """The synthetic dataset and (for the shards case) its train split as shards, each made once."""
    from vtn.datasets.synthetic import ensure_synthetic_dataset

    cfg = config(args, "files", output)
    start = time.perf_counter()
    ensure_synthetic_dataset(cfg)
    with open(os.path.join(cfg.DATA.PATH_TO_DATA_DIR, "train.csv")) as f:
        count = sum(1 for _ in f)
    size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(cfg.DATA.PATH_TO_DATA_DIR, "videos", "train", "*")))
    seconds = time.perf_counter() - start
    print(f"{count} training videos ({size / 1e6:.1f} MB) in {cfg.DATA.PATH_TO_DATA_DIR} ({seconds:.1f} s)")
    if "shards" in args.cases:
        from vtn.preparation.shards import write_shards

        start = time.perf_counter()
        report = write_shards(
            cfg, "train", os.path.join(shards_root(args), "train"), args.shard_mb, 2, 0, lambda _: None
        )
        if report.unreadable:
            raise SystemExit(f"unreadable videos while writing the shards: {report.unreadable[:3]}")
        shards = report.shards_written + report.shards_skipped
        print(f"... as {shards} shards of at most {args.shard_mb:g} MB in {shards_root(args)} "
              f"({report.shards_written} written, {time.perf_counter() - start:.1f} s)")  # fmt: skip


# ---------------------------------------------------------------------------- the worker's memory
def status_kb(pid: int) -> dict:
    """STATUS_FIELDS of /proc/PID/status, in KB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in STATUS_FIELDS:
                out[name] = int(value.split()[0])
    return out


def smaps_kb(pid: int) -> Counter:
    """Resident KB of the process by mapping: [heap], [stack], [anon] (anonymous maps: malloc's arenas and large
    blocks), /dev/shm and memfd (shared memory), and each mapped file by name."""
    found, name = Counter(), None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split(None, 5)
            if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                name = head[5].strip() if len(head) > 5 else "[anon]"
                name = "shared memory" if name.startswith(("/dev/shm", "/memfd:")) else name
            elif head[0] == "Rss:":
                found[name] += int(head[1])
    return found


def worker_pid(iterator) -> int:
    """The pid of the loader's single worker: from the iterator's processes, else this process's only child."""
    workers = getattr(iterator, "_workers", None)
    if workers:
        return workers[0].pid
    children = []
    for path in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        with open(path) as f:
            children += [int(p) for p in f.read().split()]
    if len(children) != 1:
        raise SystemExit(f"expected one loader worker, found the child processes {children}")
    return children[0]


# ---------------------------------------------------------------------------- tracing (--trace)
def traced_init(original, dump_dir: str, worker_id: int) -> None:
    """The loader's own worker_init_fn, then tracemalloc and a SIGUSR1 handler that writes a snapshot and the gc
    object counts by type into `dump_dir` (dump-N.pickle, N counting the signals)."""
    import gc
    import tracemalloc

    if original is not None:
        original(worker_id)
    tracemalloc.start(8)
    count = [0]

    def dump(signum, frame):
        count[0] += 1
        types = Counter(type(o).__name__ for o in gc.get_objects())
        data = {"snapshot": tracemalloc.take_snapshot(), "types": dict(types)}
        path = os.path.join(dump_dir, f"dump-{count[0]}.pickle")
        with open(path + ".tmp", "wb") as f:
            pickle.dump(data, f)
        os.replace(path + ".tmp", path)

    signal.signal(signal.SIGUSR1, dump)


def request_dump(pid: int, dump_dir: str, number: int) -> dict:
    """Signal the worker for its `number`-th dump and wait for it (at most DUMP_WAIT_S)."""
    os.kill(pid, signal.SIGUSR1)
    path = os.path.join(dump_dir, f"dump-{number}.pickle")
    deadline = time.monotonic() + DUMP_WAIT_S
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"the worker wrote no tracemalloc dump within {DUMP_WAIT_S:.0f} s")
        time.sleep(0.2)
    with open(path, "rb") as f:
        return pickle.load(f)


# ---------------------------------------------------------------------------- a case
def run_case(args, case: str, output: str) -> dict:
    """Read training clips of `case` until --clips: the samples {clips, seconds, VmRSS, ...}; the smaps (and with
    --trace the worker's dumps) after REFERENCE_CLIPS clips, half of --clips and at the end, by clips."""
    from vtn.datasets import build_loader, shuffle_dataset

    loader = build_loader(config(args, case, output), "train")
    dump_dir = tempfile.mkdtemp(prefix="dumps-", dir=output)
    if args.trace:
        loader.worker_init_fn = functools.partial(traced_init, loader.worker_init_fn, dump_dir)
    points = sorted({REFERENCE_CLIPS, max(REFERENCE_CLIPS, args.clips // 2), args.clips})
    samples, smaps, dumps = [], {}, {}
    start, clips, epoch, pid, parent, wanted = time.perf_counter(), 0, 0, None, 0, args.every
    while clips < args.clips:
        shuffle_dataset(loader, epoch)
        iterator = iter(loader)
        if pid is None:
            pid, parent = worker_pid(iterator), status_kb(os.getpid())["RssAnon"]  # the worker was forked from this
        for batch in iterator:
            clips += len(batch["video_idx"])
            if int(batch["decode_failures"].sum()):
                raise SystemExit(f"{case}: a clip failed to decode (see the log)")
            if not samples or clips >= wanted or clips >= args.clips:
                samples.append({"clips": clips, "seconds": time.perf_counter() - start, **status_kb(pid)})
                wanted = (clips // args.every + 1) * args.every
            if points and clips >= points[0]:
                points.pop(0)
                smaps[clips] = smaps_kb(pid)
                if args.trace:
                    dumps[clips] = request_dump(pid, dump_dir, len(dumps) + 1)
            if clips >= args.clips:
                break
        epoch += 1
    del iterator, loader  # the persistent worker exits
    return {"samples": samples, "smaps": smaps, "dumps": dumps, "epochs": epoch, "pid": pid, "parent": parent}


# ---------------------------------------------------------------------------- report
def at(samples: list[dict], clips: int) -> dict:
    return next(s for s in samples if s["clips"] >= clips)


def report_case(case: str, result: dict) -> dict:
    samples = result["samples"]
    ref, end = at(samples, REFERENCE_CLIPS), samples[-1]
    ratio, clips = end["VmRSS"] / ref["VmRSS"], end["clips"] - ref["clips"]
    rate = (end["clips"] - samples[0]["clips"]) / (end["seconds"] - samples[0]["seconds"])
    print(f"\n{case}: worker pid {result['pid']}, {end['clips']} clips in {end['seconds']:.0f} s ({rate:.1f} clips/s), "
          f"{result['epochs']} epoch(s) started; this process (which the worker was forked from) had an RssAnon of "
          f"{result['parent'] / 1024:.1f} MB at the worker's start; load average now {load_average()}")  # fmt: skip
    print("| clips | s | VmRSS MB | RssAnon MB | RssFile MB | RssShmem MB |")
    print("|---|---|---|---|---|---|")
    for s in samples:
        mb = " | ".join(f"{s[k] / 1024:.1f}" for k in STATUS_FIELDS)
        print(f"| {s['clips']} | {s['seconds']:.0f} | {mb} |")
    verdict = "met" if abs(ratio - 1) <= GOAL else "NOT met"
    print(
        f"{case}: VmRSS {ref['VmRSS'] / 1024:.1f} MB after {ref['clips']} clips, {end['VmRSS'] / 1024:.1f} MB after "
        f"{end['clips']}: {ratio:.3f}x (goal within {GOAL:.0%}: {verdict}); "
        f"{1024 * (end['VmRSS'] - ref['VmRSS']) / clips:+.0f} B per clip"
    )
    grown = Counter(result["smaps"][max(result["smaps"])])
    grown.subtract(result["smaps"][min(result["smaps"])])
    moved = ", ".join(f"{name} {kb:+d}" for name, kb in grown.most_common() if abs(kb) >= 256)
    print(
        f"resident KB by mapping, change from {ref['clips']} clips to the end (|change| >= 256 KB): {moved or 'none'}"
    )
    if result["dumps"]:
        report_trace(result["dumps"])
    peak = max(s["VmRSS"] for s in samples if s["clips"] >= ref["clips"])
    return {"case": case, "reference": ref, "end": end, "ratio": ratio, "peak": peak, "clips": clips}


def source_line(frame) -> str:
    """The code of a tracemalloc frame as this process read it at its start (the tree may change during a run)."""
    lines = SOURCES.get(frame.filename)
    if lines is None:
        return linecache.getline(frame.filename, frame.lineno).strip()
    return lines[frame.lineno - 1].strip() if 0 < frame.lineno <= len(lines) else ""


def report_trace(dumps: dict, top: int = 10) -> None:
    """The Python allocations and object types of the worker that grew between its dumps: from the first to the
    last (lines, and 3 callers of the 3 largest), and from the middle one to the last (lines)."""
    marks = sorted(dumps)
    for first, count, stacks in ((marks[0], top, 3), (marks[-2], 5, 0))[: len(marks) - 1]:
        last, clips = marks[-1], marks[-1] - first
        old, new = dumps[first]["snapshot"], dumps[marks[-1]]["snapshot"]
        by_line = new.compare_to(old, "lineno")
        by_stack = new.compare_to(old, "traceback") if stacks else []
        total = sum(s.size_diff for s in by_line)
        print(f"tracemalloc in the worker, {first} -> {last} clips: {total / 1024:+.0f} KB; the lines that grew most:")
        for k, stat in enumerate(sorted(by_line, key=lambda s: -s.size_diff)[:count]):
            where = stat.traceback[0]
            print(
                f"  {os.path.relpath(where.filename, ROOT)}:{where.lineno} `{source_line(where)}`: "
                f"{stat.size_diff / 1024:+.1f} KB ({stat.count_diff:+d} blocks, {stat.size_diff / clips:+.1f} B per "
                f"clip), {stat.size / 1024:.1f} KB held"
            )
            mine = [s for s in by_stack if s.traceback[-1] == where] if k < stacks else []
            if mine:  # tracemalloc keeps the oldest frame first
                for outer in list(max(mine, key=lambda s: s.size_diff).traceback)[-2:-5:-1]:
                    print(f"      from {os.path.relpath(outer.filename, ROOT)}:{outer.lineno} `{source_line(outer)}`")
        types = Counter(dumps[last]["types"])
        types.subtract(dumps[first]["types"])
        grown = ", ".join(f"{name} {n:+d}" for name, n in types.most_common(top) if n > 0)
        print(f"gc-tracked objects that grew, {first} -> {last} clips: {grown or 'none'}")


def read_sources() -> None:
    """Keep the source of the repository's modules imported so far (others are read when reported), for
    source_line. Only these: whatever this process holds, a forked worker's RSS counts too."""
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None) or ""
        if path.startswith(ROOT + os.sep) and path.endswith(".py") and ".venv" not in path:
            with open(path, encoding="utf-8") as f:
                SOURCES[path] = f.read().splitlines()


# ---------------------------------------------------------------------------- main
def build_parser():
    """The command line of this benchmark (tests/test_docs.py parses the documented commands with it)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=10_000, help="clips to read per case (default 10,000)")
    p.add_argument("--every", type=int, default=250, help="clips between two readings of the RSS (default 250)")
    p.add_argument("--videos", type=int, default=2400, help="generated training videos (default 2,400)")
    p.add_argument("--codec", choices=("mpeg4", "h264"), default="mpeg4", help="their codec (default mpeg4)")
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES), help="files, shards or both")
    p.add_argument("--shard-mb", type=float, default=1.0, help="most MB of videos per shard (default 1)")
    p.add_argument("--trace", action="store_true", help="tracemalloc and gc counts in the worker (slower)")
    p.add_argument("--quick", action="store_true", help=f"a smoke test: 1,500 clips ({REFERENCE_CLIPS} + 500)")
    return p


def main(argv=None) -> list[dict]:
    import logging

    args = build_parser().parse_args(argv)
    if args.quick:
        args.clips = 1500
    if args.clips <= REFERENCE_CLIPS:
        raise SystemExit(f"--clips {args.clips}: expected more than the {REFERENCE_CLIPS} of the reference reading")
    logging.basicConfig(level=logging.WARNING)
    print(f"load average at start: {load_average()}; {os.cpu_count()} cores")
    from vtn.engine.components import register_components

    register_components()
    if args.trace:
        import vtn.datasets.shards  # noqa: F401  (what the worker runs, for read_sources)
        import vtn.preparation.shards  # noqa: F401

        read_sources()
    summary = []
    with tempfile.TemporaryDirectory(prefix="vtn-bench-worker-memory-") as output:
        prepare(args, output)
        for case in args.cases:
            summary.append(report_case(case, run_case(args, case, output)))
    print(f"\n| case | clips | VmRSS MB after {REFERENCE_CLIPS} clips | at the end | end / {REFERENCE_CLIPS} "
          f"| highest from {REFERENCE_CLIPS} on, MB | growth per clip |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for s in summary:
        ref, end = s["reference"], s["end"]
        per_clip = 1024 * (end["VmRSS"] - ref["VmRSS"]) / s["clips"]
        print(f"| {s['case']} | {end['clips']} | {ref['VmRSS'] / 1024:.1f} | {end['VmRSS'] / 1024:.1f} "
              f"| **{s['ratio']:.3f}x** | {s['peak'] / 1024:.1f} | {per_clip:+.0f} B |")  # fmt: skip
    print(f"load average at end: {load_average()}")
    print(json.dumps({s["case"]: round(s["ratio"], 4) for s in summary}))
    return summary


if __name__ == "__main__":
    main()
