"""Training curves from json_stats.log (the paper's Fig. 4 and 5 style): top-1 accuracy of training
(solid) and validation (dashed) per epoch, the training loss and the learning rate, for one or more runs."""
import os
from typing import List, Optional, Sequence

from vtn.utils.logging import read_json_stats


def load_curves(path: str) -> dict:
    """Series of a json_stats.log: epoch-level train accuracy/loss, val accuracy, iteration-level lr/loss."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist; expected OUTPUT_DIR/json_stats.log of a training run")
    records = read_json_stats(path)
    curves = {"train_epoch": [], "train_acc": [], "train_loss": [], "val_epoch": [], "val_acc": [],
              "iter_epoch": [], "iter_loss": [], "lr": []}
    for r in records:
        kind, x = r.get("_type"), r.get("epoch_float")
        if x is None:
            continue
        if kind == "train_epoch":
            curves["train_epoch"].append(x)
            curves["train_loss"].append(r.get("loss"))
            curves["train_acc"].append(100.0 - r["top1_err"] if "top1_err" in r else None)
        elif kind == "val_epoch":
            curves["val_epoch"].append(x)
            curves["val_acc"].append(100.0 - r["top1_err"])
        elif kind == "train_iter":
            curves["iter_epoch"].append(x)
            curves["iter_loss"].append(r.get("loss"))
            curves["lr"].append(r.get("lr"))
    if not (curves["train_epoch"] or curves["iter_epoch"] or curves["val_epoch"]):
        raise ValueError(f"{path} holds no training or validation records")
    return curves


def plot_curves(logs: Sequence[str], output: str, labels: Optional[List[str]] = None, title: str = "") -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(labels or [])
    if labels and len(labels) != len(logs):
        raise ValueError(f"got {len(labels)} labels for {len(logs)} logs; give one --label per --log or none")
    fig, (ax_acc, ax_loss, ax_lr) = plt.subplots(1, 3, figsize=(15, 4.2))
    for i, path in enumerate(logs):
        c = load_curves(path)
        name = labels[i] if labels else os.path.basename(os.path.dirname(os.path.abspath(path))) or path
        color = f"C{i}"
        acc = [(x, y) for x, y in zip(c["train_epoch"], c["train_acc"]) if y is not None]
        if acc:
            ax_acc.plot(*zip(*acc), "-", color=color, label=f"{name} train")
        if c["val_epoch"]:
            ax_acc.plot(c["val_epoch"], c["val_acc"], "--", color=color, marker="o", ms=3, label=f"{name} val")
        if c["iter_epoch"]:
            ax_loss.plot(c["iter_epoch"], c["iter_loss"], "-", color=color, alpha=0.8, label=name)
            ax_lr.plot(c["iter_epoch"], c["lr"], "-", color=color, label=name)
    for ax, ylabel in ((ax_acc, "top-1 accuracy (%)"), (ax_loss, "training loss"), (ax_lr, "learning rate")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output
