"""Scan a dataset's annotation files: which videos are unreadable and why, durations, frame rates."""

from collections import Counter

import numpy as np

from vtn.datasets.build import build_dataset
from vtn.datasets.decoder import VideoDecodeError


def scan_split(cfg, split: str) -> dict:
    dataset = build_dataset(cfg, split, "single_view")
    bad: list[str] = []
    durations, fps = [], Counter()
    uneven = rotated = 0
    for path in dataset.paths:
        try:
            info = dataset.decoder.probe(path)
        except VideoDecodeError as e:
            bad.append(str(e))
            continue
        durations.append(info.duration)
        fps[round(info.fps, 2)] += 1
        uneven += info.times is not None
        rotated += info.rotation != 0
    return {
        "split": split,
        "videos": len(dataset.paths),
        "unreadable": bad,
        "durations": durations,
        "fps": fps,
        "classes": len(set(dataset.labels)),
        "uneven": uneven,
        "rotated": rotated,
    }


def format_report(report: dict) -> str:
    d = np.asarray(report["durations"]) if report["durations"] else np.zeros(1)
    lines = [
        f"[{report['split']}] {report['videos']} videos, {report['classes']} classes, "
        f"{len(report['unreadable'])} unreadable",
        f"  duration (s): min {d.min():.2f}  median {np.median(d):.2f}  max {d.max():.2f}",
        "  fps histogram: " + ", ".join(f"{k:g} fps: {v}" for k, v in sorted(report["fps"].items())),
        f"  unevenly spaced frames (dropped frames, variable rate; sampled by their times): {report['uneven']}; "
        f"rotated by their display matrix (decoded upright): {report['rotated']}",
    ]
    lines += [f"  unreadable: {reason}" for reason in report["unreadable"]]
    return "\n".join(lines)
