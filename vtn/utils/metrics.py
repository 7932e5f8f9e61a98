"""Accuracy metrics on score matrices."""

from collections.abc import Sequence
from typing import Optional

import torch


def topk_correct(scores: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, torch.Tensor]:
    """Number of samples whose label is among the top-k scores, for each k (device tensors, no sync)."""
    maxk = min(max(ks), scores.shape[1])
    top = scores.topk(maxk, dim=1).indices
    hit = top.eq(labels.view(-1, 1))
    return {k: hit[:, : min(k, maxk)].any(dim=1).sum() for k in ks}


def mean_class_accuracy(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """Average over the classes present in `labels` of the per-class top-1 accuracy (percent)."""
    per_class = per_class_accuracy(pred, labels, num_classes)
    present = [v for v in per_class.values() if v is not None]
    return sum(present) / len(present) if present else 0.0


def per_class_accuracy(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[int, float]:
    """Top-1 accuracy (percent) of each class, None for classes without samples."""
    out = {}
    for c in range(num_classes):
        sel = labels == c
        n = int(sel.sum())
        out[c] = 100.0 * float((pred[sel] == c).sum()) / n if n else None
    return out


def group_accuracy(per_class: dict[int, Optional[float]], groups: dict[str, list[int]]) -> dict[str, float]:
    """Mean per-class top-1 of each named group of classes (classes without samples are left out)."""
    out = {}
    for name, ids in groups.items():
        values = [per_class[c] for c in ids if per_class.get(c) is not None]
        if values:
            out[name] = sum(values) / len(values)
    return out
