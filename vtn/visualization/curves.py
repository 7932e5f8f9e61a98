"""Training curves from json_stats.log (the paper's Fig. 4 and 5 style): top-1 accuracy of training
(solid) and validation (dashed) per epoch, the training loss and the learning rate, for one or more runs."""

from __future__ import annotations

import os
from collections.abc import Sequence

from vtn.utils.errors import UserError
from vtn.utils.logging import read_json_stats
from vtn.visualization.figures import save_figure


class CurvesError(UserError, ValueError):
    """A log that cannot be drawn (missing, empty) or labels that do not match the logs."""


def load_curves(path: str) -> dict:
    """Series of a json_stats.log: epoch-level train accuracy/loss/lr, val accuracy, iteration-level lr/loss."""
    if not os.path.isfile(path):
        raise CurvesError(f"{path} does not exist; expected OUTPUT_DIR/json_stats.log of a training run")
    records = read_json_stats(path)
    curves = {
        "train_epoch": [],
        "train_acc": [],
        "train_loss": [],
        "train_lr": [],
        "val_epoch": [],
        "val_acc": [],
        "iter_epoch": [],
        "iter_loss": [],
        "lr": [],
    }
    for r in records:
        kind, x = r.get("_type"), r.get("epoch_float")
        if x is None:
            continue
        if kind == "train_epoch":
            curves["train_epoch"].append(x)
            curves["train_loss"].append(r.get("loss"))
            curves["train_lr"].append(r.get("lr"))
            curves["train_acc"].append(100.0 - r["top1_err"] if "top1_err" in r else None)
        elif kind == "val_epoch":
            curves["val_epoch"].append(x)
            curves["val_acc"].append(100.0 - r["top1_err"])
        elif kind == "train_iter":
            curves["iter_epoch"].append(x)
            curves["iter_loss"].append(r.get("loss"))
            curves["lr"].append(r.get("lr"))
    if not (curves["train_epoch"] or curves["iter_epoch"] or curves["val_epoch"]):
        raise CurvesError(f"{path} holds no training or validation records")
    return curves


def _marker(points: int, always: bool = False, shape: str = "o") -> dict:
    """Line2D keywords: a marker on every point of epoch-level series (`always`), and on any series of a single
    point, which a line alone would not show (a 1-epoch run)."""
    return {"marker": shape, "ms": 4} if always or points < 2 else {"marker": ""}


def build_figure(logs: Sequence[str], labels: list[str] | None = None, title: str = ""):
    """The figure of `plot_curves`, not saved (the caller closes it): axes accuracy, loss and learning rate."""
    import matplotlib  # heavy: imported only when a picture is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(labels or [])
    if labels and len(labels) != len(logs):
        raise CurvesError(f"got {len(labels)} labels for {len(logs)} logs; give one --label per --log or none")
    curves = [load_curves(path) for path in logs]
    fig, (ax_acc, ax_loss, ax_lr) = plt.subplots(1, 3, figsize=(15, 4.2))
    for i, (path, c) in enumerate(zip(logs, curves)):
        name = labels[i] if labels else os.path.basename(os.path.dirname(os.path.abspath(path))) or path
        color = f"C{i}"
        acc = [(x, y) for x, y in zip(c["train_epoch"], c["train_acc"]) if y is not None]
        if acc:
            ax_acc.plot(*zip(*acc), "-", color=color, label=f"{name} train", **_marker(len(acc), always=True))
        if c["val_epoch"]:
            ax_acc.plot(
                c["val_epoch"],
                c["val_acc"],
                "--",
                color=color,
                label=f"{name} val",
                **_marker(len(c["val_epoch"]), always=True, shape="s"),
            )
        if c["iter_epoch"]:
            xs, losses, lrs = c["iter_epoch"], c["iter_loss"], c["lr"]
        else:  # no iteration records: the per-epoch loss and learning rate
            xs, losses, lrs = c["train_epoch"], c["train_loss"], c["train_lr"]
        loss = [(x, y) for x, y in zip(xs, losses) if y is not None]
        if loss:
            ax_loss.plot(*zip(*loss), "-", color=color, alpha=0.8, label=name, **_marker(len(loss)))
        lr = [(x, y) for x, y in zip(xs, lrs) if y is not None]
        if lr:
            ax_lr.plot(*zip(*lr), "-", color=color, label=name, **_marker(len(lr)))
    for ax, ylabel in ((ax_acc, "top-1 accuracy (%)"), (ax_loss, "training loss"), (ax_lr, "learning rate")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curves(logs: Sequence[str], output: str, labels: list[str] | None = None, title: str = "") -> str:
    """Draw `build_figure` of the logs to the PNG `output`; returns `output`."""
    fig = build_figure(logs, labels, title)
    return save_figure(fig, output, dpi=110)
