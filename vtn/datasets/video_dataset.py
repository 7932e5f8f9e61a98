"""The video dataset every video dataset of the registry builds on: a list of (path, label) and a view.

It keeps the dataset contract (contract.ViewDataset): items of `frames` float (C, T, H, W), `label`, `video_idx`,
`frame_idx` (T,), `temporal_idx`, `spatial_idx`, `ok` (False for a test video that could not be decoded) and
`decode_failures` (see `make_item`). Which frames and crops make a view is the view's (a ViewSpec, or a protocol
name read as vtn.config.view_spec reads it).

Randomness: every random choice of a training item (clip start, scale, crop, flip, augmentation) comes from
a generator seeded by (RNG_SEED, epoch, index, attempt, draw), never from a worker's running random state.
The same item is therefore the same whatever the number of workers or processes, and a run resumed in the
middle of an epoch sees exactly the clips of an uninterrupted one. The sampler passes `(index, epoch, draw)`
keys; `draw` numbers the copies of an index under repeated augmentation (DATA_LOADER.REPEATED_AUG).

Missing videos: a listed video that is not on disk (found exactly, or by a case-insensitive match of its path,
see files.py) is left out of `paths` and kept in `missing` (with `missing_labels`), so that it is counted, never
decoded; `num_listed` counts both.

Bad videos: a video that fails to decode is logged with its path and reason and counted. Training and
validation draw another video (up to DATA_LOADER.NUM_RETRIES times); testing returns the item with
`ok = False` so that the video is reported as failed.

Slow videos: each item is decoded under DATA.DECODE_TIMEOUT (vtn/video/deadline.py). A video that passes it is
abandoned, logged with its path and time, counted and treated as a bad video, and appended to
OUTPUT_DIR/quarantine.txt (quarantine.py). A quarantined video is never decoded again: it fails at once, in this
process from then on, in the other workers and ranks once they read the file again (each epoch start, and every
few seconds), and in later runs of the same OUTPUT_DIR.
"""

import logging
import random
from collections import OrderedDict
from contextlib import contextmanager
from typing import Optional, Union

import numpy as np
import torch
from torch.utils.data import get_worker_info

from vtn import storage
from vtn.config.views import ViewSpec
from vtn.datasets import sampling, transforms
from vtn.datasets.annotations import check_label_range, repeated_rows, repeats_policy
from vtn.datasets.augment import build_train_augmentations
from vtn.datasets.contract import ViewDataset
from vtn.datasets.decoded_video import DecodedVideo, decode_union
from vtn.datasets.files import locate_videos
from vtn.datasets.quarantine import Quarantine, QuarantinedVideo, quarantine_path
from vtn.utils.errors import DatasetError
from vtn.utils.logging import log_once
from vtn.video.deadline import DecodeTimeout, decode_deadline
from vtn.video.decoder import VideoDecodeError, VideoInfo, build_decoder

logger = logging.getLogger(__name__)

# Probes kept per dataset copy (a loader worker's): every video of a small dataset, a bounded share of Kinetics'.
INFO_CACHE = 4096


@contextmanager
def seeded_global_rng(seed: int):
    """Seed python / numpy / torch global generators for a block (augmentations that use them), then
    restore them so that the caller's random stream is untouched."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def item_key(key) -> tuple[int, int, int]:
    """(index, epoch, draw) of a sampler key: a bare index, `(index, epoch)` or `(index, epoch, draw)`."""
    if not isinstance(key, tuple):
        return int(key), 0, 0
    return int(key[0]), int(key[1]), int(key[2]) if len(key) > 2 else 0


def item_seed(rng_seed: int, epoch: int, index: int, attempt: int, draw: int = 0) -> np.random.SeedSequence:
    """The seed of every random choice of one item: the same whatever the workers or processes. `draw` (a copy
    of the index under repeated augmentation) is left out when 0, so that runs without repeats keep their seeds."""
    return np.random.SeedSequence([rng_seed, epoch, index, attempt] + ([draw] if draw else []))


def make_item(
    input_key: str,
    inputs: torch.Tensor,
    label: int,
    frame_idx: torch.Tensor,
    video_idx: int,
    temporal_idx: int,
    spatial_idx: int,
    ok: bool,
    failures: int,
) -> dict:
    """One dataset item in the contract every dataset keeps: the model input under `input_key` ("frames" or
    "embeddings", see vtn/engine/inputs.py), then label, indices, success flag and decode-failure count."""
    return {
        input_key: inputs,
        "label": torch.tensor(label, dtype=torch.long),
        "video_idx": torch.tensor(video_idx, dtype=torch.long),
        "frame_idx": frame_idx.long(),
        "temporal_idx": torch.tensor(temporal_idx, dtype=torch.long),
        "spatial_idx": torch.tensor(spatial_idx, dtype=torch.long),
        "ok": torch.tensor(ok),
        "decode_failures": torch.tensor(failures, dtype=torch.long),
    }


class VideoDataset(ViewDataset):
    """Decoded views of the videos at `paths` (with their `labels`); `view` a ViewSpec or a protocol name.

    `located`: the paths come from a listing of the files (class folders) or are not files at all (samples of tar
    shards, whose subclass returns what the decoder reads from `video_source`): they are not looked for again.
    """

    def __init__(
        self,
        cfg,
        split: str,
        view: Union[ViewSpec, str],
        paths: list[str],
        labels: list[int],
        class_names: Optional[list[str]] = None,
        ignored_files: int = 0,
        located: bool = False,
    ):
        super().__init__(cfg, split, view)
        if len(paths) != len(labels):
            raise ValueError("paths and labels differ in length")
        if class_names is not None and len(class_names) != cfg.MODEL.NUM_CLASSES:
            raise DatasetError(
                f"the dataset has {len(class_names)} classes ({', '.join(class_names[:3])}, ...) and MODEL.NUM_CLASSES "
                f"is {cfg.MODEL.NUM_CLASSES}: set MODEL.NUM_CLASSES {len(class_names)}"
            )
        check_label_range(list(paths), list(labels), cfg.MODEL.NUM_CLASSES, split)
        paths, labels = self._drop_repeats(split, list(paths), list(labels))
        found, missing = (paths, []) if located else locate_videos(list(paths), self.data_root)
        self.missing = [paths[i] for i in missing]
        self.missing_labels = [labels[i] for i in missing]
        self.paths = [p for p in found if p is not None]
        self.labels = [lab for p, lab in zip(found, labels) if p is not None]
        if not self.paths:
            raise DatasetError(
                f"none of the {len(paths)} videos of the {split} split is on disk (e.g. {paths[0]}): check "
                "DATA.PATH_TO_DATA_DIR and DATA.PATH_PREFIX"
            )
        # Files of the dataset's folders that are not videos (by extension): ignored, counted, never decoded.
        self.ignored_files = ignored_files
        self.class_names = class_names
        # Horizontal flip of training clips when DATA.RANDOM_FLIP is None (datasets whose classes are about
        # left and right, such as Something-Something, set it False).
        self.default_flip = True
        self.decoder = build_decoder(cfg)
        self.crop = cfg.DATA.TRAIN_CROP_SIZE if self.view.training else cfg.DATA.TEST_CROP_SIZE
        self.before_normalize = self.after_normalize = None
        if self.view.training and cfg.AUG.ENABLE:
            self.before_normalize, self.after_normalize = build_train_augmentations(cfg)
        self._info: OrderedDict[str, VideoInfo] = OrderedDict()  # the probes of the last INFO_CACHE videos
        # DATA.DECODE_VIDEO_ONCE: the views of a video read one decode of all their frames (decoded_video.py);
        # the last video decoded is kept, and the loader hands a video's views to one worker in a row
        self.decode_once = bool(cfg.DATA.DECODE_VIDEO_ONCE) and not self.view.training and self.view.views > 1
        self._decoded: Optional[DecodedVideo] = None
        self.decode_timeout = float(cfg.DATA.DECODE_TIMEOUT)
        self.quarantine = Quarantine(quarantine_path(cfg.OUTPUT_DIR))
        self._epoch: Optional[int] = None  # the epoch of the last item: a new one reads the quarantine again
        self._said: set[str] = set()  # quarantined videos this process has logged
        listed = sum(str(p) in self.quarantine for p in self.paths) if len(self.quarantine) else 0
        if listed:  # once per process: a process builds a split's dataset more than once
            instead = "replaced by other videos" if split in ("train", "val") else "reported as failed"
            message = (
                f"{split} split: {listed} of its {len(self.paths)} videos are listed in {self.quarantine.path} and are "
                f"not decoded ({instead})"
            )
            log_once(logger, logging.WARNING, message)

    def _drop_repeats(self, split: str, paths: list[str], labels: list[int]) -> tuple[list[str], list[int]]:
        """Rows that list a video again: said in the log, counted in `repeated_rows`, and kept or dropped as
        `repeats_policy` says."""
        first, repeated, conflicting = repeated_rows(paths, labels)
        self.repeated_rows = len(paths) - len(first)
        if not repeated:
            return paths, labels
        other = f" ({conflicting} with another label than their first row)" if conflicting else ""
        logger.warning(
            "%s split: %d rows list a video listed above%s, e.g. %s; %s",
            split,
            self.repeated_rows,
            other,
            repeated[0],
            repeats_policy(split),
        )
        if split == "train":
            return paths, labels
        return [paths[i] for i in first], [labels[i] for i in first]

    def is_missing(self, video_idx: int) -> bool:
        """Whether a listed video is not on disk (reported apart from videos that fail to decode)."""
        return not storage.exists(self.paths[video_idx])

    @property
    def random_flip(self) -> bool:
        """Whether training clips are flipped: DATA.RANDOM_FLIP, or the dataset's default when it is None."""
        flip = self.cfg.DATA.RANDOM_FLIP
        return self.default_flip if flip is None else bool(flip)

    # ------------------------------------------------------------------ decoding one view
    def info(self, path) -> VideoInfo:
        """The probe of a video (a path or a MemoryVideo), kept by its name."""
        name = str(path)
        if name in self._info:
            self._info.move_to_end(name)
        else:
            self._info[name] = self.decoder.probe(path)
            if len(self._info) > INFO_CACHE:  # a probe holds every frame's time: a worker never keeps them all
                self._info.popitem(last=False)
        return self._info[name]

    def video_source(self, video_idx: int):
        """What the decoder reads for video `video_idx`: its path here."""
        return self.paths[video_idx]

    def _spatial(self, info: VideoInfo, spatial_idx: int, rng) -> transforms.SpatialParams:
        d = self.cfg.DATA
        if self.view.training:
            return transforms.train_params(
                info.width, info.height, d.TRAIN_JITTER_SCALES, d.TRAIN_CROP_SIZE, self.random_flip, rng
            )
        return transforms.test_params(
            info.width, info.height, d.TEST_SCALE, d.TEST_CROP_SIZE, spatial_idx, self.view.crops
        )

    def load_view(
        self,
        video_idx: int,
        temporal_idx: int,
        spatial_idx: int,
        rng: Optional[np.random.Generator] = None,
        seed: int = 0,
        source=None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode and transform one view: float (C, T, H, W) and the frame indices (T,). `source`: what
        `video_source(video_idx)` gave, when the caller has it already."""
        path = self.video_source(video_idx) if source is None else source
        info = self.info(path)
        wanted = sampling.view_frame_indices(self.view, info.num_frames, info.fps, info.times, temporal_idx, rng)
        params = self._spatial(info, spatial_idx, rng)
        size = (params.width, params.height)
        if self.decode_once:
            frames, got = self.decoded_video(path, info, size).take(wanted)
        else:
            frames, got = self.decoder.decode(path, wanted, size=size, info=info)
        frames, got = fill_missing(wanted, frames, got)
        frames = transforms.apply_crop_flip(frames, params)
        if self.before_normalize is not None:
            with seeded_global_rng(seed):
                frames = self.before_normalize(torch.from_numpy(frames)).numpy()
        shared = self.items_alone and get_worker_info() is not None
        clip = transforms.to_normalized_tensor(frames, self.cfg.DATA.MEAN, self.cfg.DATA.STD, shared)
        if self.after_normalize is not None:
            with seeded_global_rng(seed + 1):
                clip = self.after_normalize(clip)
        return clip, torch.from_numpy(got)

    def decoded_video(self, path: str, info: VideoInfo, size: tuple[int, int]) -> DecodedVideo:
        """The frames of every clip of the video at `path`, decoded once at `size` (kept until another video)."""
        cached = self._decoded
        if cached is None or str(cached.path) != str(path) or cached.size != tuple(size):
            v = self.view
            clips = [
                sampling.view_frame_indices(v, info.num_frames, info.fps, info.times, t, None) for t in range(v.clips)
            ]
            self._decoded = None  # a failed decode never leaves another video's frames behind
            self._decoded = cached = decode_union(self.decoder, path, clips, size, info)
        return cached

    def load_guarded(self, video_idx: int, temporal_idx: int, spatial_idx: int, rng=None, seed: int = 0):
        """`load_view` under DATA.DECODE_TIMEOUT, for a video that is not quarantined (QuarantinedVideo if it is)."""
        name = str(self.paths[video_idx])
        if name in self.quarantine:
            raise QuarantinedVideo(name, self.quarantine.path)
        # a shard sample's bytes come before the clock starts: a slow network is the storage retries' to judge
        # (VTN_STORAGE_TIMEOUT), never a reason to quarantine a good video
        source = self.video_source(video_idx)
        with decode_deadline(self.decode_timeout, name, on_hung=self.quarantine.add):
            return self.load_view(video_idx, temporal_idx, spatial_idx, rng, seed, source)

    def _failed(self, error: VideoDecodeError) -> None:
        """Log a video that failed once (a quarantined one once per process), and quarantine one that was too slow."""
        if isinstance(error, DecodeTimeout):
            where = self.quarantine.add(error.name, f"decoding took longer than {error.seconds:g} s")
            kept = f"; quarantined in {where}" if where else "; not decoded again by this process"
            logger.warning("Abandoned a video that decodes too slowly (%s split): %s%s", self.split, error, kept)
        elif isinstance(error, QuarantinedVideo):
            level = logging.DEBUG if error.name in self._said else logging.WARNING
            self._said.add(error.name)
            logger.log(level, "Skipping a quarantined video (%s split): %s", self.split, error)
        else:
            logger.warning("Skipping unreadable video (%s split): %s", self.split, error)

    def refresh_quarantine(self, epoch: int) -> None:
        """Read what other processes added to the quarantine: at an epoch's first item, else every few seconds."""
        self.quarantine.refresh(force=epoch != self._epoch)
        self._epoch = epoch

    # ------------------------------------------------------------------ items
    def _item(self, clip, frame_idx, video_idx, temporal_idx, spatial_idx, ok, failures) -> dict:
        return make_item(
            "frames", clip, self.labels[video_idx], frame_idx, video_idx, temporal_idx, spatial_idx, ok, failures
        )

    def __getitem__(self, key) -> dict:
        index, epoch, draw = item_key(key)
        self.refresh_quarantine(epoch)
        video_idx, view_idx = divmod(index, self.num_views)
        temporal_idx, spatial_idx = self.view.split(view_idx)
        failures = 0
        retries = self.cfg.DATA_LOADER.NUM_RETRIES if self.split in ("train", "val") else 0
        for attempt in range(retries + 1):
            seed_seq = item_seed(self.cfg.RNG_SEED, epoch, index, attempt, draw)
            rng = np.random.default_rng(seed_seq)
            seed = int(seed_seq.generate_state(1)[0])
            try:
                clip, frame_idx = self.load_guarded(video_idx, temporal_idx, spatial_idx, rng, seed)
                return self._item(clip, frame_idx, video_idx, temporal_idx, spatial_idx, True, failures)
            except VideoDecodeError as e:
                failures += 1
                self._failed(e)
                if attempt < retries:
                    video_idx = int(rng.integers(self.num_videos))  # draw another video
        if self.split in ("train", "val"):
            raise DatasetError(
                f"{failures} videos in a row failed to decode in the {self.split} split (DATA_LOADER.NUM_RETRIES = "
                f"{retries}); the last one was {self.paths[video_idx]}. Check the dataset with tools/check_dataset.py."
            )
        frames = self.view.frames
        clip = torch.zeros(3, frames, self.crop, self.crop)
        return self._item(
            clip, torch.zeros(frames, dtype=torch.long), video_idx, temporal_idx, spatial_idx, False, failures
        )


def fill_missing(wanted: np.ndarray, frames: np.ndarray, got: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames for every wanted index: an index the stream did not have (its header overstated the length)
    takes the nearest decoded frame before it (or the first one)."""
    if len(got) == len(wanted) and np.array_equal(got, wanted):
        return frames, got
    order = np.argsort(got, kind="stable")
    got_sorted = got[order]
    pos = np.searchsorted(got_sorted, wanted, side="right") - 1
    pos = np.clip(pos, 0, len(got_sorted) - 1)
    pick = order[pos]
    return frames[pick], got[pick]
