#!/usr/bin/env python
"""Training loader from shards: clips per second from individual local files, from local shards and from shards on
a local S3-compatible server, the same videos and workers; equal batches on every rank; the same batches from both
shard copies.

    python benchmarks/shards.py                          # 32 videos, 3 interleaved passes per case
    python benchmarks/shards.py --quick                  # 8 videos, 1 pass: a smoke test
    python benchmarks/shards.py --videos 64 --repeats 5 --workers 4 --shard-mb 4

Throughput. The loader is the project's training loader (`vtn.datasets.build_loader(cfg, "train")`, the epoch
selected with `shuffle_dataset(loader, epoch)`): decode, sample, jitter-scale, crop, flip, normalise and batch;
no model. Config: configs/Kinetics/VIT_B_VTN.yaml (16 frames over 5.12 s, TRAIN_JITTER_SCALES [256, 320],
TRAIN_CROP_SIZE 224) with NUM_GPUS 0, TRAIN.BATCH_SIZE 8 per process (SOLVER.REFERENCE_WORLD_SIZE 0),
DATA_LOADER.PERSISTENT_WORKERS False (the workers exit at the end of each pass, so their CPU time is counted) and
DATA_LOADER.NUM_WORKERS 0 (the main process) and --workers (default 2, one per core here). Cases:
- files: TRAIN.DATASET kinetics, PySlowFast's `path label` train.csv over the generated videos;
- local shards: TRAIN.DATASET shards, the same videos written by `vtn.preparation.shards.write_shards` (what
  tools/make_shards.py runs) into shards of at most --shard-mb MB in a local folder;
- s3 shards: the same shards written into a bucket of moto's S3 server, which this script starts as a separate
  process (`python -m moto.server -H 127.0.0.1 -p PORT`, a free port) and stops at the end; the loader and its
  workers find it through AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_DEFAULT_REGION.
Each pass builds the loader (index, listing, workers' start-up and their S3 clients included) and reads one epoch
(epoch r at repeat r, the same for every case): every case reads floor(videos / 8) batches of 8 clips. The cases
are interleaved, in a rotated order at each repeat; medians of --repeats passes: clips/s (wall clock) and CPU ms
per clip of this process and its exited workers. The server's CPU (utime + stime of its process, from
/proc/PID/stat) is reported apart and not counted in the client's; its requests per clip are counted from its
request log. The goal of issue 26: s3 shards at least 0.9x the clips/s of files with the workers, CPU per clip
no higher (reported, not enforced).

Equal batches. For world sizes 1-4 x DATA_LOADER.NUM_WORKERS 0-3 x batch 1, 2, 8, on the written split and on a
second local split (the videos, less the last when their count is even: an odd count, in a prime number >= 5 of
shards: counts that divide nothing), every rank's `dataset.batch_sampler(batch, rank, world, workers, True)`:
its length and the batches its keys make when iterated must be the same on every rank, no sample on two ranks or
twice, and fewer than world x batch samples left out. Any configuration that breaks the rule makes the script exit 1.

Before timing, the first 2 batches of one epoch from local shards and s3 shards (with the workers) must be
torch.equal, every tensor of the batch.

The videos are those of benchmarks/test_loader.py (data_cache/bench_test_loader/videos/, made once): Kinetics-like
clips of 10 s (kinetics_like.py), alternately 340x256 at 30 fps and 456x256 at 25 fps, H.264 (libx264 preset
medium, crf 23, 3 B-frames). They are about 0.35 MB each, hence the small default shard size (2 MB: several
shards of 5-6 videos).
"""

import argparse
import logging
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from itertools import islice

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.kinetics_like import cpu_seconds, load_average  # noqa: E402
from benchmarks.test_loader import CACHE, children_cpu, generated_videos, read_once, rotated  # noqa: E402

CONFIG = os.path.join(ROOT, "configs", "Kinetics", "VIT_B_VTN.yaml")
VIDEOS = os.path.join(CACHE, "videos")
NUM_CLASSES = 400
CASES = ("files", "local shards", "s3 shards")
BUCKET = "vtn-bench-shards"
SERVER_START_S = 60.0
REQUEST = re.compile(r'"(GET|HEAD|PUT|POST|DELETE) [^"]*" (\d{3})')
COLOUR = re.compile(r"\x1b\[[\d;]*m")  # werkzeug colours some lines of its log
WORLDS, WORKERS, BATCHES = (1, 2, 3, 4), (0, 1, 2, 3), (1, 2, 8)


# ---------------------------------------------------------------------------- the S3 server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """moto's S3 server as a separate process on 127.0.0.1 (its request log in `log_path`): started and waited for
    (at most SERVER_START_S), its CPU seconds and requests read while it runs, stopped by `stop()`."""

    def __init__(self, log_path: str):
        self.port, self.log_path = free_port(), log_path
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "wb")
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + SERVER_START_S
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"moto's S3 server did not start on {self.url} (see {log_path})")
            time.sleep(0.2)

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.url, timeout=2).close()
        except urllib.error.HTTPError:
            return True  # an HTTP answer: it listens
        except OSError:
            return False
        return True

    def cpu(self):
        """CPU seconds (user + system, all its threads) of the server so far; None where /proc cannot tell."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def requests(self) -> dict:
        """Requests answered so far, by method, and ranged reads (206)."""
        time.sleep(0.05)  # the log line of the last answer follows it
        with open(self.log_path, errors="replace") as f:
            found = REQUEST.findall(COLOUR.sub("", f.read()))
        counts = {"all": len(found), "ranged": sum(status == "206" for _, status in found)}
        for method, _ in found:
            counts[method] = counts.get(method, 0) + 1
        return counts

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def use_server(endpoint: str) -> None:
    """The standard AWS environment of this process and its loader workers: the local server, test credentials,
    no machine settings."""
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)


# ---------------------------------------------------------------------------- data and configs
def write_train_csv(data_dir: str, paths: list[str]) -> None:
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, "train.csv"), "w") as f:
        for i, path in enumerate(paths):
            f.write(f"{os.path.relpath(path, VIDEOS)} {i % NUM_CLASSES}\n")


def config(case: str, root: str, workers: int, batch: int, output: str):
    """The training config of `case` reading the data folder or prefix `root`."""
    from vtn.config import load_config

    opts = ["NUM_GPUS", 0, "SOLVER.REFERENCE_WORLD_SIZE", 0, "TRAIN.BATCH_SIZE", batch, "MODEL.NUM_CLASSES"]
    opts += [NUM_CLASSES, "DATA_LOADER.NUM_WORKERS", workers, "DATA_LOADER.PERSISTENT_WORKERS", False]
    opts += ["DATA.PATH_TO_DATA_DIR", root, "OUTPUT_DIR", output]
    if case == "files":
        opts += ["DATA.PATH_PREFIX", VIDEOS]
    else:
        opts += ["TRAIN.DATASET", "shards", "TEST.DATASET", "shards"]
    return load_config(CONFIG, opts)


def write_split(files_dir: str, output: str, shard_mb: float, tmp: str) -> int:
    """Write the train split listed in `files_dir` as shards of at most `shard_mb` MB under `output`/train (a folder
    or an s3:// prefix); returns the number of shards."""
    from vtn.preparation.shards import write_shards
    from vtn.storage import join

    cfg = config("files", files_dir, 0, 8, tmp)
    report = write_shards(cfg, "train", join(output, "train"), shard_mb, workers=2, seed=0, log=lambda line: None)
    if report.unreadable:
        raise SystemExit(f"unreadable videos while writing {output}: {report.unreadable[:3]}")
    return report.shards_written + report.shards_skipped


def prime_split(paths: list[str], tmp: str) -> tuple[str, int, int]:
    """A second local split of an odd number of the videos (all, or all but the last) in a prime number >= 5 of
    shards, found by trying shard sizes: (prefix, samples, shards)."""
    from vtn.preparation.shards_plan import make_plan

    subset = paths[: len(paths) - 1] if len(paths) % 2 == 0 else paths
    files_dir = os.path.join(tmp, "prime-files")
    write_train_csv(files_dir, subset)
    cfg = config("files", files_dir, 0, 8, tmp)
    total = sum(os.path.getsize(p) for p in subset) / 1e6
    for target in (7, 5, 11, 13, 17, 19, 23):
        for step in range(40):
            mb = total / target * (1 + step / 40)
            count = len(make_plan(cfg, "train", 0, mb).shards)
            if count in (5, 7, 11, 13, 17, 19, 23, 29, 31):
                prefix = os.path.join(tmp, "prime-shards")
                return prefix, len(subset), write_split(files_dir, prefix, mb, tmp)
    raise SystemExit(f"no shard size gives a prime number of shards for {len(subset)} videos: use more --videos")


# ---------------------------------------------------------------------------- passes
def load_pass(cfg, epoch: int, server=None) -> dict:
    """One epoch of training batches: seconds, CPU seconds (all, and the exited workers'), clips, batches, decode
    failures; with `server`, its CPU seconds and requests during the pass."""
    from vtn.datasets import build_loader, shuffle_dataset

    before = (server.cpu(), server.requests()) if server is not None else None
    start, cpu, child = time.perf_counter(), cpu_seconds(), children_cpu()
    loader = build_loader(cfg, "train")
    shuffle_dataset(loader, epoch)
    clips = batches = failures = 0
    first = None
    for batch in loader:
        batches += 1
        first = first or time.perf_counter() - start
        clips += len(batch["video_idx"])
        failures += int(batch["decode_failures"].sum()) if "decode_failures" in batch else 0
    seconds = time.perf_counter() - start
    out = {"seconds": seconds, "cpu": cpu_seconds() - cpu, "workers_cpu": children_cpu() - child}
    out.update(first=first, clips=clips, batches=batches, failures=failures)
    if server is not None:
        after = (server.cpu(), server.requests())
        out["server_cpu"] = None if None in (before[0], after[0]) else after[0] - before[0]
        out["requests"] = {k: v - before[1].get(k, 0) for k, v in after[1].items()}
    return out


def first_batches(cfg, epoch: int, n: int = 2) -> list[dict]:
    from vtn.datasets import build_loader, shuffle_dataset

    loader = build_loader(cfg, "train")
    shuffle_dataset(loader, epoch)
    it = iter(loader)
    batches = list(islice(it, n))
    del it
    return batches


def same_batches(a: list[dict], b: list[dict]) -> list[str]:
    """What differs between two lists of batches (torch.equal of every tensor)."""
    import torch

    problems = [] if len(a) == len(b) else [f"{len(a)} batches against {len(b)}"]
    for i, (x, y) in enumerate(zip(a, b)):
        for key in sorted(set(x) | set(y)):
            u, v = x.get(key), y.get(key)
            if not (isinstance(u, torch.Tensor) and isinstance(v, torch.Tensor) and torch.equal(u, v)):
                problems.append(f"batch {i}: {key} differs")
    return problems


# ---------------------------------------------------------------------------- equal batches
def rank_batches(dataset, batch: int, rank: int, world: int, workers: int, epoch: int) -> tuple[int, list[list[int]]]:
    """(length, the batches of sample ids its keys make) of rank `rank`'s training batch sampler."""
    sampler = dataset.batch_sampler(batch, rank, world, workers, True)
    length = len(sampler)
    sampler.set_epoch(epoch)
    batches = []
    for keys in sampler:
        if any(len(k) != 7 or k[1] != epoch or k[6] != max(1, workers) for k in keys):
            raise AssertionError(f"rank {rank}/{world}, {workers} workers: unexpected keys {keys[:2]}")
        batches.append([int(k[0]) for k in keys])
    return length, batches


def check_world(dataset, world: int, epoch: int) -> tuple[list[str], dict]:
    """Every (workers, batch) of `world` ranks on `dataset`: (what breaks the rule (see the module docstring),
    {batch: the batches of rank 0})."""
    n, problems, found = dataset.index.num_samples, [], {}
    for workers in WORKERS:
        for batch in BATCHES:
            lengths, counts, seen = [], [], []
            for rank in range(world):
                length, batches = rank_batches(dataset, batch, rank, world, workers, epoch)
                lengths.append(length)
                counts.append(len(batches))
                if any(len(b) != batch for b in batches):
                    problems.append(f"world {world}, {workers} workers, batch {batch}: rank {rank} short batch")
                seen += [s for b in batches for s in b]
            case, found[batch] = f"world {world}, {workers} workers, batch {batch}", counts[0]
            if len(set(lengths + counts)) != 1:
                problems.append(f"{case}: batches per rank, lengths {lengths}, iterated {counts}")
            if len(seen) != len(set(seen)) or not set(seen) <= set(range(n)):
                problems.append(f"{case}: a sample on two ranks or twice")
            if n - len(set(seen)) >= world * batch:
                problems.append(f"{case}: {n - len(set(seen))} of {n} samples left out (>= {world * batch})")
    return problems, found


def equal_batches_part(splits: dict, tmp: str) -> bool:
    """The equal-batches check on each split of `splits` (name -> prefix); one line per world size and split."""
    from vtn.datasets import build_dataset

    ok = True
    for name, prefix in splits.items():
        dataset = build_dataset(config("shards", prefix, 0, 8, tmp), "train")
        counts = [s["samples"] for s in dataset.index.shards]
        print(f"{name}: {dataset.index.num_samples} samples in {len(counts)} shards of {counts}")
        for world in WORLDS:
            problems, found = check_world(dataset, world, epoch=1)
            summary = ", ".join(f"batch {b}: {k}" for b, k in sorted(found.items()))
            verdict = "ok" if not problems else f"FAIL ({len(problems)}): " + "; ".join(problems[:3])
            print(f"  world {world}, workers {list(WORKERS)}: batches per rank {summary}: {verdict}")
            ok = ok and not problems
    return ok


# ---------------------------------------------------------------------------- report
def median(runs: list[dict], f):
    values = [f(r) for r in runs]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def report(results: dict, workers: int, loads: list[float]) -> None:
    print(f"\n1-minute load average over the passes: {min(loads):.1f}-{max(loads):.1f}")
    print(
        "| DATA_LOADER.NUM_WORKERS | case | clips/s | CPU ms/clip (workers') | server CPU ms/clip | requests/clip "
        "(ranged) | s to the first batch | s/pass, all passes | batches |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (case, w), runs in results.items():
        clips = runs[0]["clips"]
        rate = clips / median(runs, lambda r: r["seconds"])
        cpu, own = (1000 * median(runs, lambda r, k=k: r[k]) / clips for k in ("cpu", "workers_cpu"))
        server = median(runs, lambda r: r.get("server_cpu"))
        server = "-" if server is None else f"{1000 * server / clips:.0f}"
        req = "-"
        if "requests" in runs[0]:
            req = f"{median(runs, lambda r: r['requests']['all']) / clips:.2f} "
            req += f"({median(runs, lambda r: r['requests']['ranged']) / clips:.2f})"
        passes = " ".join(f"{r['seconds']:.1f}" for r in runs)
        first = median(runs, lambda r: r["first"])
        print(
            f"| {w} | {case} | {rate:.2f} | {cpu:.0f} ({own:.0f}) | {server} | {req} | {first:.2f} | {passes} "
            f"| {runs[0]['batches']} |"
        )
    print()
    print("| DATA_LOADER.NUM_WORKERS | clips/s files / local shards / s3 shards | local / files | s3 / files "
          "| CPU ms/clip files / local / s3 | CPU s3 / files |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    summary = {}
    for w in sorted({0, workers}):
        rate = {c: results[(c, w)][0]["clips"] / median(results[(c, w)], lambda r: r["seconds"]) for c in CASES}
        cpu = {c: median(results[(c, w)], lambda r: r["cpu"]) / results[(c, w)][0]["clips"] * 1000 for c in CASES}
        summary[w] = (rate["s3 shards"] / rate["files"], cpu["s3 shards"] / cpu["files"])
        print(
            f"| {w} | {rate['files']:.2f} / {rate['local shards']:.2f} / {rate['s3 shards']:.2f} "
            f"| {rate['local shards'] / rate['files']:.2f}x | **{summary[w][0]:.2f}x** "
            f"| {cpu['files']:.0f} / {cpu['local shards']:.0f} / {cpu['s3 shards']:.0f} | {summary[w][1]:.2f}x |"
        )
    speed, cpu = summary[workers]
    met = "met" if speed >= 0.9 and cpu <= 1.0 else "NOT met"
    print(
        f"\ngoal: s3 shards at least 0.9x the clips/s of files with {workers} workers, CPU per clip no higher: {met} "
        f"({speed:.2f}x the clips/s, {cpu:.2f}x the CPU per clip)"
    )


# ---------------------------------------------------------------------------- main
def build_parser():
    """The command line of this benchmark (tests/test_docs.py parses the documented commands with it)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=32, help="generated videos (default 32)")
    p.add_argument("--repeats", type=int, default=3, help="passes per case (median reported; default 3)")
    p.add_argument("--workers", type=int, default=2, help="DATA_LOADER.NUM_WORKERS of the worker rows (default 2)")
    p.add_argument("--batch", type=int, default=8, help="TRAIN.BATCH_SIZE (default 8)")
    p.add_argument("--shard-mb", type=float, default=2.0, help="most MB of videos per shard (default 2)")
    p.add_argument("--quick", action="store_true", help="a smoke test: 8 videos, 1 pass")
    return p


def prepare(args, tmp: str, server: MotoServer) -> tuple[dict, dict]:
    """The videos, their csv and both shard copies: (case -> data folder or prefix, split name -> shard prefix)."""
    paths = generated_videos(args.videos)
    read_once(paths)
    files_dir = os.path.join(tmp, "files")
    write_train_csv(files_dir, paths)
    roots = {"files": files_dir, "local shards": os.path.join(tmp, "shards"), "s3 shards": f"s3://{BUCKET}/shards"}
    start = time.perf_counter()
    shards = write_split(files_dir, roots["local shards"], args.shard_mb, tmp)
    write_split(files_dir, roots["s3 shards"], args.shard_mb, tmp)
    prime, samples, count = prime_split(paths, tmp)
    size = sum(os.path.getsize(p) for p in paths) / 1e6
    print(
        f"{len(paths)} videos ({size:.1f} MB) in {shards} shards of at most {args.shard_mb:g} MB, locally and on "
        f"{server.url}; second split {samples} videos in {count} shards; written in {time.perf_counter() - start:.1f} s"
    )
    return roots, {f"written split ({shards} shards)": roots["local shards"], f"{count}-shard split": prime}


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.quick:
        args.videos, args.repeats = min(args.videos, 8), 1
    logging.basicConfig(level=logging.WARNING)
    print(f"load average at start: {load_average()}")
    from vtn.engine.components import register_components

    register_components()
    tmp = tempfile.mkdtemp(prefix="vtn-bench-shards-")
    server = MotoServer(os.path.join(tmp, "moto.log"))
    try:
        use_server(server.url)
        roots, splits = prepare(args, tmp, server)
        ok = equal_batches_part(splits, tmp)
        out = os.path.join(tmp, "output")
        a = first_batches(config("local shards", roots["local shards"], args.workers, args.batch, out), 0)
        b = first_batches(config("s3 shards", roots["s3 shards"], args.workers, args.batch, out), 0)
        problems = same_batches(a, b)
        print(f"first 2 batches, local shards against s3 shards ({args.workers} workers): "
              f"{'identical' if not problems else 'DIFFERENT: ' + '; '.join(problems[:5])}")  # fmt: skip
        ok = ok and not problems
        results = timed_passes(args, roots, server, out)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average at end: {load_average()}")
    if not ok:
        raise SystemExit(1)
    return results


def timed_passes(args, roots: dict, server: MotoServer, out: str) -> dict:
    import torch

    print(
        f"timing: {CASES} x DATA_LOADER.NUM_WORKERS {sorted({0, args.workers})}, TRAIN.BATCH_SIZE {args.batch}, "
        f"torch {torch.get_num_threads()} threads, {os.cpu_count()} cores; median of {args.repeats} interleaved passes"
    )
    cases = [(c, w) for w in sorted({0, args.workers}) for c in CASES]
    results, loads = {case: [] for case in cases}, [os.getloadavg()[0]]
    for r in range(args.repeats):
        for case, w in rotated(cases, r):
            cfg = config(case, roots[case], w, args.batch, out)
            res = load_pass(cfg, r, server if case == "s3 shards" else None)
            if res["failures"] or res["clips"] != (args.videos // args.batch) * args.batch:
                raise AssertionError(f"{case}, {w} workers: {res['clips']} clips, {res['failures']} decode failures")
            results[(case, w)].append(res)
            loads.append(os.getloadavg()[0])
    report(results, args.workers, loads)
    return results


if __name__ == "__main__":
    main()
