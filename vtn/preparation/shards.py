"""Write a dataset split as tar shards in the WebDataset layout, with an index (tools/make_shards.py).

A sample is `<key><ext>`, the video file's bytes, then `<key>.json`, its facts (key, label, class, source, and the
probe's frames, fps and duration); the key is the video's place in the seeded shuffle (shards_plan.py). The bytes are
deterministic (mtime 0, uid/gid 0, no user names, mode 0444), so the same plan gives the same shards on any machine
and with any number of workers.

Each shard is written to a temporary file (in the output folder, or a local one for object storage), put under its
final name whole (a rename, or one upload), then its sidecar `shard-NNNNNN.json` records its samples' facts with
their byte offsets and sizes and its unreadable videos: a shard is finished once its sidecar exists. A rerun skips
finished shards and redoes the others; `index.json` (vtn/datasets/shard_index.py) is written last, from the sidecars.
"""

import io
import json
import multiprocessing
import os
import tarfile
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Callable

from vtn import storage
from vtn.datasets.fingerprint import dataset_fingerprint
from vtn.datasets.shard_index import INDEX_NAME, ShardIndex, shard_facts_name, shard_name
from vtn.preparation.shards_plan import MB, ShardPlan, Video, make_plan, survey_output
from vtn.utils.files import TEMP_PREFIX
from vtn.utils.logging import Progress
from vtn.video.decoder import MemoryVideo, VideoDecodeError, build_decoder

_DECODER = None


def _init_worker(cfg) -> None:
    global _DECODER
    _DECODER = build_decoder(cfg)


@dataclass(frozen=True)
class ShardJob:
    """Shard `number` of a plan: its videos, where it goes, and what its samples' json needs."""

    number: int
    videos: tuple[Video, ...]
    output: str
    plan_id: str
    classes: tuple


def _extension(path: str) -> str:
    ext = os.path.splitext(path.split("?", 1)[0])[1].lower()
    return ext if len(ext) > 1 else ".bin"


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _sample_facts(job: ShardJob, video: Video, info) -> dict:
    label = video.label
    name = job.classes[label] if job.classes and 0 <= label < len(job.classes) else None
    return {
        "key": video.key,
        "label": label,
        "class": name,
        "source": video.source,
        "frames": int(info.num_frames),
        "fps": float(info.fps),
        "duration": float(info.duration),
    }


def _write_tar(job: ShardJob, f) -> tuple[list[dict], list[dict]]:
    """The shard's tar into the binary file `f`: (facts of the samples written, with offset and size; the
    unreadable videos with their reasons)."""
    samples, unreadable = [], []
    with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for video in job.videos:
            try:
                data = storage.read_bytes(video.path)
                info = _DECODER.probe(MemoryVideo(video.path, data))
            except (VideoDecodeError, storage.StorageError) as e:
                unreadable.append({"source": video.source, "reason": str(e)})
                continue
            facts = _sample_facts(job, video, info)
            offset = f.tell()
            _add_member(tar, video.key + _extension(video.path), data)
            _add_member(tar, video.key + ".json", json.dumps(facts, separators=(",", ":")).encode("utf-8"))
            samples.append(dict(facts, offset=offset, size=f.tell() - offset))
    return samples, unreadable


def write_shard(job: ShardJob) -> dict:
    """Write one shard and then its sidecar; returns the sidecar's facts. The tar appears under its final name
    whole or not at all: written to a temporary file, then renamed (local) or uploaded in one piece (remote)."""
    if _DECODER is None:
        raise RuntimeError("write_shard runs in a process set up by _init_worker (see write_shards)")
    target = storage.join(job.output, shard_name(job.number))
    if storage.is_remote(job.output):
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX + "shard-", suffix=".tar")
        os.close(fd)
    else:
        tmp = os.path.join(job.output, TEMP_PREFIX + shard_name(job.number))
    try:
        with open(tmp, "wb") as f:
            samples, unreadable = _write_tar(job, f)
            size = f.tell()
            f.flush()
            os.fsync(f.fileno())
        if storage.is_remote(job.output):
            storage.upload_file(tmp, target)
        else:
            os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    facts = {"plan": job.plan_id, "shard": job.number, "name": shard_name(job.number), "bytes": size}
    facts.update(samples=samples, unreadable=unreadable)
    storage.write_bytes(storage.join(job.output, shard_facts_name(job.number)), json.dumps(facts).encode("utf-8"))
    return facts


def _run(cfg, jobs: list[ShardJob], workers: int):
    """The sidecar facts of each job as it finishes: in this process with one worker, else in `workers`."""
    if workers <= 1 or len(jobs) < 2:
        _init_worker(cfg)
        for job in jobs:
            yield write_shard(job)
        return
    method = "fork" if multiprocessing.get_start_method() == "fork" else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(cfg,)) as pool:
        futures = [pool.submit(write_shard, job) for job in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


@dataclass
class ShardsReport:
    """What a run did: shards written and skipped (finished before), samples, unreadable videos with reasons."""

    split: str
    index_url: str
    shards_written: int = 0
    shards_skipped: int = 0
    samples: int = 0
    listed: int = 0
    missing: int = 0
    bytes: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def lines(self, show: int = 10) -> list[str]:
        """The tool's summary: one line, then the first `show` unreadable videos with their reasons."""
        out = [
            f"[{self.split}] {self.shards_written} shards written, {self.shards_skipped} skipped (finished before); "
            f"{self.samples} samples of {self.listed} listed, {len(self.unreadable)} unreadable (left out), "
            f"{self.missing} missing; {self.bytes / MB:.1f} MB; index {self.index_url}"
        ]
        out += [f"  unreadable: {source}: {reason}" for source, reason in self.unreadable[:show]]
        if len(self.unreadable) > show:
            out.append(f"  ... and {len(self.unreadable) - show} more unreadable (all listed in the index)")
        return out


def build_index(plan: ShardPlan, sidecars: dict[int, dict]) -> ShardIndex:
    """index.json of a plan whose shards are all finished, from their sidecars, in shard order."""
    index = ShardIndex(
        split=plan.split,
        classes=plan.classes,
        num_classes=plan.num_classes,
        fingerprint="",
        listed=plan.listed,
        seed=plan.seed,
        missing=list(plan.missing),
    )
    reasons, total = [], 0
    for number in range(len(plan.shards)):
        facts = sidecars[number]
        index.shards.append({"name": shard_name(number), "samples": len(facts["samples"]), "bytes": facts["bytes"]})
        total += facts["bytes"]
        for sample in facts["samples"]:
            for column in index.samples:
                index.samples[column].append(number if column == "shard" else sample[column])
        index.unreadable += [u["source"] for u in facts["unreadable"]]
        reasons += [u["reason"] for u in facts["unreadable"]]
    index.fingerprint = dataset_fingerprint(index.samples["source"], index.samples["label"])  # relative already
    index.extra = {
        "dataset": plan.dataset,
        "data_dir": plan.data_root,
        "plan": plan.plan_id,
        "bytes": total,
        "unreadable_reasons": reasons,
        "missing_labels": list(plan.missing_labels),
    }
    return index


def _progress_line(plan: ShardPlan, done: dict[int, dict], progress: Progress, written: int) -> str:
    seconds = max(progress.last_line - progress.start, 1e-9)
    videos = sum(len(f["samples"]) for f in done.values())
    unreadable = sum(len(f["unreadable"]) for f in done.values())
    return (
        f"[{plan.split}] shards {len(done)}/{len(plan.shards)}, {videos} videos, {unreadable} unreadable, "
        f"{written / MB:.1f} MB written, {written / MB / seconds:.1f} MB/s, ETA {progress.eta}"
    )


def write_shards(
    cfg, split: str, output: str, shard_size_mb: float = 1000, workers: int = 1, seed: int = 0, log: Callable = print
) -> ShardsReport:
    """Write `split` of the dataset `cfg` reads as tar shards and index.json under `output` (a folder or URL
    prefix), in `workers` processes, logging a line per finished shard. Resumable: finished shards are kept as
    they are. Raises a UserError, before writing anything, when `output` holds the shards of another plan."""
    plan = make_plan(cfg, split, seed, shard_size_mb)
    leftovers = survey_output(plan, output)
    for path in leftovers.stale + leftovers.temporaries:
        storage.remove(path)
    if not storage.is_remote(output):
        os.makedirs(output, exist_ok=True)
    done = dict(leftovers.finished)
    classes = tuple(plan.classes or ())
    jobs = [
        ShardJob(n, tuple(videos), output, plan.plan_id, classes)
        for n, videos in enumerate(plan.shards)
        if n not in done
    ]
    log(
        f"[{split}] {plan.num_videos} videos ({len(plan.missing)} missing) in {len(plan.shards)} shards of at most "
        f"{plan.shard_bytes / MB:g} MB, seed {seed}: {len(jobs)} to write, {len(done)} finished before; "
        f"{max(1, min(workers, len(jobs)))} worker(s) -> {output}"
    )
    progress, written = Progress(len(jobs), 1, 0), 0
    for facts in _run(cfg, jobs, workers):
        done[facts["shard"]] = facts
        written += facts["bytes"]
        progress.step()
        log(_progress_line(plan, done, progress, written))
    index = build_index(plan, done)
    index_url = storage.join(output, INDEX_NAME)
    storage.write_bytes(index_url, index.to_json().encode("utf-8"))
    report = ShardsReport(split, index_url, len(jobs), len(plan.shards) - len(jobs), index.num_samples)
    report.listed, report.missing, report.bytes = plan.listed, len(plan.missing), index.extra["bytes"]
    report.unreadable = list(zip(index.unreadable, index.extra["unreadable_reasons"]))
    return report
