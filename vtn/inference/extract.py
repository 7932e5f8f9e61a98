"""Feature extraction (paper sec. 3, inference method 3): run the backbone once over each video of each split
and write the frame embeddings into DATA.FEATURES_DIR (layout: vtn/datasets/features.py).

Which frames: DATA.FEATURES_FPS frames per second when > 0 (a value >= the video's fps keeps every frame),
else TEST.FULL_VIDEO_FRAMES spread over the whole video. Decoding, resizing, center crop, normalisation and
the chunked backbone pass are those of whole-video streaming (vtn/inference/streaming.py), so cached embeddings
are exactly what the end-to-end test transform gives.

Which videos: the split lists of DATA.FEATURES_SOURCE, or of TRAIN.DATASET (train, val) and TEST.DATASET
(test) when it is empty.

Where the work runs: `VideoFrames`, an iterable dataset, probes, decodes, resizes and center-crops each video
in DataLoader workers (DATA_LOADER.NUM_WORKERS; 0: in the main process) and hands over pieces of at most
VTN.BACKBONE_CHUNK_SIZE uint8 frames (a quarter of the bytes of normalised floats through shared memory and
onto the GPU); the main process normalises each piece on the device and runs the backbone on it, under
mixed precision on CUDA when TRAIN.MIXED_PRECISION (autocast_for; fp32 on the CPU). Memory stays bounded by a
few pieces per worker however long the videos are. A video's pieces are cut at the same frames whatever the
number of workers or processes, so the cache does not depend on them.

Sharding: under torchrun or NUM_GPUS > 1 / NUM_SHARDS > 1 (tools/extract_features.py launches with
launch_job), the processes first share out the check of which videos are already cached, then split the
videos still to do (rank::world of them, in the split's order); each writes its own feature files, and rank 0
writes the split index in the split's order from every process's entries (gathered) before any process goes on.

Storage: FEATURES.DTYPE float32, or float16 for half the disk (the features dataset reads it back as float32);
the dtype is recorded in the manifest.

Resumable: a video whose file is already there (and readable) is skipped without being decoded; each file is
written atomically (temporary file, then rename), so an interrupted run leaves whole files only and a second
run does the rest. The split index is written when the split is done. A video that cannot be decoded is
logged, counted, recorded in the index with its error, and retried by the next run. The manifest records what
made the cache; extracting into a folder made with other settings is an error rather than a mix.
"""

import functools
import logging
import os
import time
from collections.abc import Iterator, Sequence
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist

from vtn.config import dump_config, view_spec
from vtn.datasets import transforms
from vtn.datasets.build import DATASET_REGISTRY, SPLITS
from vtn.datasets.features import (
    DTYPES,
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
from vtn.engine.evaluator import autocast_for
from vtn.inference.streaming import DEFAULT_CHUNK, frame_indices
from vtn.models import build_model
from vtn.utils.files import check_writable_dir, remove_temporaries, write_json_atomic
from vtn.utils.logging import Progress, setup_logging
from vtn.utils.rng import seed_everything
from vtn.video.decoder import VideoDecodeError, build_decoder

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
    "dtype",
)
# The value of an identity key that a manifest written before the key existed stands for.
IDENTITY_DEFAULTS = {"dtype": "float32"}


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
        "dtype": cfg.FEATURES.DTYPE,
        # how the backbone ran (not an identity key: a resumed run may run it otherwise)
        "mixed_precision": cfg.TRAIN.AMP_DTYPE if (cfg.TRAIN.MIXED_PRECISION and cfg.NUM_GPUS > 0) else "",
        "data_dir": d.PATH_TO_DATA_DIR,
        "rng_seed": cfg.RNG_SEED,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def check_or_write_manifest(features_dir: str, manifest: dict) -> None:
    """Write the manifest of a new cache; for an existing one, insist that it was made the same way."""
    if os.path.isfile(manifest_path(features_dir)):
        old = read_manifest(features_dir)
        diff = [
            f"{k}: cache {old.get(k, IDENTITY_DEFAULTS.get(k))!r} vs now {manifest.get(k)!r}"
            for k in IDENTITY_KEYS
            if old.get(k, IDENTITY_DEFAULTS.get(k)) != manifest.get(k)
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


class VideoFrames(torch.utils.data.IterableDataset):
    """The decoding side of extraction, run in DataLoader workers: for each `(position, path)` of `videos`, the
    pieces `{"pos", "frames": uint8 (t, crop, crop, 3), "frame_idx": int64 (t,)}` of at most `chunk` sampled
    frames (decoded, resized to DATA.TEST_SCALE, center-cropped to DATA.TEST_CROP_SIZE), then `{"pos", "info"}`
    (the probe: fps, frame count, times) when the video is done, or `{"pos", "error"}` when it cannot be decoded
    (pieces already sent for it are then dropped). Worker k of n takes the videos k, k + n, ..."""

    def __init__(self, cfg, videos: Sequence[tuple[int, str]], chunk: int):
        self.cfg = cfg
        self.videos = list(videos)
        self.chunk = chunk
        self.sampling = sampling_of(cfg)

    def __iter__(self) -> Iterator[dict]:
        worker = torch.utils.data.get_worker_info()
        mine = self.videos if worker is None else self.videos[worker.id :: worker.num_workers]
        decoder = build_decoder(self.cfg)
        for pos, path in mine:
            yield from self.pieces(decoder, pos, path)

    def indices(self, info) -> np.ndarray:
        """The frames to decode from a probed video (sorted, each once); a subclass may sample otherwise."""
        return np.unique(frame_indices(info, self.sampling.get("frames", 0), self.sampling.get("fps", 0.0)))

    def pieces(self, decoder, pos: int, path: str) -> Iterator[dict]:
        d = self.cfg.DATA
        sent = 0
        try:
            info = decoder.probe(path)
            indices = self.indices(info)
            params = transforms.test_params(info.width, info.height, d.TEST_SCALE, d.TEST_CROP_SIZE, 0, 1)
            for frames, got in decoder.iter_frames(
                path, indices, size=(params.width, params.height), chunk=self.chunk, info=info
            ):
                crop = transforms.apply_crop_flip(frames, params)
                yield {"pos": pos, "frames": torch.from_numpy(crop), "frame_idx": torch.from_numpy(got)}
                sent += 1
            if not sent:
                raise VideoDecodeError(f"{path}: no frame could be decoded")
        except VideoDecodeError as e:
            yield {"pos": pos, "error": str(e)}
            return
        yield {"pos": pos, "info": info}


def normalize_frames(frames: torch.Tensor, mean: Sequence[float], std: Sequence[float], device) -> torch.Tensor:
    """uint8 (t, H, W, 3) -> float32 (t, 3, H, W) on `device`: (x / 255 - mean) / std, the arithmetic of
    transforms.to_normalized_tensor, after the copy (4x fewer bytes to move than floats)."""
    x = frames.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return x.sub_(m).div_(s).contiguous()


def all_gather_objects(obj) -> list:
    """Every process's `obj`, in rank order (`[obj]` without a process group)."""
    if not du.is_initialized() or du.get_world_size() == 1:
        return [obj]
    out = [None] * du.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def frames_loader(
    cfg,
    videos: Sequence[tuple[int, str]],
    chunk: int,
    device: torch.device,
    dataset: Optional[VideoFrames] = None,
):
    """The pieces of `videos` from DATA_LOADER.NUM_WORKERS workers (`dataset`: a VideoFrames of them made
    otherwise, e.g. tools/predict.py's). The workers start from a fork server, not by
    forking this process: after a first loader's threads (its queue feeders), a worker forked for the next split
    can deadlock in the interpreter's after-fork cleanup (seen with 2 gloo processes, one split after another).
    The fork server imports this module once (a single-threaded process); each worker then starts in a fork."""
    workers = cfg.DATA_LOADER.NUM_WORKERS
    context = None
    if workers > 0:
        context = torch.multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])  # no effect once this process's fork server runs
    return torch.utils.data.DataLoader(
        VideoFrames(cfg, videos, chunk) if dataset is None else dataset,
        batch_size=None,  # the pieces as they are
        num_workers=workers,
        pin_memory=cfg.DATA_LOADER.PIN_MEMORY and device.type == "cuda",
        multiprocessing_context=context,
    )


def _log_progress(progress: Progress, split: str, cached: int) -> None:
    """The progress line of a split: videos done of this process's share, seconds per video, ETA."""
    world = du.get_world_size()
    share = f" (this process's share of {world})" if world > 1 else ""
    logger.info(
        "extract %s: %d/%d videos%s, %d already cached, %.2f s/video, eta %s",
        split,
        progress.done,
        progress.total,
        share,
        cached,
        progress.per_item,
        progress.eta,
    )


def _embed_videos(cfg, model, device, split: str, todo: list[tuple[int, str]], files: dict[int, str], cached: int):
    """Extract the videos `todo` (position, path) into their files; returns {position: index entry fields}."""
    results: dict[int, dict] = {}
    if not todo:
        return results
    d = cfg.DATA
    features_dir = d.FEATURES_DIR
    dtype = DTYPES[cfg.FEATURES.DTYPE]
    chunk = cfg.VTN.BACKBONE_CHUNK_SIZE or DEFAULT_CHUNK
    progress = Progress(len(todo), cfg.LOG_PERIOD, cfg.LOG_SECONDS)
    paths = dict(todo)
    open_videos: dict[int, tuple[list, list]] = {}  # the embedded pieces of the videos under way
    for item in frames_loader(cfg, todo, chunk, device):
        pos = int(item["pos"])
        if "frames" in item:
            clip = normalize_frames(item["frames"], d.MEAN, d.STD, device)
            with torch.no_grad(), autocast_for(cfg):
                emb = model.embed_frames(clip)
            parts = open_videos.setdefault(pos, ([], []))
            parts[0].append(emb.float())
            parts[1].append(item["frame_idx"].long().cpu())
            continue
        parts = open_videos.pop(pos, ([], []))
        path = paths[pos]
        if "error" in item:
            logger.warning("Skipping unreadable video (%s split): %s", split, item["error"])
            results[pos] = {"file": None, "error": item["error"], "missing": not os.path.exists(path)}
        else:
            info = item["info"]
            emb, idx = torch.cat(parts[0]).to(dtype).cpu(), torch.cat(parts[1])
            if not torch.isfinite(emb).all():
                error = (
                    f"{path}: the embeddings are not finite in FEATURES.DTYPE {cfg.FEATURES.DTYPE} (out of its "
                    "range, or of mixed precision's: try FEATURES.DTYPE float32, TRAIN.MIXED_PRECISION False)"
                )
                logger.warning("Skipping video (%s split): %s", split, error)
                results[pos] = {"file": None, "error": error, "missing": False}
            else:
                record = {
                    "embeddings": emb,
                    "frame_idx": idx,
                    "fps": float(info.fps),
                    "num_frames": int(info.num_frames),
                    "path": path,
                }
                entry = {"fps": float(info.fps), "num_frames": int(info.num_frames), "num_cached": int(idx.numel())}
                if info.times is not None:  # unevenly spaced frames: the timeline the samplers need
                    record["times"] = torch.tensor(info.times, dtype=torch.float64)
                    entry["times"] = list(info.times)
                atomic_save(record, os.path.join(features_dir, files[pos]))
                results[pos] = entry
        if progress.step():
            _log_progress(progress, split, cached)
    return results


def extract_split(cfg, model, split: str, device: Optional[torch.device] = None) -> dict[str, int]:
    """Extract one split (this process's share of it); returns the counts of the whole split {videos, extracted,
    cached, failed}. Every process of the job calls it; rank 0 writes the index."""
    features_dir = cfg.DATA.FEATURES_DIR
    device = device or du.device_for(cfg)
    rank, world = du.get_rank(), du.get_world_size()
    name = source_dataset(cfg, split)
    dataset = DATASET_REGISTRY.get(name)(cfg, split, view_spec(cfg, "full_video"))
    folder = os.path.join(features_dir, split)
    if rank == 0:
        os.makedirs(folder, exist_ok=True)
        remove_temporaries(folder)  # before any process writes there
    du.barrier()
    paths, labels = list(dataset.paths), list(dataset.labels)
    files = {i: feature_file_name(split, p, cfg.DATA.PATH_TO_DATA_DIR) for i, p in enumerate(paths)}
    # Which videos are done: each process reads its share of the files (without decoding a video), and all learn
    # the answer, so that the videos still to do are shared out evenly.
    checked = {}
    for i in range(rank, len(paths), world):
        done = _cached_entry(os.path.join(features_dir, files[i]))
        if done is not None:
            checked[i] = done
    cached: dict[int, dict] = {}
    for part in all_gather_objects(checked):
        cached.update(part)
    todo = [i for i in range(len(paths)) if i not in cached]
    mine = [(i, paths[i]) for i in todo[rank::world]]
    results: dict[int, dict] = {}
    for part in all_gather_objects(_embed_videos(cfg, model, device, split, mine, files, len(cached))):
        results.update(part)
    entries = []
    for i, (path, label) in enumerate(zip(paths, labels)):
        entry = {"path": path, "label": int(label), "file": files[i]}
        entry.update(cached[i] if i in cached else results[i])
        entries.append(entry)
    for path, label in zip(dataset.missing, dataset.missing_labels):
        entries.append({"path": path, "label": int(label), "file": None, "error": "not on disk", "missing": True})
    failed = sum(1 for e in entries if not e["file"])
    counts = {
        "videos": dataset.num_listed,
        "extracted": len(entries) - failed - len(cached),
        "cached": len(cached),
        "failed": failed,
    }
    if rank == 0:
        index = {
            "split": split,
            "source_dataset": name,
            "class_names": dataset.class_names,
            "class_groups": dataset.class_groups,
            "videos": entries,
        }
        write_json_atomic(index, split_index_path(features_dir, split))
    du.barrier()  # the index is there before any process goes on
    return counts


def build_extraction_model(cfg, checkpoint: str = ""):
    """The config's model (its backbone initialised exactly as a training run of the same config would, from
    RNG_SEED), or a checkpoint's weights when one is named."""
    seed_everything(cfg.RNG_SEED)
    model = build_model(cfg)
    if checkpoint:
        load_weights(model, to_vtn_state(load_checkpoint_file(checkpoint), checkpoint, cfg), checkpoint)
    return model.eval()


def check_features_dir(cfg) -> None:
    """DATA.FEATURES_DIR is set and files can be written in it (made when missing): one line, before any work."""
    if not cfg.DATA.FEATURES_DIR:
        raise FeatureCacheError("DATA.FEATURES_DIR is empty: set the folder to write the feature cache into")
    if du.is_master():
        check_writable_dir(cfg.DATA.FEATURES_DIR, "DATA.FEATURES_DIR")


def extract_features(
    cfg, splits: Sequence[str] = SPLITS, checkpoint: str = "", model=None
) -> dict[str, dict[str, int]]:
    """Extract every split of `splits` into DATA.FEATURES_DIR; returns the counts of each split. In a job of
    several processes, every process calls it (each extracts its share; see the module docstring)."""
    features_dir = cfg.DATA.FEATURES_DIR
    check_features_dir(cfg)
    for split in splits:
        if split not in SPLITS:
            raise FeatureCacheError(f"unknown split {split!r}: expected some of {', '.join(SPLITS)}")
    if model is None:
        model = build_extraction_model(cfg, checkpoint)
    device = du.device_for(cfg)
    model = unwrap(model).eval().to(device)
    error = None
    if du.is_master():  # one process writes (or checks) the manifest; all stop on its error
        try:
            check_or_write_manifest(features_dir, build_manifest(cfg, model, checkpoint))
            dump_config(cfg, os.path.join(features_dir, "config.yaml"))
        except FeatureCacheError as e:
            error = str(e)
    error = du.broadcast_object(error)
    if error:
        raise FeatureCacheError(error)
    if du.get_world_size() > 1:
        logger.info("Extraction: %d processes (this is rank %d)", du.get_world_size(), du.get_rank())
    results = {}
    for split in splits:
        counts = extract_split(cfg, model, split, device)
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


def extraction_job(cfg, splits: Sequence[str] = SPLITS, checkpoint: str = "") -> None:
    """What each process of tools/extract_features.py runs (through launch_job): extract, and print the summary
    (rank 0)."""
    master = du.is_master()
    check_features_dir(cfg)  # before its log file is opened there
    setup_logging(cfg.DATA.FEATURES_DIR, master)
    results = extract_features(cfg, splits, checkpoint)
    if master:
        for split, c in results.items():
            print(
                f"{split}: {c['videos']} videos: {c['extracted']} extracted, {c['cached']} already cached, "
                f"{c['failed']} failed"
            )
        print(f"feature cache: {cfg.DATA.FEATURES_DIR}")


def extraction_job_for(splits: Sequence[str], checkpoint: str = ""):
    """`extraction_job` with its arguments bound: a picklable `func(cfg)` for launch_job's spawned processes."""
    return functools.partial(extraction_job, splits=list(splits), checkpoint=checkpoint)
