"""The `shards` dataset: a split written by tools/make_shards.py as tar shards (WebDataset layout) with an index,
on local disk, at an http(s) URL or in object storage (`s3://bucket/prefix`; endpoint and credentials from the
standard AWS environment variables and files). DATA.PATH_TO_DATA_DIR is the folder or prefix that holds one
sub-folder per split, as `make_shards.py --output PREFIX/SPLIT` wrote them; the test split falls back to val.

Videos are decoded from memory with the decoder, samplers and transforms of local files: the same frames, bit
for bit. Training reads each process's part of the epoch as `lanes` streams (one per loader worker) in the order
of shard_plan.EpochPlan, with few large ranged requests; its batch sampler (`ShardBatchSampler`) gives every
rank the same number of batches and resumes exactly in the middle of an epoch. Validation and testing fetch each
video's sample with one ranged request, each video on one rank (the loaders of the local datasets).
"""

import hashlib
import json
import logging
from typing import Optional, Union

from torch.utils.data import get_worker_info

from vtn import storage
from vtn.config.views import ViewSpec
from vtn.datasets.annotations import data_dir_of
from vtn.datasets.build import DATASET_REGISTRY
from vtn.datasets.files import is_http
from vtn.datasets.shard_index import INDEX_NAME, ShardIndex
from vtn.datasets.shard_plan import EpochPlan
from vtn.datasets.shard_reader import LaneReader, SampleFetcher
from vtn.datasets.video_dataset import VideoDataset
from vtn.utils.errors import DatasetError
from vtn.utils.logging import log_once
from vtn.video.decoder import MemoryVideo

logger = logging.getLogger(__name__)


def split_url(cfg, split: str) -> str:
    """The folder or prefix of `split`'s shards; test falls back to val when it has no index."""
    root = data_dir_of(cfg, "that holds the splits written by tools/make_shards.py (train/, val/, test/)")
    url = storage.join(root, split)
    if split == "test" and not storage.isfile(storage.join(url, INDEX_NAME)):
        val = storage.join(root, "val")
        log_once(logger, logging.INFO, f"{storage.join(url, INDEX_NAME)} does not exist: testing on {val}")
        return val
    return url


def load_index(url: str) -> ShardIndex:
    """index.json of the split at `url`, its shards checked to exist (one listing): a missing index or shard is
    one DatasetError at start-up, before any training."""
    path = storage.join(url, INDEX_NAME)
    if not storage.isfile(path):
        raise DatasetError(
            f"{path} does not exist: DATA.PATH_TO_DATA_DIR of TRAIN.DATASET / TEST.DATASET shards is the folder or "
            f"prefix of the splits that tools/make_shards.py wrote (make_shards.py --split SPLIT --output {url})"
        )
    try:
        index = ShardIndex.from_json(storage.read_bytes(path).decode("utf-8"), path)
    except (ValueError, UnicodeDecodeError) as e:
        raise DatasetError(str(e)) from None
    names = [shard["name"] for shard in index.shards]
    if is_http(url):  # no listing over http(s): a HEAD per shard
        gone = [n for n in names if not storage.isfile(storage.join(url, n))]
    else:
        present = set(storage.listdir(url))
        gone = [n for n in names if n not in present]
    if gone:
        raise DatasetError(
            f"{len(gone)} of the {len(names)} shards that {path} lists are missing, e.g. {storage.join(url, gone[0])}: "
            "copy them again, or write the split again with tools/make_shards.py"
        )
    if index.num_samples == 0:
        raise DatasetError(f"{path} lists no samples: every video of the split was unreadable or missing")
    return index


class ShardVideoDataset(VideoDataset):
    """The videos of one split's shards; `paths` are the videos' source paths (relative to the data folder they were
    written from), which reports and the dataset fingerprint use as for local files."""

    def __init__(self, cfg, split: str, view: Union[ViewSpec, str]):
        url = split_url(cfg, split)
        index = load_index(url)
        s = index.samples
        labels = [int(x) for x in s["label"]]
        super().__init__(cfg, split, view, list(s["source"]), labels, index.classes, located=True)
        self.data_root = ""  # sources are relative already
        self.url, self.index = url, index
        self.missing = list(index.missing)
        self.missing_labels = [int(x) for x in index.extra.get("missing_labels", [-1] * len(index.missing))]
        self.fetcher = SampleFetcher(url, index, int(cfg.DATA.SHARD_READ_MB * 2**20))
        # set by build_loader for training (ShardBatchSampler): this process's place
        self.rank, self.world, self.batch = 0, 1, 1
        self._plan: Optional[EpochPlan] = None
        self._readers: dict[int, LaneReader] = {}
        self._last: tuple[int, bytes] = (-1, b"")
        self._planned: Optional[tuple] = None

    def is_missing(self, video_idx: int) -> bool:
        return False  # a sample's bytes are in its shard; the videos left out are `missing` already

    def fingerprint(self) -> str:
        """12 hex digits of sha1 over the index's own fingerprint (its videos and labels), its shuffle seed and its
        shards (names, samples, bytes): two copies with the same one hold the same samples in the same order."""
        shards = [(s["name"], s["samples"], s.get("bytes")) for s in self.index.shards]
        facts = json.dumps([self.index.fingerprint, self.index.seed, shards])
        return hashlib.sha1(facts.encode("utf-8")).hexdigest()[:12]

    def epoch_plan(self, epoch: int, lanes: int) -> EpochPlan:
        key = (epoch, lanes, self.rank, self.world, self.batch)
        if self._plan is None or self._plan_key != key:
            counts = [shard["samples"] for shard in self.index.shards]
            buffer = self.cfg.DATA.SHARD_SHUFFLE_BUFFER
            self._plan = EpochPlan(counts, self.cfg.RNG_SEED, epoch, self.rank, self.world, self.batch, lanes, buffer)
            self._plan_key, self._readers = key, {}
        return self._plan

    def __getitem__(self, key) -> dict:
        """A bare index or `(index, epoch[, draw])` as for local files; the training keys of ShardBatchSampler add
        `(batch, slot, start batch, lanes)`, the sample's place in the epoch's plan."""
        if isinstance(key, tuple) and len(key) > 3:
            self._planned = key
            key = key[:3]
        try:
            return super().__getitem__(key)
        finally:
            self._planned = None

    def video_source(self, video_idx: int) -> MemoryVideo:
        planned = self._planned
        if planned is not None and int(planned[0]) == video_idx:
            data = self._take_planned(*(int(x) for x in planned[1:]))
        elif self._last[0] == video_idx:  # the next view of the same video (testing)
            data = self._last[1]
        else:
            data = self.fetcher.fetch(video_idx)
        self._last = (video_idx, data)
        return MemoryVideo(self.paths[video_idx], data)

    def _take_planned(self, epoch: int, draw: int, j: int, t: int, start: int, lanes: int) -> bytes:
        plan = self.epoch_plan(epoch, lanes)
        lane, q = plan.position(j, t)
        worker = get_worker_info()
        workers, me = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        if lanes != workers or (j - start) % workers != me:
            # a lane read by several workers (a run resumed with another DATA_LOADER.NUM_WORKERS, for the rest of
            # that epoch): each sample is fetched alone, the same samples in the same order
            return self.fetcher.fetch(plan.sample(j, t))
        reader = self._readers.get(lane)
        if reader is None:
            first = plan.position(j, 0)[1]  # the lane's outputs before this batch were taken before a resume
            reader = self._readers[lane] = LaneReader(
                self.fetcher, plan.lane_stream(lane), plan.lane_order(lane), first
            )
        return reader.take(q)

    def batch_sampler(self, batch: int, rank: int, world: int, workers: int, train: bool):
        """Training's ShardBatchSampler (equal batches per rank, exact resume); None for validation and testing,
        whose loaders are those of the local datasets."""
        if not train:
            return None
        if self.cfg.DATA_LOADER.REPEATED_AUG > 1:
            raise DatasetError(
                "DATA_LOADER.REPEATED_AUG > 1 is not supported with TRAIN.DATASET shards (a stream reads each sample "
                "once per epoch): set DATA_LOADER.REPEATED_AUG 1"
            )
        self.rank, self.world, self.batch = rank, world, batch
        return ShardBatchSampler(self, max(1, workers))


class ShardBatchSampler:
    """The training batches of one rank from shards: batch j of the epoch's plan is the keys
    `(sample, epoch, 0, j, slot, start, lanes)`; DataLoader hands batch j to worker (j - start) % workers, which is
    the worker that reads lane j % lanes when `lanes` is the worker count (or 1 without workers)."""

    def __init__(self, dataset: ShardVideoDataset, lanes: int):
        self.dataset, self.lanes = dataset, lanes
        self.epoch = self.start_batch = 0
        self.resumed: Optional[tuple[int, int]] = None  # (epoch, lanes) of a checkpoint's unfinished epoch

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def lanes_of(self, epoch: int) -> int:
        """The lanes of `epoch`'s plan: the checkpoint's for the epoch a run resumes in, else one per worker."""
        return self.resumed[1] if self.resumed is not None and self.resumed[0] == epoch else self.lanes

    def state_dict(self) -> dict:
        """Kept in checkpoints: the epoch's order depends on the lanes (the loader workers of the run)."""
        return {"dataset": "shards", "lanes": self.lanes_of(self.epoch)}

    def load_state_dict(self, state: dict, epoch: int) -> None:
        lanes = int(state.get("lanes", self.lanes))
        if lanes != self.lanes:
            logger.warning(
                "The checkpoint's epoch %d was read by %d loader workers and this run has %d: the rest of that epoch "
                "keeps its order, each sample fetched alone; the next epochs are read by %d streams",
                epoch + 1,
                lanes,
                self.lanes,
                self.lanes,
            )
        self.resumed = (int(epoch), lanes)

    def __iter__(self):
        e, s, lanes = self.epoch, self.start_batch, self.lanes_of(self.epoch)
        plan = self.dataset.epoch_plan(e, lanes)
        for j in range(s, plan.batches):
            yield [(plan.sample(j, t), e, 0, j, t, s, lanes) for t in range(plan.batch)]

    def __len__(self) -> int:
        d = self.dataset
        return (d.index.num_samples // d.world) // d.batch


@DATASET_REGISTRY.register_as("shards")
def build_shards(cfg, split: str, view: ViewSpec) -> ShardVideoDataset:
    return ShardVideoDataset(cfg, split, view)
