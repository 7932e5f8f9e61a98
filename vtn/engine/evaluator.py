"""Inference over a loader (validation and testing), metrics, the results table and the files it writes."""
import csv
import json
import logging
import os
import time
from contextlib import nullcontext
from typing import Dict, List, Optional

import torch

from vtn.engine import distributed as du
from vtn.engine.inputs import model_inputs
from vtn.engine.meters import VideoAggregator, format_eta
from vtn.utils.metrics import group_accuracy, per_class_accuracy, topk_correct
from vtn.utils.model_stats import unwrap

logger = logging.getLogger(__name__)


def autocast_for(cfg):
    """Mixed precision on CUDA when TRAIN.MIXED_PRECISION; fp32 everywhere else."""
    if cfg.NUM_GPUS > 0 and cfg.TRAIN.MIXED_PRECISION:
        dtype = torch.float16 if cfg.TRAIN.AMP_DTYPE == "float16" else torch.bfloat16
        return torch.autocast("cuda", dtype=dtype)
    return nullcontext()


@torch.no_grad()
def run_inference(model, loader, cfg, device, desc: str = "test") -> Dict[str, torch.Tensor]:
    """Scores of every video of `loader.dataset`, each view counted once (see VideoAggregator)."""
    dataset = loader.dataset
    crops = getattr(dataset, "num_spatial_crops", cfg.TEST.NUM_SPATIAL_CROPS if dataset.num_views > 1 else 1)
    agg = VideoAggregator(dataset.num_videos, dataset.num_views, cfg.MODEL.NUM_CLASSES, cfg.DATA.ENSEMBLE_METHOD)
    net = unwrap(model)
    was_training = net.training
    net.eval()
    start = time.perf_counter()
    total = len(loader)
    for it, batch in enumerate(loader):
        with autocast_for(cfg):
            logits = net(**model_inputs(batch, device))
        scores = logits.float().softmax(dim=-1)
        view = batch["temporal_idx"] * crops + batch["spatial_idx"]
        agg.add(batch["video_idx"], view, scores, batch["label"], batch["ok"])
        if (it + 1) % cfg.LOG_PERIOD == 0 or it + 1 == total:
            elapsed = time.perf_counter() - start
            logger.info(
                "%s: %d/%d batches, %.2f s/batch, eta %s", desc, it + 1, total, elapsed / (it + 1),
                format_eta(elapsed / (it + 1) * (total - it - 1)),
            )
    net.train(was_training)
    return agg.finalize()


def compute_metrics(result: Dict[str, torch.Tensor], num_classes: int) -> Dict:
    """top-1 / top-5 / mean class accuracy (percent) over the videos that decoded."""
    failed = result["failed"]
    unseen = (result["views"] == 0) & ~failed
    if unseen.any():
        logger.warning("%d videos got no view at all; they count as failed", int(unseen.sum()))
    good = ~(failed | unseen)
    scores, labels = result["scores"][good], result["labels"][good]
    n = int(good.sum())
    hits = topk_correct(scores, labels, (1, 5)) if n else {1: torch.tensor(0), 5: torch.tensor(0)}
    per_class = per_class_accuracy(scores.argmax(1), labels, num_classes) if n else {}
    present = [v for v in per_class.values() if v is not None]
    return {
        "top1": 100.0 * float(hits[1]) / max(n, 1),
        "top5": 100.0 * float(hits[5]) / max(n, 1),
        "mean_class_acc": sum(present) / len(present) if present else 0.0,
        "num_videos": int(len(failed)),
        "num_failed": int((failed | unseen).sum()),
        "per_class_top1": per_class,
    }


def results_table(rows: List[Dict]) -> str:
    """One line per protocol; a column per class group (e.g. order-dependent classes) when rows have them."""
    groups = list(dict.fromkeys(g for r in rows for g in r.get("class_group_top1", {})))
    width = max([12] + [len(r["protocol"]) + 2 for r in rows])
    header = f"{'protocol':<{width}}{'views':>7}{'top-1':>9}{'top-5':>9}{'mean cls':>10}{'videos':>8}{'failed':>8}"
    header += "".join(f"{g:>{max(len(g) + 2, 9)}}" for g in groups)
    lines = [header, "-" * len(header)]
    for r in rows:
        line = (
            f"{r['protocol']:<{width}}{r['views_per_video']:>7}{r['top1']:>9.2f}{r['top5']:>9.2f}"
            f"{r['mean_class_acc']:>10.2f}{r['num_videos']:>8}{r['num_failed']:>8}"
        )
        for g in groups:
            value = r.get("class_group_top1", {}).get(g)
            line += f"{value:>{max(len(g) + 2, 9)}.2f}" if value is not None else " " * max(len(g) + 2, 9)
        lines.append(line)
    return "\n".join(lines)


def write_predictions(result, dataset, metrics: Dict, output_dir: str, protocol: str, k: int = 5) -> None:
    """Per-video predictions as CSV and JSON: path, label, top-k class ids, names and scores."""
    names = dataset.class_names
    scores = result["scores"]
    views = result["views"].clamp(min=1)
    probs = scores / views[:, None] if scores.shape[0] else scores  # mean score per view for readability
    top = probs.topk(min(k, probs.shape[1]), dim=1) if probs.shape[0] else None
    records = []
    for v in range(len(dataset.paths)):
        label = int(result["labels"][v]) if result["labels"][v] >= 0 else int(dataset.labels[v])
        failed = bool(result["failed"][v])
        ids = [] if failed else top.indices[v].tolist()
        records.append(
            {
                "path": dataset.paths[v],
                "label": label,
                "label_name": names[label] if names else str(label),
                "failed": failed,
                "top5_ids": ids,
                "top5_names": [names[i] if names else str(i) for i in ids],
                "top5_scores": [] if failed else [round(float(s), 6) for s in top.values[v]],
            }
        )
    base = os.path.join(output_dir, f"predictions_{protocol}")
    with open(base + ".json", "w") as f:
        json.dump(records, f, indent=1)
    with open(base + ".csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "label_name", "failed", "top5_ids", "top5_names", "top5_scores"])
        for r in records:
            writer.writerow(
                [r["path"], r["label"], r["label_name"], int(r["failed"]), " ".join(map(str, r["top5_ids"])),
                 " ".join(r["top5_names"]), " ".join(f"{s:.4f}" for s in r["top5_scores"])]
            )


def public_results(metrics: Dict, protocol: str, views: int, class_names: Optional[List[str]], extra: Dict,
                   class_groups: Optional[Dict[str, List[int]]] = None) -> Dict:
    """The test_results.json record; `class_groups` adds the mean class top-1 of each named group."""
    per_class = {
        (class_names[c] if class_names else str(c)): (round(v, 4) if v is not None else None)
        for c, v in metrics["per_class_top1"].items()
    }
    out = {
        "protocol": protocol,
        "top1": round(metrics["top1"], 4),
        "top5": round(metrics["top5"], 4),
        "mean_class_acc": round(metrics["mean_class_acc"], 4),
        "num_videos": metrics["num_videos"],
        "num_failed": metrics["num_failed"],
        "views_per_video": views,
        "per_class_top1": per_class,
    }
    if class_groups:
        out["class_group_top1"] = {k: round(v, 4) for k, v in group_accuracy(metrics["per_class_top1"], class_groups).items()}
    out.update(extra)
    return out


def save_results(results: List[Dict], output_dir: str) -> None:
    if not du.is_master():
        return
    for r in results:
        with open(os.path.join(output_dir, f"test_results_{r['protocol']}.json"), "w") as f:
            json.dump(r, f, indent=1)
    with open(os.path.join(output_dir, "test_results.json"), "w") as f:
        json.dump(results[-1] if len(results) == 1 else {**results[-1], "all_protocols": results}, f, indent=1)
