"""What the engine, the tester and feature extraction may ask of a dataset: the `ViewDataset` base class.

Every dataset of the registry (vtn/datasets/build.py) derives from it: VideoDataset (decoded frames, the base of
kinetics, mit, ucf101, hmdb51, ssv2, folder and synthetic) and FeatureDataset (cached frame embeddings). The
engine reads these members directly; a dataset of one's own that derives from ViewDataset has them all, with
the defaults below.
"""

from typing import Optional, Union

import torch

from vtn.config.views import ViewSpec, as_view
from vtn.datasets.fingerprint import pairs_digest, relative_path


class ViewDataset(torch.utils.data.Dataset):
    """Videos cut into views (`view`, a ViewSpec): item `i` is view `i % num_views` of video `i // num_views`.

    An item (see `make_item` in video_dataset.py) is a dict of tensors:
      - the model input: `frames` float (C, T, H, W), decoded and normalised, or `embeddings` float (T, D) of
        the feature cache (vtn/engine/inputs.py says which keys a model takes);
      - `label` long (); `video_idx` long (): the video's index in `paths`; `frame_idx` long (T,): the index in
        the original video of each frame (for the position embedding);
      - `temporal_idx`, `spatial_idx` long (): which clip and which crop of the video the view is
        (`view.split`);
      - `ok` bool (): False for a validation or test video that could not be read (reported as failed, never
        scored); `decode_failures` long (): videos that failed before this item was made.
    A sampler key may be a bare index or `(index, epoch[, draw])` (see build.EpochSampler).

    Members (set by the subclass's constructor, after `super().__init__`):
      - `cfg`, `split` ("train", "val" or "test"), `view`, and `protocol` (the view's protocol name);
      - `paths`, `labels`: the videos that can be read, in item order; `class_names` (one per class, or None)
        and `class_groups` ({group name: class ids}, which the test report summarises, e.g. the synthetic
        dataset's order-dependent classes);
      - `missing`, `missing_labels`: listed videos left out because they are not on disk (counted as listed
        and missing, never decoded); `num_listed` counts both;
      - `data_root`: the folder that paths are reported relative to (the dataset fingerprint);
      - `init_advice`: what a training run that starts from scratch is told ("" for nothing);
      - `decode_once`: the views of a video read one decode of it (DATA.DECODE_VIDEO_ONCE), so the loader keeps
        them on one process and one worker (build.VideoBatchSampler);
      - `items_alone`: set by the loader when each batch is one item: a loader worker then makes the item's input
        in shared memory, which reaches the main process without a copy (build.collate_items);
      - `worker_slots`: set by the loader when it has workers (build.WorkerSlots): `__getitems__` notes in it the
        video each worker is given, so that a worker that dies can be named with its video;
      - `is_missing(video_idx)`, `batch_sampler(...)`, `check_model(model)` and `fingerprint()`, see below.
    """

    def __init__(self, cfg, split: str, view: Union[ViewSpec, str]):
        """`view`: a ViewSpec, or a protocol name (read as vtn.config.view_spec reads it under `cfg`)."""
        self.cfg = cfg
        self.split = split
        self.view = as_view(cfg, view)
        self.paths: list[str] = []
        self.labels: list[int] = []
        self.missing: list[str] = []
        self.missing_labels: list[int] = []
        self.class_names: Optional[list[str]] = None
        self.class_groups: dict[str, list[int]] = {}
        self.init_advice = ""
        self.decode_once = False
        self.items_alone = False
        self.worker_slots = None
        self.data_root = cfg.DATA.PATH_PREFIX or cfg.DATA.PATH_TO_DATA_DIR

    @property
    def protocol(self) -> str:
        """The view's protocol ("train_clip", "single_view", "multi_view" or "full_video")."""
        return self.view.protocol

    @property
    def num_videos(self) -> int:
        """Videos that items are made of (`paths`)."""
        return len(self.paths)

    @property
    def num_views(self) -> int:
        """Views per video (the view's clips x crops)."""
        return self.view.views

    @property
    def num_listed(self) -> int:
        """Videos the split lists: those of `paths` and the `missing` ones."""
        return len(self.paths) + len(self.missing)

    def __len__(self) -> int:
        return self.num_videos * self.num_views

    def is_missing(self, video_idx: int) -> bool:
        """Whether video `video_idx` of `paths` has gone (asked of the videos that were not scored, to report
        them as missing rather than as failed to decode). By default none has."""
        return False

    def batch_sampler(self, batch: int, rank: int, world: int, workers: int, train: bool):
        """A batch sampler of the dataset's own for this process's loader (`set_epoch(epoch, start_batch)`, batches
        of keys), or None for build_loader's samplers. The shards dataset streams its training epochs this way."""
        return None

    def check_model(self, model) -> None:
        """Called by the engine before a run with the bare model: a dataset whose items need a particular model
        (e.g. embeddings of one backbone) raises a clear error here. By default any model fits."""

    def fingerprint(self) -> str:
        """12 hex digits of sha1 over the (path relative to `data_root`, label) pairs in item order: the processes
        of a run compare it at start-up (vtn/engine/agreement.py), so a machine whose copy lacks, adds, relabels or
        reorders videos is found before training."""
        return pairs_digest(
            f"{relative_path(str(p), self.data_root)}\t{int(label)}" for p, label in zip(self.paths, self.labels)
        )

    def video_of(self, key) -> int:
        """The index in `paths` of the video of sampler key `key` (a bare index or a tuple that starts with one)."""
        index = key[0] if isinstance(key, (tuple, list)) else key
        return int(index) // self.num_views

    def __getitems__(self, keys) -> list:
        """The items of a batch of keys (DataLoader's batched fetch), each video noted in `worker_slots` before it is
        read, so the main process can name the video of a worker that dies on it."""
        items = []
        for key in keys:
            if self.worker_slots is not None:
                self.worker_slots.record(self.video_of(key))
            items.append(self[key])
        return items
