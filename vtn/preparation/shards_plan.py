"""The plan of a split written as tar shards (tools/make_shards.py, shards.py): which video goes into which shard
under which key, its identity (the plan id), and what an earlier run left in the output.

The split's videos are shuffled with the seed and packed in that order into shards of at most the size limit by
the source files' sizes (a video larger than the limit is a shard alone). The plan id hashes the seed, the limit and
the listed videos (source, label, size), so a rerun into the same output can tell its own finished shards from
those of another plan.
"""

import hashlib
import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from vtn import storage
from vtn.datasets.build import build_dataset
from vtn.datasets.fingerprint import relative_path
from vtn.datasets.shard_index import INDEX_NAME, shard_name
from vtn.utils.errors import UserError
from vtn.utils.files import TEMP_PREFIX

MB = 1_000_000
_SIDECAR = re.compile(r"^shard-(\d{6})\.json$")


@dataclass(frozen=True)
class Video:
    """One planned sample: `pos` its place in the shuffled order (its key), `path` as the dataset lists it."""

    pos: int
    path: str
    source: str
    label: int
    size: int

    @property
    def key(self) -> str:
        return f"{self.pos:08d}"  # no dot: WebDataset splits a member name at its first dot


@dataclass
class ShardPlan:
    """What to write for one split: `shards[n]` the videos of shard n, in order."""

    split: str
    dataset: str
    data_root: str
    classes: Optional[list[str]]
    num_classes: int
    seed: int
    shard_bytes: int
    listed: int
    plan_id: str
    shards: list[list[Video]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    missing_labels: list[int] = field(default_factory=list)

    @property
    def num_videos(self) -> int:
        return sum(len(s) for s in self.shards)

    def class_of(self, label: int) -> Optional[str]:
        if self.classes and 0 <= label < len(self.classes):
            return self.classes[label]
        return None


def pack(videos: Sequence[Video], limit: int) -> list[list[Video]]:
    """`videos` in order, cut into runs whose sizes add up to at most `limit` (a larger video alone)."""
    shards, current, total = [], [], 0
    for video in videos:
        if current and total + video.size > limit:
            shards.append(current)
            current, total = [], 0
        current.append(video)
        total += video.size
    if current:
        shards.append(current)
    return shards


def plan_id(seed: int, shard_bytes: int, videos: Sequence[Video]) -> str:
    """12 hex digits of sha1 over the seed, the size limit and the listed (source, label, size) in listed order."""
    text = json.dumps([seed, shard_bytes, [[v.source, v.label, v.size] for v in videos]], separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def _size(path: str) -> int:
    """The source's size; 0 when it cannot be asked (the shard's read then lists the video as unreadable)."""
    try:
        return storage.size(path)
    except storage.StorageError:
        return 0


def _sizes(paths: Sequence[str]) -> list[int]:
    """The sources' sizes: remote ones asked in 32 threads (one request each, mostly waiting)."""
    if not any(storage.is_remote(p) for p in paths):
        return [_size(p) for p in paths]
    with ThreadPoolExecutor(32) as pool:
        return list(pool.map(_size, paths))


def make_plan(cfg, split: str, seed: int, shard_size_mb: float) -> ShardPlan:
    """The plan of `split` under `cfg`: the dataset's readable-looking videos shuffled with `seed` and packed into
    shards of at most `shard_size_mb` MB (10^6 bytes); its missing videos are recorded, never read."""
    if shard_size_mb <= 0:
        raise UserError(f"--shard-size-mb {shard_size_mb}: expected a size in MB above 0")
    dataset = build_dataset(cfg, split, "single_view")
    root = dataset.data_root
    sizes = _sizes(dataset.paths)
    listed = [
        Video(0, p, relative_path(p, root), int(label), size)
        for p, label, size in zip(dataset.paths, dataset.labels, sizes)
    ]
    shard_bytes = int(round(shard_size_mb * MB))
    order = np.random.default_rng(seed).permutation(len(listed))
    shuffled = [replace(listed[int(i)], pos=pos) for pos, i in enumerate(order)]
    classes = list(dataset.class_names) if dataset.class_names else None
    return ShardPlan(
        split=split,
        dataset=cfg.TRAIN.DATASET if split in ("train", "val") else cfg.TEST.DATASET,
        data_root=root,
        classes=classes,
        num_classes=len(classes) if classes else int(cfg.MODEL.NUM_CLASSES),
        seed=seed,
        shard_bytes=shard_bytes,
        listed=dataset.num_listed,
        plan_id=plan_id(seed, shard_bytes, listed),
        shards=pack(shuffled, shard_bytes),
        missing=[relative_path(p, root) for p in dataset.missing],
        missing_labels=[int(label) for label in dataset.missing_labels],
    )


def read_sidecar(path: str) -> dict:
    """A finished shard's facts; one that cannot be parsed names itself (it is written whole, so it was edited)."""
    try:
        facts = json.loads(storage.read_bytes(path))
    except ValueError as e:
        raise UserError(f"{path} is not the JSON facts of a finished shard ({e}); delete it to redo it") from None
    if not isinstance(facts, dict) or "plan" not in facts or "samples" not in facts:
        raise UserError(f'{path} is not the facts of a finished shard (no "plan" or "samples"); delete it')
    return facts


def _conflict(output: str, where: str, other: str, plan: ShardPlan) -> UserError:
    return UserError(
        f"{output} holds shards of another plan ({where} has plan {other}, this run's is {plan.plan_id}: the seed, "
        f"--shard-size-mb or the split's videos differ); write to a new --output, or rerun with the same options"
    )


@dataclass
class Leftovers:
    """What an earlier run left in the output: finished shards (number -> sidecar facts), the sidecars of shards
    that are not finished (to delete before those are redone), and temporaries of a killed run."""

    finished: dict[int, dict] = field(default_factory=dict)
    stale: list[str] = field(default_factory=list)
    temporaries: list[str] = field(default_factory=list)


def survey_output(plan: ShardPlan, output: str) -> Leftovers:
    """What `output` holds of an earlier run. A shard is finished when its sidecar exists and its tar is in place
    with the size the sidecar records. Raises a UserError, before anything is written, when `output` holds the
    shards or index of another plan, or is a file."""
    if storage.isfile(output):
        raise UserError(f"--output {output} is a file; expected a folder or URL prefix for the shards")
    if not storage.isdir(output):
        return Leftovers()
    names = storage.listdir(output)
    if INDEX_NAME in names:
        try:
            other = json.loads(storage.read_bytes(storage.join(output, INDEX_NAME))).get("plan")
        except (ValueError, AttributeError):
            other = "unknown"
        if other != plan.plan_id:
            raise _conflict(output, INDEX_NAME, str(other), plan)
    found = Leftovers(temporaries=[storage.join(output, n) for n in names if n.startswith(TEMP_PREFIX)])
    for name in names:
        match = _SIDECAR.match(name)
        if not match:
            continue
        path = storage.join(output, name)
        facts = read_sidecar(path)
        if facts["plan"] != plan.plan_id:
            raise _conflict(output, name, str(facts["plan"]), plan)
        number = int(match.group(1))
        tar = shard_name(number)
        if number < len(plan.shards) and tar in names and storage.size(storage.join(output, tar)) == facts["bytes"]:
            found.finished[number] = facts
        else:
            found.stale.append(path)
    return found
