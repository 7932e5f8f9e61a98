"""Scan a dataset's splits before training: what is listed, present, missing and unreadable (with reasons), the
classes, and the spread of durations, frame rates and resolutions. Probing runs in `workers` processes.

With `decode=True` (check_dataset.py --quarantine) each video is also decoded as a run would: its probe and the
centre clip of the single-view protocol at the test scale, together under DATA.DECODE_TIMEOUT; a video that
passes it is reported as too slow, and `quarantine` lists (path, why) of the unreadable and too slow videos for a
quarantine file (vtn/datasets/quarantine.py). The check's processes have the cooperative deadline only (no
watchdog: a process pool cannot lose a worker).
"""

import logging
import multiprocessing
import time
from collections import Counter
from typing import Callable, Optional

import numpy as np

from vtn.config.views import view_spec
from vtn.datasets import sampling, transforms
from vtn.datasets.annotations import repeats_policy
from vtn.datasets.build import build_dataset
from vtn.utils.logging import format_eta
from vtn.video.deadline import DecodeTimeout, decode_deadline
from vtn.video.decoder import VideoDecodeError, build_decoder

logger = logging.getLogger(__name__)

_DECODER = None
_CLIP = None  # (cfg, single-view spec) when each video's centre clip is decoded too


def _init_worker(cfg, decode: bool = False) -> None:
    global _DECODER, _CLIP
    _DECODER = build_decoder(cfg)
    _CLIP = (cfg, view_spec(cfg, "single_view")) if decode else None


def _decode_clip(path: str, info) -> None:
    """Decode the centre clip of the single-view protocol at the test scale, as testing would."""
    cfg, view = _CLIP
    wanted = sampling.view_frame_indices(view, info.num_frames, info.fps, info.times, 0, None)
    d = cfg.DATA
    params = transforms.test_params(info.width, info.height, d.TEST_SCALE, d.TEST_CROP_SIZE, 0, 1)
    _DECODER.decode(path, wanted, size=(params.width, params.height), info=info)


def _probe(path: str) -> tuple[str, Optional[tuple], str, bool]:
    """(path, (duration, fps, width, height, uneven, rotated) or None, reason it is unreadable, whether it was
    too slow): the probe, and the centre clip under DATA.DECODE_TIMEOUT when the clip is checked too."""
    timeout = float(_CLIP[0].DATA.DECODE_TIMEOUT) if _CLIP is not None else 0.0
    try:
        with decode_deadline(timeout, path, backstop=False):
            info = _DECODER.probe(path)
            if _CLIP is not None:
                _decode_clip(path, info)
    except VideoDecodeError as e:
        return path, None, str(e), isinstance(e, DecodeTimeout)
    stats = (info.duration, info.fps, info.width, info.height, info.times is not None, info.rotation != 0)
    return path, stats, "", False


def probe_all(
    cfg, paths: list[str], workers: int, progress: Callable[[int, int], None], decode: bool = False
) -> list[tuple]:
    """`_probe` of every path, in order, in `workers` processes (in this one when workers <= 1)."""
    if workers <= 1 or len(paths) < 2:
        _init_worker(cfg, decode)
        results = []
        for i, path in enumerate(paths):
            results.append(_probe(path))
            progress(i + 1, len(paths))
        return results
    ctx = multiprocessing.get_context("spawn" if multiprocessing.get_start_method() != "fork" else "fork")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(cfg, decode)) as pool:
        results = []
        for result in pool.imap(_probe, paths, chunksize=max(1, min(16, len(paths) // (workers * 8) or 1))):
            results.append(result)
            progress(len(results), len(paths))
    return results


class Progress:
    """A progress line every `period` seconds and at the end: done/total, rate, time left."""

    def __init__(self, label: str, period: float = 5.0, out: Callable[[str], None] = print):
        self.label, self.period, self.out = label, period, out
        self.start = self.last = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - self.last < self.period:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        left = format_eta((total - done) / rate) if rate > 0 else "?"
        self.out(f"  {self.label}: {done}/{total} videos probed, {rate:.1f} videos/s, eta {left}")


def scan_split(
    cfg, split: str, workers: int = 1, progress: Optional[Callable[[int, int], None]] = None, decode: bool = False
) -> dict:
    """The report of one split (see format_report); `decode`: decode each video's centre clip under
    DATA.DECODE_TIMEOUT too (see the module)."""
    dataset = build_dataset(cfg, split, "single_view")
    results = probe_all(cfg, dataset.paths, workers, progress or (lambda done, total: None), decode)
    good = [r[1] for r in results if r[1] is not None]
    return {
        "split": split,
        "listed": dataset.num_listed,
        "repeated_rows": getattr(dataset, "repeated_rows", 0),
        "present": len(dataset.paths),
        "missing": list(dataset.missing),
        "unreadable": [reason for _, r, reason, slow in results if r is None and not slow],
        "too_slow": [reason for _, r, reason, slow in results if slow],
        "decode_timeout": float(cfg.DATA.DECODE_TIMEOUT) if decode else None,
        "quarantine": [(str(path), reason.removeprefix(f"{path}: ")) for path, r, reason, _ in results if r is None],
        "ignored_files": getattr(dataset, "ignored_files", 0),
        "classes": len(set(dataset.labels)),
        "num_classes": len(dataset.class_names) if dataset.class_names else None,
        "durations": [g[0] for g in good],
        "fps": Counter(round(g[1], 2) for g in good),
        "short_sides": [min(g[2], g[3]) for g in good],
        "sizes": Counter(f"{g[2]}x{g[3]}" for g in good),
        "uneven": sum(g[4] for g in good),
        "rotated": sum(g[5] for g in good),
    }


def _spread(values: list[float], fmt: str) -> str:
    v = np.asarray(values, dtype=float) if values else np.zeros(1)
    q = np.percentile(v, [0, 5, 50, 95, 100])
    return "  ".join(f"{name} {x:{fmt}}" for name, x in zip(("min", "p5", "median", "p95", "max"), q))


def format_report(report: dict, show: int = 10) -> str:
    classes = f"{report['classes']} classes"
    if report.get("num_classes") and report["num_classes"] != report["classes"]:
        classes += f" (of {report['num_classes']}: some have no video in this split)"
    if report.get("decode_timeout") is not None:
        slow = report["too_slow"]
        classes = f"too slow {len(slow)} (DATA.DECODE_TIMEOUT = {report['decode_timeout']:g} s); {classes}"
    lines = [
        f"[{report['split']}] listed {report['listed']}, present {report['present']}, missing "
        f"{len(report['missing'])}, unreadable {len(report['unreadable'])}; {classes}"
        + (f"; {report['ignored_files']} files that are not videos ignored" if report.get("ignored_files") else "")
        + (
            f"; {report['repeated_rows']} rows list a video listed above ({repeats_policy(report['split'])})"
            if report.get("repeated_rows")
            else ""
        ),
        f"  duration (s): {_spread(report['durations'], '.2f')}",
        "  fps histogram: " + ", ".join(f"{k:g} fps: {v}" for k, v in sorted(report["fps"].items())),
        f"  short side (px): {_spread(report['short_sides'], '.0f')}; most common sizes: "
        + ", ".join(f"{k}: {v}" for k, v in report["sizes"].most_common(3)),
        f"  unevenly spaced frames (dropped frames, variable rate; sampled by their times): {report['uneven']}; "
        f"rotated by their display matrix (decoded upright): {report['rotated']}",
    ]
    for key in ("missing", "unreadable", "too_slow"):
        items, kind = report.get(key, []), key.replace("_", " ")
        lines += [f"  {kind}: {item}" for item in items[:show]]
        if len(items) > show:
            lines.append(f"  ... and {len(items) - show} more {kind}")
    return "\n".join(lines)
