"""A generated video dataset in the Kinetics layout, used by the tests, the demo and the benchmarks.

Six classes. Four come in pairs that only the order of frames tells apart: in a pair, a video of one class
is a video of the other played backwards, so a model that ignores order cannot separate them.

    square_growing / square_shrinking       a square's side cycles small -> large (or back) every 2.5-4 s
    disk_brightening / disk_dimming         a disk fades in from the background (or out) every 2.5-4 s
    triangle, stripes                       appearance only: a jittering triangle, a striped patch

The changes repeat as a sawtooth (SYNTHETIC.CYCLE_RANGE seconds per cycle), so every clip of a few seconds
shows the direction, whatever the length of the video; or, with CYCLE_RANGE [0, 0], run as one ramp over the
whole video, which a small model learns much faster (the mean change of a clip then gives the direction; on a
sawtooth only the sign of the small steps does, the reset undoing the ramp). Size and brightness are seen by
any backbone (a CNN's global pooling keeps them, where it would lose an object's position), and a horizontal
flip (DATA.RANDOM_FLIP) changes neither.

Object colours, sizes, positions, backgrounds (a random colour with static blobs as distractors) and frame
noise are drawn per video, so neither colour nor background gives a class away. Videos have varied frame
rates (SYNTHETIC.FPS_CHOICES), durations (SYNTHETIC.DURATION_RANGE) and sizes (SYNTHETIC.SIZES, landscape
and portrait) and are encoded with PyAV (SYNTHETIC.CODEC). Every video is drawn from a generator seeded by
(SYNTHETIC.SEED, split, class, number): the same settings always give the same files.

Layout: `classes.json` ({name: id}), `{train,val,test}.csv` (`videos/<split>/<name>.mp4 <class name>`),
`videos/`, and `synthetic.json` (the settings, to tell when the cache is stale).
"""

import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context

import numpy as np

from vtn.config.views import ViewSpec
from vtn.datasets.build import DATASET_REGISTRY
from vtn.datasets.kinetics import read_kinetics_layout
from vtn.datasets.video_dataset import VideoDataset
from vtn.utils.errors import DatasetError
from vtn.video.writer import encode_video

logger = logging.getLogger(__name__)

CLASSES = ["square_growing", "square_shrinking", "disk_brightening", "disk_dimming", "triangle", "stripes"]
ORDER_CLASSES = CLASSES[:4]  # need temporal order
REVERSED = {"square_shrinking": "square_growing", "disk_dimming": "disk_brightening"}
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
MANIFEST = "synthetic.json"


@dataclass
class SyntheticSpec:
    train_per_class: int = 16
    val_per_class: int = 4
    test_per_class: int = 8
    duration_range: tuple[float, float] = (2.0, 20.0)
    fps_choices: tuple[int, ...] = (24, 25, 30)
    sizes: tuple[tuple[int, int], ...] = ((160, 120), (120, 160), (176, 144))
    codec: str = "mpeg4"
    seed: int = 0
    cycle_range: tuple[float, float] = (2.5, 4.0)
    classes: list[str] = field(default_factory=lambda: list(CLASSES))

    @classmethod
    def from_cfg(cls, cfg) -> "SyntheticSpec":
        s = cfg.SYNTHETIC
        return cls(
            s.TRAIN_PER_CLASS,
            s.VAL_PER_CLASS,
            s.TEST_PER_CLASS,
            tuple(s.DURATION_RANGE),
            tuple(s.FPS_CHOICES),
            tuple(tuple(x) for x in s.SIZES),
            s.CODEC,
            s.SEED,
            tuple(s.CYCLE_RANGE),
        )

    def per_class(self, split: str) -> int:
        return {"train": self.train_per_class, "val": self.val_per_class, "test": self.test_per_class}[split]

    def as_json(self) -> dict:
        d = asdict(self)
        d["duration_range"] = list(self.duration_range)
        d["fps_choices"] = list(self.fps_choices)
        d["cycle_range"] = list(self.cycle_range)
        d["sizes"] = [list(x) for x in self.sizes]
        return d


# ----------------------------------------------------------------------------- drawing
def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]) * 255


def _background(rng, width: int, height: int) -> np.ndarray:
    base = _hsv_to_rgb(rng.random(), rng.uniform(0.2, 0.6), rng.uniform(0.15, 0.45))
    img = np.broadcast_to(base, (height, width, 3)).astype(np.float32).copy()
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(int(rng.integers(2, 5))):  # static distractor blobs
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.05, 0.15) * min(width, height)
        blob = ((xx - cx) ** 2 + (yy - cy) ** 2) <= r * r
        img[blob] = img[blob] * 0.5 + _hsv_to_rgb(rng.random(), rng.uniform(0.1, 0.4), rng.uniform(0.2, 0.5)) * 0.5
    return img


def render_video(
    name: str,
    rng: np.random.Generator,
    width: int,
    height: int,
    num_frames: int,
    fps: float = 25.0,
    cycle_range: tuple[float, float] = (2.5, 4.0),
) -> np.ndarray:
    """uint8 (T, H, W, 3) frames of one video of class `name`.

    The size or brightness follows a sawtooth whose cycle lasts `cycle_range` seconds (drawn per video, random
    phase); `(0, 0)` makes one ramp over the whole video instead (first frame smallest, last largest).
    """
    bg = _background(rng, width, height)
    color = _hsv_to_rgb(rng.random(), rng.uniform(0.7, 1.0), rng.uniform(0.8, 1.0)).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    short = min(width, height)
    period = rng.uniform(*cycle_range) * fps  # frames per cycle of the sawtooth
    phase = rng.random()
    if period > 0:
        progress = np.mod(np.arange(num_frames) / period + phase, 1.0)
    else:
        progress = np.arange(num_frames) / max(num_frames - 1, 1)
    noise_rng = np.random.default_rng(rng.integers(2**63))
    cx0, cy0 = rng.uniform(0.35, 0.65) * width, rng.uniform(0.35, 0.65) * height
    side_min, side_max = rng.uniform(0.1, 0.2) * short, rng.uniform(0.6, 0.8) * short
    radius = rng.uniform(0.2, 0.3) * short
    stripe_period = rng.uniform(6, 12)
    vertical = rng.random() < 0.5
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t, p in enumerate(progress):  # the reversed classes are drawn forward, then reversed
        img = bg.copy()
        if name.startswith("square"):
            half = (side_min + p * (side_max - side_min)) / 2
            img[(np.abs(xx - cx0) <= half) & (np.abs(yy - cy0) <= half)] = color
        elif name.startswith("disk"):
            mask = (xx - cx0) ** 2 + (yy - cy0) ** 2 <= radius * radius
            img[mask] = img[mask] * (1.0 - p) + color * p
        elif name == "triangle":
            jx, jy = noise_rng.normal(0, 1.5, size=2)
            h = 0.5 * short
            rel = (yy - (cy0 - h / 2 + jy)) / h
            img[(rel >= 0) & (rel <= 1) & (np.abs(xx - cx0 - jx) <= rel * h * 0.6)] = color
        else:  # stripes
            jx, jy = noise_rng.normal(0, 1.5, size=2)
            half = 0.3 * short
            inside = (np.abs(xx - cx0 - jx) <= half) & (np.abs(yy - cy0 - jy) <= half)
            coord = yy if vertical else xx
            img[inside & (np.mod(coord, stripe_period) < stripe_period / 2)] = color
        img += noise_rng.normal(0, 4.0, size=(height, width, 1)).astype(np.float32)
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    if name in REVERSED:
        frames = frames[::-1].copy()  # the same video played backwards: identical frames, opposite order
    return frames


# ----------------------------------------------------------------------------- the dataset files
def _video_jobs(spec: SyntheticSpec, split: str):
    for label, name in enumerate(spec.classes):
        for i in range(spec.per_class(split)):
            yield split, label, name, i


def _make_one(args) -> tuple[str, str]:
    out_dir, spec, split, label, name, i = args
    rng = np.random.default_rng([spec.seed, SPLIT_IDS[split], label, i])
    fps = int(rng.choice(spec.fps_choices))
    duration = rng.uniform(*spec.duration_range)
    width, height = spec.sizes[int(rng.integers(len(spec.sizes)))]
    num_frames = max(2, int(round(duration * fps)))
    rel = os.path.join("videos", split, f"{name}_{i:04d}.mp4")
    frames = render_video(name, rng, width, height, num_frames, fps, spec.cycle_range)
    encode_video(os.path.join(out_dir, rel), frames, fps, spec.codec)
    return rel, name


def _run_jobs(jobs, workers: int, progress_seconds: float = 10.0) -> list:
    """Render and encode every video, in order; a progress line at most every `progress_seconds`."""
    pool = get_context("fork").Pool(workers) if workers > 1 else None
    results, last = [], time.monotonic()
    try:
        for done, result in enumerate(pool.imap(_make_one, jobs, chunksize=2) if pool else map(_make_one, jobs), 1):
            results.append(result)
            if time.monotonic() - last >= progress_seconds and done < len(jobs):
                logger.info("synthetic dataset: %d of %d videos written", done, len(jobs))
                last = time.monotonic()
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return results


LAYOUTS = ("csv", "folder")


def make_synthetic_dataset(out_dir: str, spec: SyntheticSpec = None, workers: int = 1, layout: str = "csv") -> str:
    """Write the dataset into `out_dir` (created; its previous content is replaced atomically). `layout` "csv"
    is the layout above (what `TRAIN.DATASET synthetic` reads); "folder" writes the same videos as
    `{train,val,test}/<class>/<name>.mp4` for `TRAIN.DATASET folder` (the custom-dataset walkthrough)."""
    if layout not in LAYOUTS:
        raise DatasetError(f"--layout {layout}: expected one of {', '.join(LAYOUTS)}")
    spec = spec or SyntheticSpec()
    parent = os.path.dirname(os.path.abspath(out_dir)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".synthetic-", dir=parent)
    try:
        for split in SPLIT_IDS:
            os.makedirs(os.path.join(tmp, "videos", split))
        jobs = [(tmp, spec, *job) for split in SPLIT_IDS for job in _video_jobs(spec, split)]
        logger.info("synthetic dataset: writing %d videos into %s (a progress line every 10 s)", len(jobs), out_dir)
        results = _run_jobs(jobs, workers)
        if layout == "folder":
            for (rel, name), job in zip(results, jobs):
                os.makedirs(os.path.join(tmp, job[2], name), exist_ok=True)  # (os.renames would prune videos/)
                os.replace(os.path.join(tmp, rel), os.path.join(tmp, job[2], name, os.path.basename(rel)))
            shutil.rmtree(os.path.join(tmp, "videos"))  # the emptied folders of the csv layout
            _replace(tmp, out_dir)
            return out_dir
        for split in SPLIT_IDS:
            rows = [r for r, j in zip(results, jobs) if j[2] == split]
            with open(os.path.join(tmp, f"{split}.csv"), "w") as f:
                f.writelines(f"{rel} {name}\n" for rel, name in rows)
        with open(os.path.join(tmp, "classes.json"), "w") as f:
            json.dump({n: i for i, n in enumerate(spec.classes)}, f, indent=1)
        with open(os.path.join(tmp, MANIFEST), "w") as f:
            json.dump(spec.as_json(), f, indent=1)
        _replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def make_long_video(path: str, classes: Sequence[str], segment_seconds: float, spec: SyntheticSpec = None) -> str:
    """One video that shows each of `classes` in turn for `segment_seconds` (a stand-in for a long video whose
    content changes, for timelines): the first size of SYNTHETIC.SIZES and frame rate of SYNTHETIC.FPS_CHOICES."""
    spec = spec or SyntheticSpec()
    unknown = [c for c in classes if c not in spec.classes]
    if unknown or not classes:
        raise DatasetError(f"--classes {','.join(classes)}: expected names among {', '.join(spec.classes)}")
    if segment_seconds <= 0:
        raise DatasetError(f"--segment-seconds {segment_seconds}: expected seconds > 0")
    width, height = spec.sizes[0]
    fps = spec.fps_choices[0]
    rng = np.random.default_rng([spec.seed, 7, len(classes)])
    n = max(2, int(round(segment_seconds * fps)))
    frames = [render_video(c, rng, width, height, n, fps, spec.cycle_range) for c in classes]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    encode_video(path, np.concatenate(frames), fps, spec.codec)
    return path


def _replace(tmp: str, out_dir: str) -> None:
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.rename(tmp, out_dir)


def _is_current(out_dir: str, spec: SyntheticSpec) -> bool:
    try:
        with open(os.path.join(out_dir, MANIFEST)) as f:
            return json.load(f) == spec.as_json()
    except (OSError, ValueError):
        return False


def ensure_synthetic_dataset(cfg) -> str:
    """The synthetic dataset of DATA.PATH_TO_DATA_DIR, generated (SYNTHETIC.AUTO_GENERATE) when it is missing
    or was made with other settings. A file lock makes concurrent processes generate it once."""
    out_dir = cfg.DATA.PATH_TO_DATA_DIR
    if not out_dir:
        raise DatasetError("DATA.PATH_TO_DATA_DIR is empty: set the folder of the synthetic dataset")
    spec = SyntheticSpec.from_cfg(cfg)
    if _is_current(out_dir, spec):
        return out_dir
    if not cfg.SYNTHETIC.AUTO_GENERATE:
        raise DatasetError(
            f"{out_dir} holds no synthetic dataset made with these SYNTHETIC settings; generate it with "
            f"tools/make_synthetic_dataset.py or set SYNTHETIC.AUTO_GENERATE True"
        )
    if os.path.exists(out_dir) and not os.path.isfile(os.path.join(out_dir, MANIFEST)):
        raise DatasetError(f"{out_dir} exists and is not a synthetic dataset; refusing to overwrite it")
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    with open(os.path.join(parent, f".{os.path.basename(out_dir)}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _is_current(out_dir, spec):
            logger.info("Generating the synthetic dataset into %s ...", out_dir)
            make_synthetic_dataset(out_dir, spec, workers=min(2, os.cpu_count() or 1))
            logger.info("Synthetic dataset ready: %s", out_dir)
    return out_dir


@DATASET_REGISTRY.register_as("synthetic")
def build_synthetic(cfg, split: str, view: ViewSpec) -> VideoDataset:
    ensure_synthetic_dataset(cfg)
    if not cfg.DATA.CLASS_INDEX_FILE:
        cfg = cfg.clone()
        cfg.defrost()
        cfg.DATA.CLASS_INDEX_FILE = "classes.json"
        cfg.freeze()
    paths, labels, names, _ = read_kinetics_layout(cfg, split)
    dataset = VideoDataset(cfg, split, view, paths, labels, names)
    order = order_class_ids(names)
    dataset.class_groups = {
        "order-dependent": order,
        "appearance": [i for i in range(len(names)) if i not in order],
    }
    return dataset


def order_class_ids(class_names: Sequence[str]) -> list[int]:
    """Ids of the classes that only temporal order separates."""
    return [i for i, n in enumerate(class_names) if n in ORDER_CLASSES]
