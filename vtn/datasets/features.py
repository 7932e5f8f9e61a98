"""The feature cache (paper sec. 3, inference method 3): frame embeddings extracted once, then trained on and
tested with the temporal encoder and head only (Table 2d: a frozen backbone).

`tools/extract_features.py` writes the cache (see vtn/inference/extract.py); the `features` dataset reads it.

Layout of DATA.FEATURES_DIR:

    manifest.json           what produced the cache: backbone (name, kwargs, weights and their fingerprint),
                            feature dim, frame sampling (DATA.FEATURES_FPS or TEST.FULL_VIDEO_FRAMES),
                            the test transform (scale, crop, mean, std) and the source dataset
    {train,val,test}.json   the split's videos in the source's order: path, label, fps, num_frames and the
                            feature file (null with the error for a video that could not be decoded), plus
                            the class names and class groups of the source dataset
    {train,val,test}/<video name>-<hash of its path>.pt
                            one file per video: {"embeddings": (T, D) in the manifest's "dtype" (FEATURES.DTYPE:
                            float32, or float16 for half the disk; read back as float32), "frame_idx": int64 (T,)
                            sorted frame indices in the video, "fps", "num_frames", "path", and "times" float64
                            (frames,) for unevenly spaced frames}; torch.load(weights_only)

Items are those of the dataset contract (contract.py) with `embeddings (T, D)` in place of `frames (C, T, H, W)`;
the engine passes whichever input a batch carries to the model by name (vtn/engine/inputs.py), and the model then
runs only `forward_embeddings`. The samplers are the same as for videos (`sampling.view_frame_indices` of the
view), on the frame indices of the video:
a training clip is a random footprint of DATA.TEMPORAL_FOOTPRINT seconds at the video's fps subsampled to
DATA.NUM_FRAMES; multi-view is TEST.NUM_ENSEMBLE_VIEWS such clips; full video is TEST.FULL_VIDEO_FRAMES
spread over the video. Each wanted frame takes the cached frame nearest to it, so a cache of every frame
reproduces the video dataset's clips exactly. Spatial crops do not apply (the embeddings are of the center
crop at extraction): multi-view has one crop per clip, whatever TEST.NUM_SPATIAL_CROPS says (the dataset's
view is the one-crop view, `ViewSpec.one_crop`).

Bad videos: a video that failed at extraction is left out of the training split (logged once) and reported
as failed (`ok` False) in validation and testing; a feature file that cannot be read is treated like an
undecodable video (logged, counted, replaced in training).
"""

import hashlib
import json
import logging
import os
import re
from typing import Optional, Union

import numpy as np
import torch

from vtn.config.views import ViewSpec
from vtn.datasets import sampling
from vtn.datasets.annotations import check_label_range
from vtn.datasets.build import DATASET_REGISTRY
from vtn.datasets.contract import ViewDataset
from vtn.datasets.video_dataset import item_key, item_seed, make_item
from vtn.utils.errors import DatasetError
from vtn.utils.torch_files import load_torch_file

logger = logging.getLogger(__name__)

FORMAT = "vtn-feature-cache-1"
MANIFEST = "manifest.json"
NAME = "features"
# FEATURES.DTYPE: the storage dtype of the embeddings (a manifest without "dtype" is float32, as before the key)
DTYPES = {"float32": torch.float32, "float16": torch.float16}


class FeatureCacheError(DatasetError):
    """A feature cache that is missing, unfinished, unreadable or does not fit the model or config."""


# ----------------------------------------------------------------------------- the layout
def manifest_path(features_dir: str) -> str:
    return os.path.join(features_dir, MANIFEST)


def split_index_path(features_dir: str, split: str) -> str:
    return os.path.join(features_dir, f"{split}.json")


def feature_file_name(split: str, path: str, data_dir: str = "") -> str:
    """`<split>/<stem>-<12 hex of sha1(path)>.pt`, relative to the cache folder. The path is hashed relative to
    the data folder when it lies inside it, so that a moved dataset keeps its cache."""
    key = path
    if data_dir:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(data_dir))
        if not rel.startswith(".."):
            key = rel
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.splitext(os.path.basename(path))[0])[:80] or "video"
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]
    return f"{split}/{stem}-{digest}.pt"


def read_json(path: str, what: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise FeatureCacheError(f"{what} {path} cannot be read ({e.__class__.__name__}: {e})") from e


def read_manifest(features_dir: str) -> dict:
    if not features_dir:
        raise FeatureCacheError("DATA.FEATURES_DIR is empty: set it to the folder written by tools/extract_features.py")
    path = manifest_path(features_dir)
    try:
        manifest = read_json(path, "feature-cache manifest")
    except FileNotFoundError:
        raise FeatureCacheError(
            f"DATA.FEATURES_DIR = {features_dir!r} holds no feature cache ({MANIFEST} is missing). Extract it "
            "first: python tools/extract_features.py --cfg FILE (with the same config)"
        ) from None
    if manifest.get("format") != FORMAT:
        raise FeatureCacheError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def load_feature_file(path: str, mmap: bool = False) -> dict:
    """One video's cached features; FeatureCacheError names the file when it is missing or unreadable."""
    if not os.path.isfile(path):
        raise FeatureCacheError(f"feature file {path} does not exist")
    data = load_torch_file(path, "feature file", FeatureCacheError, mmap=mmap)
    if not isinstance(data, dict) or not {"embeddings", "frame_idx"} <= set(data):
        raise FeatureCacheError(f"feature file {path} holds no 'embeddings' and 'frame_idx'")
    emb, idx = data["embeddings"], data["frame_idx"]
    if emb.dim() != 2 or idx.dim() != 1 or emb.shape[0] != idx.shape[0] or emb.shape[0] == 0:
        raise FeatureCacheError(
            f"feature file {path}: embeddings {tuple(emb.shape)} and frame_idx {tuple(idx.shape)} do not form "
            "(T, D) and (T,) with T >= 1"
        )
    return data


def backbone_fingerprint(backbone: torch.nn.Module) -> str:
    """sha1 of the backbone's state dict (names, shapes, dtypes and values): which weights made a cache."""
    h = hashlib.sha1()
    for name, t in sorted(backbone.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def nearest_positions(cached: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions in the sorted `cached` frame indices of the frame nearest to each wanted index (ties: the
    earlier frame)."""
    right = np.clip(np.searchsorted(cached, wanted, side="left"), 0, len(cached) - 1)
    left = np.clip(right - 1, 0, len(cached) - 1)
    take_left = np.abs(wanted - cached[left]) <= np.abs(cached[right] - wanted)
    return np.where(take_left, left, right)


# ----------------------------------------------------------------------------- the dataset
class FeatureDataset(ViewDataset):
    """Clips of cached frame embeddings; the keys, seeding and bad-input rules of VideoDataset. `view`: a ViewSpec
    or a protocol name; the dataset's view has one crop per clip (the embeddings are of the center crop)."""

    def __init__(self, cfg, split: str, view: Union[ViewSpec, str]):
        super().__init__(cfg, split, view)
        asked = self.view
        self.view = asked.one_crop()
        self.features_dir = cfg.DATA.FEATURES_DIR
        self.manifest = read_manifest(self.features_dir)
        index_file = split_index_path(self.features_dir, split)
        try:
            index = read_json(index_file, "feature-cache index")
        except FileNotFoundError:
            raise FeatureCacheError(
                f"the feature cache {self.features_dir} has no {split} split ({index_file} is missing): its "
                f"extraction did not finish. Run tools/extract_features.py again (it resumes)."
            ) from None
        videos = index["videos"]
        failed = [v for v in videos if not v.get("file")]
        if split == "train" and failed:
            logger.warning(
                "%d videos of the train split have no features (they failed at extraction, e.g. %s: %s) "
                "and are left out",
                len(failed),
                failed[0]["path"],
                failed[0].get("error", "?"),
            )
            videos = [v for v in videos if v.get("file")]
        self.videos = videos
        self.paths = [v["path"] for v in videos]
        self.labels = [int(v["label"]) for v in videos]
        self.class_names = index.get("class_names")
        self.class_groups = {k: list(v) for k, v in (index.get("class_groups") or {}).items()}
        self.feature_dim = int(self.manifest["feature_dim"])
        check_label_range(self.paths, self.labels, cfg.MODEL.NUM_CLASSES, split)
        if asked.crops != 1:
            logger.info(
                "Feature cache: %s uses %d clips x 1 crop (TEST.NUM_SPATIAL_CROPS = %d does not apply to cached "
                "embeddings)",
                asked.protocol,
                self.view.clips,
                asked.crops,
            )
        self._warn_if_sparse()
        m = self.manifest
        random_backbone = not (m.get("pretrained") or m.get("pretrained_path") or m.get("checkpoint"))
        self.init_advice = (
            f"the feature cache {self.features_dir} was made with a randomly initialised backbone (its manifest: no "
            "pretrained weights, no checkpoint): the Longformer and the head learn from random features, and "
            f"accuracy may stay near chance ({100 / max(cfg.MODEL.NUM_CLASSES, 1):.1f}%). Extract the cache with "
            "--checkpoint of a trained model (or VTN.PRETRAINED True) for features that carry the classes"
            if random_backbone
            else ""
        )

    def _warn_if_sparse(self) -> None:
        fps = float(self.manifest["sampling"].get("fps") or 0.0)
        view = self.view
        clip_rate = view.frames / view.seconds if view.seconds > 0 else 0.0
        if not view.whole_video and 0 < fps < clip_rate:
            logger.warning(
                "The feature cache holds %.3g frames per second but clips sample %.3g (DATA.NUM_FRAMES %d over "
                "%.3g s): clips will repeat cached frames; extract with DATA.FEATURES_FPS >= %.3g to avoid it",
                fps,
                clip_rate,
                view.frames,
                view.seconds,
                clip_rate,
            )

    def is_missing(self, video_idx: int) -> bool:
        """Whether the video was listed but not on disk when the cache was extracted."""
        return bool(self.videos[video_idx].get("missing"))

    def check_model(self, model) -> None:
        """Fail early and clearly when the model's backbone cannot have produced these embeddings (`model`: the
        bare VTN, not a DistributedDataParallel wrapper)."""
        m = model
        dim = getattr(getattr(m, "backbone", None), "feature_dim", None)
        made_by = f"backbone {self.manifest['backbone']!r} {self.manifest.get('backbone_kwargs') or {}}"
        if dim is not None and int(dim) != self.feature_dim:
            raise FeatureCacheError(
                f"the feature cache {self.features_dir} holds {self.feature_dim}-d embeddings of {made_by}, but the "
                f"model's backbone VTN.BACKBONE = {self.cfg.VTN.BACKBONE!r} gives {dim}-d features. Extract a cache "
                "with this config (tools/extract_features.py, another DATA.FEATURES_DIR) or use the config that "
                "made this one."
            )
        kwargs = dict(self.cfg.VTN.BACKBONE_KWARGS)
        if self.manifest["backbone"] != self.cfg.VTN.BACKBONE or self.manifest.get("backbone_kwargs", {}) != kwargs:
            logger.warning(
                "The feature cache %s was made by %s; the model is %r %s: the temporal encoder trains on "
                "features of another backbone",
                self.features_dir,
                made_by,
                self.cfg.VTN.BACKBONE,
                kwargs,
            )
        if hasattr(m, "backbone") and backbone_fingerprint(m.backbone) != self.manifest.get("backbone_fingerprint"):
            logger.warning(
                "The model's backbone weights differ from those that made the feature cache %s: training and "
                "testing on the cache are consistent, but this model's end-to-end predictions on videos will not "
                "match them",
                self.features_dir,
            )

    # ------------------------------------------------------------------ one view
    def load_view(
        self, video_idx: int, temporal_idx: int, rng: Optional[np.random.Generator] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings (T, D) and the frame indices (T,) of one view."""
        video = self.videos[video_idx]
        if not video.get("file"):
            raise FeatureCacheError(f"{video['path']}: no features (extraction failed: {video.get('error', '?')})")
        data = load_feature_file(os.path.join(self.features_dir, video["file"]))
        emb, idx = data["embeddings"], data["frame_idx"].long()
        if emb.shape[1] != self.feature_dim:
            raise FeatureCacheError(
                f"feature file {video['file']} holds {emb.shape[1]}-d embeddings; the manifest says {self.feature_dim}"
            )
        wanted = sampling.view_frame_indices(
            self.view, int(video["num_frames"]), float(video["fps"]), video.get("times"), temporal_idx, rng
        )
        pos = torch.from_numpy(nearest_positions(idx.numpy(), wanted))
        return emb[pos].float(), idx[pos]  # float16 storage (FEATURES.DTYPE) is read back as float32

    def _item(self, emb, frame_idx, video_idx, temporal_idx, ok, failures) -> dict:
        return make_item("embeddings", emb, self.labels[video_idx], frame_idx, video_idx, temporal_idx, 0, ok, failures)

    def __getitem__(self, key) -> dict:
        index, epoch, draw = item_key(key)
        video_idx, view_idx = divmod(index, self.num_views)
        temporal_idx, _ = self.view.split(view_idx)  # one crop: the view index is the clip's
        failures = 0
        retries = self.cfg.DATA_LOADER.NUM_RETRIES if self.split == "train" else 0
        for attempt in range(retries + 1):
            rng = np.random.default_rng(item_seed(self.cfg.RNG_SEED, epoch, index, attempt, draw))
            try:
                emb, frame_idx = self.load_view(video_idx, temporal_idx, rng)
                return self._item(emb, frame_idx, video_idx, temporal_idx, True, failures)
            except FeatureCacheError as e:
                failures += 1
                logger.warning("Skipping unusable cached video (%s split): %s", self.split, e)
                if attempt < retries:
                    video_idx = int(rng.integers(self.num_videos))
        if self.split == "train":
            raise FeatureCacheError(
                f"{failures} cached videos in a row could not be read in the train split (DATA_LOADER.NUM_RETRIES = "
                f"{retries}); the last one was {self.paths[video_idx]}. Run tools/extract_features.py again."
            )
        return self._item(
            torch.zeros(self.view.frames, self.feature_dim),
            torch.zeros(self.view.frames, dtype=torch.long),
            video_idx,
            temporal_idx,
            False,
            failures,
        )


@DATASET_REGISTRY.register_as(NAME)
def build_features(cfg, split: str, view: ViewSpec) -> FeatureDataset:
    return FeatureDataset(cfg, split, view)
