"""Feature extraction (paper sec. 3, inference method 3): run the backbone once over each video of each split
and write the frame embeddings into DATA.FEATURES_DIR (layout: vtn/datasets/features.py).

Which frames: DATA.FEATURES_FPS frames per second when > 0 (a value >= the video's fps keeps every frame),
else TEST.FULL_VIDEO_FRAMES spread over the whole video. Decoding, resizing, center crop, normalisation and
the chunked backbone pass are those of whole-video streaming (VideoPredictor.embed), so cached embeddings
are exactly what the end-to-end test transform gives.

Which videos: the split lists of DATA.FEATURES_SOURCE, or of TRAIN.DATASET (train, val) and TEST.DATASET
(test) when it is empty.

Resumable: a video whose file is already there (and readable) is skipped; each file is written atomically
(temporary file, then rename), so an interrupted run leaves whole files only and a second run does the
rest. The split index is written when the split is done. A video that cannot be decoded is logged, counted,
recorded in the index with its error, and retried by the next run. The manifest records what made the cache;
extracting into a folder made with other settings is an error rather than a mix.
"""

import logging
import os
import time
from collections.abc import Sequence
from typing import Optional

import numpy as np
import torch

from vtn.config import dump_config
from vtn.datasets.build import DATASET_REGISTRY, SPLITS
from vtn.datasets.decoder import VideoDecodeError
from vtn.datasets.features import (
    FORMAT,
    NAME,
    FeatureCacheError,
    backbone_fingerprint,
    feature_file_name,
    load_feature_file,
    manifest_path,
    read_manifest,
    split_index_path,
)
from vtn.engine import distributed as du
from vtn.engine.checkpoint import atomic_save, load_checkpoint_file, load_weights
from vtn.engine.convert import to_vtn_state
from vtn.engine.distributed import unwrap
from vtn.engine.streaming import VideoPredictor, frame_indices
from vtn.models import build_model
from vtn.utils.files import remove_temporaries, write_json_atomic
from vtn.utils.logging import format_eta
from vtn.utils.rng import seed_everything

logger = logging.getLogger(__name__)

# Manifest entries that must agree for a second extraction into the same folder.
IDENTITY_KEYS = (
    "format",
    "backbone",
    "backbone_kwargs",
    "pretrained",
    "pretrained_path",
    "checkpoint",
    "backbone_fingerprint",
    "feature_dim",
    "sampling",
    "transform",
    "sources",
)


def source_dataset(cfg, split: str) -> str:
    """The registered video dataset that lists the videos of `split`."""
    name = cfg.DATA.FEATURES_SOURCE or (cfg.TRAIN.DATASET if split in ("train", "val") else cfg.TEST.DATASET)
    if name == NAME:
        key = "TRAIN.DATASET" if split in ("train", "val") else "TEST.DATASET"
        raise FeatureCacheError(
            f"{key} is 'features': set DATA.FEATURES_SOURCE to the video dataset to extract from "
            f"(one of: {', '.join(n for n in DATASET_REGISTRY.names() if n != NAME)})"
        )
    return name


def sampling_of(cfg) -> dict:
    if cfg.DATA.FEATURES_FPS > 0:
        return {"fps": float(cfg.DATA.FEATURES_FPS)}
    return {"frames": int(cfg.TEST.FULL_VIDEO_FRAMES)}


def build_manifest(cfg, model, checkpoint: str = "") -> dict:
    m = unwrap(model)
    d = cfg.DATA
    return {
        "format": FORMAT,
        "backbone": cfg.VTN.BACKBONE,
        "backbone_kwargs": dict(cfg.VTN.BACKBONE_KWARGS),
        "pretrained": bool(cfg.VTN.PRETRAINED),
        "pretrained_path": cfg.VTN.PRETRAINED_PATH,
        "checkpoint": checkpoint or "",
        "backbone_fingerprint": backbone_fingerprint(m.backbone),
        "feature_dim": int(m.backbone.feature_dim),
        "sampling": sampling_of(cfg),
        "transform": {
            "test_scale": d.TEST_SCALE,
            "test_crop_size": d.TEST_CROP_SIZE,
            "mean": list(d.MEAN),
            "std": list(d.STD),
        },
        "sources": {split: source_dataset(cfg, split) for split in SPLITS},
        "data_dir": d.PATH_TO_DATA_DIR,
        "rng_seed": cfg.RNG_SEED,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def check_or_write_manifest(features_dir: str, manifest: dict) -> None:
    """Write the manifest of a new cache; for an existing one, insist that it was made the same way."""
    if os.path.isfile(manifest_path(features_dir)):
        old = read_manifest(features_dir)
        diff = [
            f"{k}: cache {old.get(k)!r} vs now {manifest.get(k)!r}"
            for k in IDENTITY_KEYS
            if old.get(k) != manifest.get(k)
        ]
        if diff:
            raise FeatureCacheError(
                f"DATA.FEATURES_DIR = {features_dir!r} holds a feature cache made with other settings ("
                + "; ".join(diff)
                + "). Choose another DATA.FEATURES_DIR, or delete that folder to replace it."
            )
        return
    os.makedirs(features_dir, exist_ok=True)
    write_json_atomic(manifest, manifest_path(features_dir))


def _cached_entry(path: str) -> Optional[dict]:
    """fps / num_frames / length of an already written feature file, or None when it is absent or unreadable."""
    if not os.path.isfile(path):
        return None
    try:
        data = load_feature_file(path, mmap=True)
    except FeatureCacheError as e:
        logger.warning("Re-extracting an unreadable feature file: %s", e)
        return None
    entry = {
        "fps": float(data["fps"]),
        "num_frames": int(data["num_frames"]),
        "num_cached": int(data["frame_idx"].numel()),
    }
    if "times" in data:
        entry["times"] = data["times"].tolist()
    return entry


def extract_split(cfg, predictor: VideoPredictor, split: str) -> dict[str, int]:
    """Extract one split; returns the counts {videos, extracted, cached, failed}."""
    features_dir = cfg.DATA.FEATURES_DIR
    name = source_dataset(cfg, split)
    dataset = DATASET_REGISTRY.get(name)(cfg, split, "full_video")
    folder = os.path.join(features_dir, split)
    os.makedirs(folder, exist_ok=True)
    remove_temporaries(folder)
    sampling = sampling_of(cfg)
    counts = {"videos": getattr(dataset, "num_listed", len(dataset.paths)), "extracted": 0, "cached": 0, "failed": 0}
    total = len(dataset.paths)  # on disk: the missing ones are recorded as failed without a try
    entries = []
    start = time.perf_counter()
    for i, (path, label) in enumerate(zip(dataset.paths, dataset.labels)):
        rel = feature_file_name(split, path, cfg.DATA.PATH_TO_DATA_DIR)
        out = os.path.join(features_dir, rel)
        entry = {"path": path, "label": int(label), "file": rel}
        done = _cached_entry(out)
        if done is not None:
            entry.update(done)
            counts["cached"] += 1
        else:
            try:
                info = predictor.decoder.probe(path)
                indices = np.unique(frame_indices(info, sampling.get("frames", 0), sampling.get("fps", 0.0)))
                emb, idx = predictor.embed(path, indices, info)
                record = {
                    "embeddings": emb.float().cpu().clone(),
                    "frame_idx": idx.long().cpu().clone(),
                    "fps": float(info.fps),
                    "num_frames": int(info.num_frames),
                    "path": path,
                }
                entry.update(fps=float(info.fps), num_frames=int(info.num_frames), num_cached=int(idx.numel()))
                if info.times is not None:  # unevenly spaced frames: the timeline the samplers need
                    record["times"] = torch.tensor(info.times, dtype=torch.float64)
                    entry["times"] = list(info.times)
                atomic_save(record, out)
                counts["extracted"] += 1
            except VideoDecodeError as e:
                logger.warning("Skipping unreadable video (%s split): %s", split, e)
                entry.update(file=None, error=str(e), missing=not os.path.exists(path))
                counts["failed"] += 1
        entries.append(entry)
        if (i + 1) % cfg.LOG_PERIOD == 0 or i + 1 == total:
            per_video = (time.perf_counter() - start) / (i + 1)
            logger.info(
                "extract %s: %d/%d videos, %.2f s/video, eta %s",
                split,
                i + 1,
                total,
                per_video,
                format_eta(per_video * (total - i - 1)),
            )
    for path, label in zip(getattr(dataset, "missing", []), getattr(dataset, "missing_labels", [])):
        entries.append({"path": path, "label": int(label), "file": None, "error": "not on disk", "missing": True})
        counts["failed"] += 1
    index = {
        "split": split,
        "source_dataset": name,
        "class_names": dataset.class_names,
        "class_groups": getattr(dataset, "class_groups", {}) or {},
        "videos": entries,
    }
    write_json_atomic(index, split_index_path(features_dir, split))
    return counts


def build_extraction_model(cfg, checkpoint: str = ""):
    """The config's model (its backbone initialised exactly as a training run of the same config would, from
    RNG_SEED), or a checkpoint's weights when one is named."""
    seed_everything(cfg.RNG_SEED)
    model = build_model(cfg)
    if checkpoint:
        load_weights(model, to_vtn_state(load_checkpoint_file(checkpoint), checkpoint, cfg), checkpoint)
    return model.eval()


def extract_features(
    cfg, splits: Sequence[str] = SPLITS, checkpoint: str = "", model=None
) -> dict[str, dict[str, int]]:
    """Extract every split of `splits` into DATA.FEATURES_DIR; returns the counts of each split."""
    features_dir = cfg.DATA.FEATURES_DIR
    if not features_dir:
        raise FeatureCacheError("DATA.FEATURES_DIR is empty: set the folder to write the feature cache into")
    for split in splits:
        if split not in SPLITS:
            raise FeatureCacheError(f"unknown split {split!r}: expected some of {', '.join(SPLITS)}")
    if model is None:
        model = build_extraction_model(cfg, checkpoint)
    manifest = build_manifest(cfg, model, checkpoint)
    check_or_write_manifest(features_dir, manifest)
    dump_config(cfg, os.path.join(features_dir, "config.yaml"))
    predictor = VideoPredictor(cfg, model, du.device_for(cfg))
    results = {}
    for split in splits:
        counts = extract_split(cfg, predictor, split)
        results[split] = counts
        logger.info(
            "%s: %d videos: %d extracted, %d already cached, %d failed",
            split,
            counts["videos"],
            counts["extracted"],
            counts["cached"],
            counts["failed"],
        )
    return results
