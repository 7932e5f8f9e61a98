"""The dataset registry, `build_dataset`, `build_loader` and the epoch-keyed sampler.

A dataset builder of the registry is `f(cfg, split, view) -> dataset`: `view` is the ViewSpec (vtn/config/views.py)
that says how videos are cut into views, and the dataset keeps the contract of contract.ViewDataset (the items,
`paths`, `labels`, `missing`, `class_names`, `check_model`, ...). Builders usually hand `view` to VideoDataset
(or FeatureDataset), which also take a protocol name such as "full_video" in its place.

The sampler decides the order of an epoch from (RNG_SEED, epoch) alone: every process computes the same
permutation and takes its share (rank::world), so a 1-process run with batch B and a 2-process run with
batches B/2 see the same clips in each global step. It passes `(index, epoch, draw)` keys to the dataset (whose
per-item randomness is seeded from them, see video_dataset.py) and can start at a given batch, which is
how a run resumed in the middle of an epoch skips what was done without decoding it.

Validation and test shards are `rank::world` of the list without padding, so no view is seen twice.
"""

import gc
import logging
import os
import random
import weakref
from collections import deque
from collections.abc import Iterator
from typing import NamedTuple, Optional, Union

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler, default_collate, get_worker_info

from vtn.config import SPLITS, ViewSpec, as_view, batch_plan, default_view, eval_batch_per_process, register_choices
from vtn.utils.files import atomic_write
from vtn.utils.logging import log_once
from vtn.utils.registry import Registry

logger = logging.getLogger(__name__)

DATASET_REGISTRY = Registry("dataset")
DATASET_REGISTRY.__doc__ = (
    "Builders `f(cfg, split, view) -> ViewDataset`: `view` a vtn.config.ViewSpec; the dataset keeps the contract of "
    "vtn/datasets/contract.py (items, paths, labels, missing, class_names, check_model, ...)."
)
register_choices("TRAIN.DATASET", DATASET_REGISTRY.names)
register_choices("TEST.DATASET", DATASET_REGISTRY.names)
register_choices("DATA.FEATURES_SOURCE", lambda: [""] + DATASET_REGISTRY.names())


def build_dataset(cfg, split: str, view: Union[ViewSpec, str, None] = None):
    """The dataset of `split` (TRAIN.DATASET for train and val, TEST.DATASET for test) read with `view`: a
    ViewSpec, a protocol name, or None for the split's default (vtn.config.default_view)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    view = as_view(cfg, view) if view else default_view(cfg, split)
    name = cfg.TRAIN.DATASET if split in ("train", "val") else cfg.TEST.DATASET
    return DATASET_REGISTRY.get(name)(cfg, split, view)


def splits_of_run(cfg) -> list[str]:
    """The splits a run of tools/run_net.py reads: train (and val when it validates) when it trains, test when
    it tests."""
    splits = []
    if cfg.TRAIN.ENABLE:
        splits += ["train", "val"] if cfg.TRAIN.EVAL_PERIOD > 0 else ["train"]
    if cfg.TEST.ENABLE:
        splits.append("test")
    return splits


def check_splits(cfg) -> None:
    """Read the annotations of every split the run will use, before any other work: a missing data folder or a
    bad line of test.csv stops the run at start-up (with the file and line), not after a weight download or a
    whole training."""
    for split in splits_of_run(cfg):
        build_dataset(cfg, split)


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class EpochSampler(Sampler):
    """Yields `(index, epoch, draw)` keys: this process's share of the epoch's order, from `start_batch` on.

    Repeated augmentation (`repeats` > 1, DeiT's recipe): each index of the permuted order appears `repeats`
    times in a row (`draw` 0 .. repeats-1, which the dataset seeds its augmentation with, so the copies differ);
    the `rank::world` split then sends the copies to different processes. With `keep_epoch_size` (DeiT's
    sampler) an epoch keeps `size` draws, the first ones of that repeated order; without it an epoch holds every
    index `repeats` times.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        seed: int,
        rank: int = 0,
        world: int = 1,
        repeats: int = 1,
        keep_epoch_size: bool = True,
    ):
        self.size, self.batch_size, self.shuffle, self.drop_last = size, batch_size, shuffle, drop_last
        self.seed, self.rank, self.world = seed, rank, world
        self.repeats, self.keep_epoch_size = max(1, int(repeats)), keep_epoch_size
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def _total(self) -> int:
        """Draws in the epoch over all processes, before the split."""
        return self.size if self.repeats == 1 or self.keep_epoch_size else self.size * self.repeats

    def _mine(self) -> np.ndarray:
        """(index, draw) rows of this process."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch, 7919]).permutation(self.size)
        else:
            order = np.arange(self.size)
        keys = np.stack([np.repeat(order, self.repeats), np.tile(np.arange(self.repeats), self.size)], axis=1)
        keys = keys[: self._total()]
        if self.drop_last:
            per_rank = (len(keys) // self.world) // self.batch_size * self.batch_size
            keys = keys[: per_rank * self.world]
        return keys[self.rank :: self.world]

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        mine = self._mine()[self.start_batch * self.batch_size :]
        return iter([(int(i), self.epoch, int(d)) for i, d in mine])

    def __len__(self) -> int:
        total = self._total()
        if self.drop_last:
            return (total // self.world) // self.batch_size * self.batch_size
        return len(range(self.rank, total, self.world))


class VideoBatchSampler(Sampler):
    """Batches of `batch` view keys for a test or validation pass whose views of a video read one decode of it
    (DATA.DECODE_VIDEO_ONCE): a video's views never leave one process (videos `rank::world`, no padding, each
    view once) nor, but for at most `workers - 1` videos at the very end, one loader worker.

    DataLoader hands batch k to worker k % workers (its lane). Each lane takes the views of its videos in
    order (a batch may end one video and start the next); a lane whose videos are done takes a video not yet
    started from the lane with the most left, and only when none is left, the rest of another lane's video (whose
    frames that worker then decodes a second time: the same frames, never others)."""

    def __init__(self, num_videos: int, views: int, batch: int, rank: int = 0, world: int = 1, workers: int = 0):
        lanes = max(1, workers)
        mine = list(range(rank, num_videos, world))
        self.waiting = [deque(mine[lane::lanes]) for lane in range(lanes)]  # videos not started, per lane
        self.current = [deque() for _ in range(lanes)]  # view keys of the video each lane is on
        self.views, self.batch = views, batch
        self.batches = []
        while any(self.waiting) or any(self.current):
            self.batches.append(self._next(len(self.batches) % lanes))

    def _next(self, lane: int) -> list[int]:
        keys = []
        while len(keys) < self.batch:
            if not self.current[lane]:
                donor = (
                    lane if self.waiting[lane] else max(range(len(self.waiting)), key=lambda s: len(self.waiting[s]))
                )
                if not self.waiting[donor]:
                    break
                video = self.waiting[donor].popleft()
                self.current[lane].extend(range(video * self.views, (video + 1) * self.views))
            while self.current[lane] and len(keys) < self.batch:
                keys.append(self.current[lane].popleft())
        if not keys:  # nothing left to start: the rest of a video another lane is on
            other = next(s for s in range(len(self.current)) if self.current[s])
            keys = [self.current[other].popleft() for _ in range(min(self.batch, len(self.current[other])))]
        return keys

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def missing_videos_file(output_dir: str, split: str) -> str:
    return os.path.join(output_dir, f"missing_videos_{split}.txt")


def report_missing(dataset, output_dir: str) -> None:
    """One log line for the listed videos of a split that are not on disk (left out of the dataset), and (the
    master process, when there is an OUTPUT_DIR) their list in OUTPUT_DIR/missing_videos_<split>.txt."""
    missing = dataset.missing
    if not missing:
        return
    where = ""
    if output_dir:
        path = missing_videos_file(output_dir, dataset.split)
        where = f" (listed in {path})"
        if _world()[0] == 0:
            os.makedirs(output_dir, exist_ok=True)
            atomic_write(path, lambda f: f.write("".join(p + "\n" for p in missing)), binary=False)
    log_once(
        logger,
        logging.WARNING,
        f"{len(missing)} of the {dataset.num_listed} videos listed for the {dataset.split} split are not on disk "
        f"and are left out{where}, e.g. {missing[0]}",
    )


class WorkerSlots:
    """What each worker of one loader was last given: a row per worker of (its pid, the video index of the item it
    was last asked for; -1 for none yet) in shared memory, made before the workers start. A worker writes its row
    (its pid at start-up, then ViewDataset.__getitems__ before each item); the main process reads it only when a
    worker has died, to name the video that worker was on (`last_given`)."""

    def __init__(self, workers: int):
        self.table = torch.full((max(1, workers), 2), -1, dtype=torch.long).share_memory_()

    def record(self, video_idx: int) -> None:
        """In a loader worker: this worker's pid and `video_idx` into its row (nothing in the main process)."""
        info = get_worker_info()
        if info is not None and info.id < len(self.table):
            self.table[info.id, 0] = os.getpid()
            self.table[info.id, 1] = video_idx

    def find(self, pid: int) -> Optional[tuple[int, int]]:
        """(worker id, last video index or -1) of the worker with `pid`; None when no worker here had it."""
        for worker, (row_pid, video_idx) in enumerate(self.table.tolist()):
            if row_pid == pid:
                return worker, video_idx
        return None


class WorkerItem(NamedTuple):
    """A loader worker found by its pid: its split, its id in the loader, and the path of its last video (None when
    it had been given none)."""

    split: str
    worker: int
    path: Optional[str]


_watched: "weakref.WeakSet" = weakref.WeakSet()  # the datasets of the live loaders that have workers


def last_given(pid: int) -> Optional[WorkerItem]:
    """The loader worker with process id `pid` among the live loaders of build_loader, and the video it was last
    given; None for a pid that is not one of their workers."""
    for dataset in list(_watched):
        found = dataset.worker_slots.find(pid)
        if found is not None:
            worker, video_idx = found
            path = str(dataset.paths[video_idx]) if 0 <= video_idx < len(dataset.paths) else None
            return WorkerItem(dataset.split, worker, path)
    return None


def worker_pids() -> list[int]:
    """The pids of the workers of the live loaders of build_loader (those that have started)."""
    return [pid for dataset in list(_watched) for pid, _ in dataset.worker_slots.table.tolist() if pid > 0]


def _seed_worker(worker_id: int) -> None:
    """Each worker's own generators differ and are reproducible (items use their own seeds anyway). The objects a
    forked worker inherits are frozen out of the garbage collector: it would walk them all (half a million after
    the imports) at its first collections, e.g. while an object-storage client is made, and touching them copies
    the parent's memory pages. The worker's pid goes into its WorkerSlots row at once."""
    gc.freeze()
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
    slots = getattr(get_worker_info().dataset, "worker_slots", None)
    if slots is not None:
        slots.record(-1)


def build_loader(cfg, split: str, view: Union[ViewSpec, str, None] = None) -> DataLoader:
    """The loader of `build_dataset(cfg, split, view)`: this process's share, batched by the batch plan."""
    dataset = build_dataset(cfg, split, view)
    report_missing(dataset, cfg.OUTPUT_DIR)
    rank, world = _world()
    if split == "train":
        batch = batch_plan(cfg, world).per_process  # TRAIN.BATCH_SIZE, or as SOLVER.SCALE_RULE adapts it
    else:
        batch = eval_batch_per_process(cfg, world)
    train = split == "train"
    workers = cfg.DATA_LOADER.NUM_WORKERS
    dataset.items_alone = batch == 1  # a full video per process: its frames reach the main process uncopied
    own = dataset.batch_sampler(batch, rank, world, workers, train)
    if own is not None:
        return _loader(cfg, dataset, rank, batch_sampler=own)
    if not train and dataset.decode_once:
        grouped = VideoBatchSampler(dataset.num_videos, dataset.num_views, batch, rank, world, workers)
        return _loader(cfg, dataset, rank, batch_sampler=grouped)
    sampler = EpochSampler(
        len(dataset),
        batch,
        shuffle=train,
        drop_last=train,
        seed=cfg.RNG_SEED,
        rank=rank,
        world=world,
        repeats=cfg.DATA_LOADER.REPEATED_AUG if train else 1,
        keep_epoch_size=cfg.DATA_LOADER.REPEATED_AUG_EPOCH == "dataset",
    )
    return _loader(cfg, dataset, rank, batch_size=batch, sampler=sampler, drop_last=train)


def collate_items(items: list[dict]):
    """The loader's batch of dataset items: a batch of one item (a full video per process) is the item with a batch
    axis in front, views of its tensors where stacking would copy all its frames once more; several items are
    stacked as DataLoader does."""
    if len(items) == 1 and all(isinstance(v, torch.Tensor) for v in items[0].values()):
        return {k: v.unsqueeze(0) for k, v in items[0].items()}
    return default_collate(items)


def _loader(cfg, dataset, rank: int, **batching) -> DataLoader:
    workers = cfg.DATA_LOADER.NUM_WORKERS
    if workers > 0:  # what each worker was given, for the one line that names a dead worker's video
        dataset.worker_slots = WorkerSlots(workers)
        _watched.add(dataset)
    generator = torch.Generator()
    generator.manual_seed(cfg.RNG_SEED * 1000 + rank)
    return DataLoader(
        dataset,
        num_workers=workers,
        pin_memory=cfg.DATA_LOADER.PIN_MEMORY and cfg.NUM_GPUS > 0,
        persistent_workers=cfg.DATA_LOADER.PERSISTENT_WORKERS and workers > 0,
        worker_init_fn=_seed_worker,
        generator=generator,
        collate_fn=collate_items,
        **batching,
    )


def loader_state(loader: DataLoader):
    """What the loader needs besides (epoch, iteration) to continue an epoch exactly (kept in checkpoints): its
    batch sampler's `state_dict()` when it has one (the shards dataset's), else None."""
    sampler = getattr(loader, "batch_sampler", None)
    return sampler.state_dict() if hasattr(sampler, "state_dict") else None


def restore_loader_state(loader: DataLoader, state, epoch: int, iteration: int) -> None:
    """Give a resumed run's loader the `loader_state` of its checkpoint, saved after `iteration` batches of `epoch`
    (nothing to continue when 0: the epoch starts afresh)."""
    sampler = getattr(loader, "batch_sampler", None)
    if state is not None and iteration > 0 and hasattr(sampler, "load_state_dict"):
        sampler.load_state_dict(state, epoch)


def shuffle_dataset(loader: DataLoader, epoch: int, start_iter: int = 0) -> None:
    """Select the order of `epoch` (and skip its first `start_iter` batches when resuming)."""
    sampler = loader.batch_sampler if hasattr(loader.batch_sampler, "set_epoch") else loader.sampler
    if hasattr(sampler, "set_epoch"):
        try:
            sampler.set_epoch(epoch, start_iter)
        except TypeError:  # a plain DistributedSampler
            sampler.set_epoch(epoch)
            if start_iter:
                raise ValueError("resuming mid-epoch needs the EpochSampler of build_loader") from None
