"""Inference over a loader (validation and testing), metrics, the results table and the files it writes."""

import csv
import json
import logging
import os
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Callable, Optional

import numpy as np
import torch

from vtn.config import ViewSpec
from vtn.datasets.fingerprint import dataset_fingerprint  # noqa: F401  (tester, tests and users import it here)
from vtn.engine import distributed as du
from vtn.engine.aggregation import VideoAggregator
from vtn.engine.distributed import unwrap
from vtn.engine.inputs import model_inputs
from vtn.models.vtn import shuffled_frame_order
from vtn.utils.files import atomic_write, write_json_atomic
from vtn.utils.logging import Progress
from vtn.utils.metrics import group_accuracy, per_class_accuracy, topk_correct

logger = logging.getLogger(__name__)


def autocast_for(cfg):
    """Mixed precision on CUDA when TRAIN.MIXED_PRECISION; fp32 everywhere else."""
    if cfg.NUM_GPUS > 0 and cfg.TRAIN.MIXED_PRECISION:
        dtype = torch.float16 if cfg.TRAIN.AMP_DTYPE == "float16" else torch.bfloat16
        return torch.autocast("cuda", dtype=dtype)
    return nullcontext()


def shuffle_seeds(seed: int, video_idx: torch.Tensor, view_idx: torch.Tensor) -> list[int]:
    """One seed per view from (seed, video, view): a video's shuffled order does not depend on the batch it
    lands in, the number of processes or the order of the runs."""
    return [
        int(np.random.SeedSequence([seed, int(v), int(w)]).generate_state(1)[0])
        for v, w in zip(video_idx.tolist(), view_idx.tolist())
    ]


def run_inference(model, loader, cfg, device, desc: str = "test") -> dict[str, torch.Tensor]:
    """Scores of every video of `loader.dataset`, each view counted once (see VideoAggregator). When the dataset's
    view is shuffled, every view's frames are shuffled (sec. 5.1) in an order drawn from (RNG_SEED, video, view)."""
    return run_inference_passes(model, loader, cfg, device, [loader.dataset.view.shuffled], desc)[0]


@torch.no_grad()
def run_inference_passes(model, loader, cfg, device, shuffles: Sequence[bool], desc: str = "test") -> list[dict]:
    """One result of `run_inference` per entry of `shuffles` (frames in order, or shuffled as a shuffled view
    shuffles them) from one pass over the loader: with several entries, the backbone embeds each batch once and
    the temporal encoder and head run once per entry on those embeddings (the shuffle ablation costs no decoding
    and no backbone)."""
    dataset = loader.dataset
    aggs = [
        VideoAggregator(dataset.num_videos, dataset.num_views, cfg.MODEL.NUM_CLASSES, cfg.DATA.ENSEMBLE_METHOD)
        for _ in shuffles
    ]
    net = unwrap(model)
    was_training = net.training
    net.eval()
    progress = Progress(len(loader), cfg.LOG_PERIOD, cfg.LOG_SECONDS)
    non_finite = 0
    for batch in loader:
        view_idx = batch["temporal_idx"] * dataset.view.crops + batch["spatial_idx"]
        inputs = model_inputs(batch, device)
        ok = batch["ok"].cpu().bool()
        with autocast_for(cfg):
            if len(shuffles) > 1 and "frames" in inputs and hasattr(net, "frame_embeddings"):  # embed once for all
                inputs["embeddings"] = net.frame_embeddings(inputs.pop("frames"))
            for shuffled, agg in zip(shuffles, aggs):
                order = {}
                if shuffled:
                    seeds = shuffle_seeds(cfg.RNG_SEED, batch["video_idx"], view_idx)
                    order["frame_order"] = shuffled_frame_order(batch["frame_idx"].shape[1], seeds, batch.get("valid"))
                scores = net(**inputs, **order).float().softmax(dim=-1)
                finite = torch.isfinite(scores).all(dim=-1).cpu()  # e.g. an fp16 overflow: the view counts as failed
                non_finite += int((ok & ~finite).sum()) if agg is aggs[0] else 0  # each view counted once
                agg.add(batch["video_idx"], view_idx, scores, batch["label"], ok & finite)
        if progress.step():
            logger.info(
                "%s: %d/%d batches, %.2f s/batch, eta %s",
                desc,
                progress.done,
                progress.total,
                progress.per_item,
                progress.eta,
            )
    net.train(was_training)
    if non_finite:
        logger.warning(
            "%s: %d views gave NaN or infinite scores; their videos count as failed, never as scored", desc, non_finite
        )
    return [agg.finalize() for agg in aggs]


def compute_metrics(
    result: dict[str, torch.Tensor],
    num_classes: int,
    is_missing: Optional[Callable[[int], bool]] = None,
    left_out: int = 0,
) -> dict:
    """Accuracy (percent) that cannot flatter: over the videos scored, and over every listed video.

    `is_missing(v)` says whether video v of the result is not on disk (asked only of videos that were not
    scored); such videos are counted apart from undecodable ones. `left_out` listed videos were not on disk when
    the dataset was built and are not in the result: they count as listed and missing.
    `top1`/`top5`/`mean_class_acc` are over the scored videos; `top1_listed`/`top5_listed` count every missing
    or failed video as wrong. The masks `scored` and `missing` (V,) say which video of the result was which.
    """
    failed = result["failed"]
    unseen = (result["views"] == 0) & ~failed
    if unseen.any():
        logger.warning("%d videos got no view at all; they count as failed", int(unseen.sum()))
    not_scored = failed | unseen
    missing = torch.tensor(
        [bool(ns) and is_missing is not None and bool(is_missing(v)) for v, ns in enumerate(not_scored.tolist())],
        dtype=torch.bool,
    )
    good = ~not_scored
    scores, labels = result["scores"][good], result["labels"][good]
    n, listed = int(good.sum()), int(len(failed)) + left_out
    hits = topk_correct(scores, labels, (1, 5)) if n else {1: torch.tensor(0), 5: torch.tensor(0)}
    per_class = per_class_accuracy(scores.argmax(1), labels, num_classes) if n else {}
    present = [v for v in per_class.values() if v is not None]
    return {
        "top1": 100.0 * float(hits[1]) / max(n, 1),
        "top5": 100.0 * float(hits[5]) / max(n, 1),
        "mean_class_acc": sum(present) / len(present) if present else 0.0,
        "top1_listed": 100.0 * float(hits[1]) / max(listed, 1),
        "top5_listed": 100.0 * float(hits[5]) / max(listed, 1),
        "num_listed": listed,
        "num_missing": int(missing.sum()) + left_out,
        "num_failed": int((not_scored & ~missing).sum()),
        "num_videos": n,
        "per_class_top1": per_class,
        "scored": good,
        "missing": missing,
    }


def dataset_metrics(result: dict[str, torch.Tensor], dataset, num_classes: int) -> dict:
    """compute_metrics of a dataset's result: its missing videos, left out when it was built or gone since,
    count as listed and missing."""
    return compute_metrics(result, num_classes, dataset.is_missing, len(dataset.missing))


# (header, key of a results row, format) of the table's columns after the protocol name
TABLE_COLUMNS = [
    ("views", "views_per_video", "d"),
    ("top-1", "top1", ".2f"),
    ("top-5", "top5", ".2f"),
    ("mean cls", "mean_class_acc", ".2f"),
    ("top-1 listed", "top1_listed", ".2f"),
    ("top-5 listed", "top5_listed", ".2f"),
    ("scored", "num_videos", "d"),
    ("listed", "num_listed", "d"),
    ("missing", "num_missing", "d"),
    ("failed", "num_failed", "d"),
]
HEADLINE_MARK = " *"


def results_table(rows: list[dict]) -> str:
    """One line per test run, the headline (the first row: test_results.json's top level) marked with `*`; a
    column per class group (e.g. order-dependent classes) when rows have them."""
    groups = list(dict.fromkeys(g for r in rows for g in r.get("class_group_top1", {})))
    width = max([12] + [len(r["protocol"]) + len(HEADLINE_MARK) + 2 for r in rows])
    columns = [(h, k, f, max(len(h) + 2, 8)) for h, k, f in TABLE_COLUMNS if any(k in r for r in rows)]
    columns += [(g, None, ".2f", max(len(g) + 2, 9)) for g in groups]
    header = f"{'protocol':<{width}}" + "".join(f"{h:>{w}}" for h, _, _, w in columns)
    lines = [header, "-" * len(header)]
    for i, r in enumerate(rows):
        name = r["protocol"] + (HEADLINE_MARK if i == 0 else "")
        line = f"{name:<{width}}"
        for h, key, fmt, w in columns:
            value = r.get(key) if key is not None else r.get("class_group_top1", {}).get(h)
            line += f"{value:>{w}{fmt}}" if value is not None else " " * w
        lines.append(line)
    lines.append(
        f"{HEADLINE_MARK.strip()} headline (the config's primary protocol, the top level of "
        "test_results.json); 'listed' columns count missing and failed videos as wrong"
    )
    return "\n".join(lines)


def video_status(metrics: dict, v: int) -> str:
    """'scored', 'missing' (listed, not on disk) or 'failed' (on disk, not decodable)."""
    if bool(metrics["scored"][v]):
        return "scored"
    return "missing" if bool(metrics["missing"][v]) else "failed"


def prediction_record(
    path: str, label: int, names: Optional[list[str]], status: str, ids: list[int], scores: Sequence[float], checkpoint
) -> dict:
    """One video's row of predictions_<run>.json: its top-k class ids, names and mean scores per view."""
    return {
        "path": path,
        "label": label,
        "label_name": names[label] if names else str(label),
        "status": status,
        "failed": status != "scored",
        "top5_ids": ids,
        "top5_names": [names[i] if names else str(i) for i in ids],
        "top5_scores": [round(float(s), 6) for s in scores] if ids else [],
        "checkpoint": checkpoint or "random weights",
    }


def prediction_records(result, dataset, metrics: dict, checkpoint: Optional[str] = None, k: int = 5) -> list[dict]:
    """The rows of every video of the dataset (scored, missing or failed), then those of its videos left out
    because they were not on disk."""
    names = dataset.class_names
    scores = result["scores"]
    views = result["views"].clamp(min=1)
    probs = scores / views[:, None] if scores.shape[0] else scores  # mean score per view for readability
    top = probs.topk(min(k, probs.shape[1]), dim=1) if probs.shape[0] else None
    records = []
    for v in range(len(dataset.paths)):
        label = int(result["labels"][v]) if result["labels"][v] >= 0 else int(dataset.labels[v])
        status = video_status(metrics, v)
        ids = top.indices[v].tolist() if status == "scored" else []
        values = top.values[v] if ids else []
        records.append(prediction_record(dataset.paths[v], label, names, status, ids, values, checkpoint))
    for path, label in zip(dataset.missing, dataset.missing_labels):
        records.append(prediction_record(path, int(label), names, "missing", [], [], checkpoint))
    return records


PREDICTION_COLUMNS = [
    "path",
    "label",
    "label_name",
    "status",
    "failed",
    "top5_ids",
    "top5_names",
    "top5_scores",
    "checkpoint",
]


def write_prediction_csv(f, records: list[dict]) -> None:
    """The records as CSV: one row per video, lists joined with spaces, scores with 4 decimals."""
    writer = csv.writer(f)
    writer.writerow(PREDICTION_COLUMNS)
    for r in records:
        writer.writerow(
            [
                r["path"],
                r["label"],
                r["label_name"],
                r["status"],
                int(r["failed"]),
                " ".join(map(str, r["top5_ids"])),
                " ".join(r["top5_names"]),
                " ".join(f"{s:.4f}" for s in r["top5_scores"]),
                r["checkpoint"],
            ]
        )


def write_predictions(
    result,
    dataset,
    metrics: dict,
    output_dir: str,
    checkpoint: Optional[str] = None,
    k: int = 5,
    view: Optional[ViewSpec] = None,
) -> None:
    """Per-video predictions as predictions_<run>.csv and .json (each written atomically), <run> the name of the
    run's view (`view`, by default the dataset's; e.g. full_video_shuffled): path, label, status (scored, missing,
    failed), top-k class ids, names and mean scores per view, and the checkpoint they come from."""
    records = prediction_records(result, dataset, metrics, checkpoint, k)
    base = os.path.join(output_dir, f"predictions_{(view or dataset.view).name}")
    atomic_write(base + ".json", lambda f: json.dump(records, f, indent=1), binary=False)
    atomic_write(base + ".csv", lambda f: write_prediction_csv(f, records), binary=False)


# the keys of compute_metrics that go into test_results.json as they are (rounded)
PUBLIC_KEYS = (
    "top1",
    "top5",
    "mean_class_acc",
    "top1_listed",
    "top5_listed",
    "num_listed",
    "num_missing",
    "num_failed",
    "num_videos",
)


def public_results(
    metrics: dict,
    view: ViewSpec,
    class_names: Optional[list[str]],
    extra: dict,
    class_groups: Optional[dict[str, list[int]]] = None,
) -> dict:
    """The test_results.json record of one test run of `view` (its name is the record's protocol, its views per
    video the record's views_per_video); `class_groups` adds the mean class top-1 of each named group.
    `num_videos` is the number of videos scored (num_listed - num_missing - num_failed)."""
    per_class = {
        (class_names[c] if class_names else str(c)): (round(v, 4) if v is not None else None)
        for c, v in metrics["per_class_top1"].items()
    }
    out = {"protocol": view.name}
    out.update({k: round(metrics[k], 4) if isinstance(metrics[k], float) else metrics[k] for k in PUBLIC_KEYS})
    out.update(views_per_video=view.views, per_class_top1=per_class)
    if class_groups:
        groups = group_accuracy(metrics["per_class_top1"], class_groups)
        out["class_group_top1"] = {k: round(v, 4) for k, v in groups.items()}
    out.update(extra)
    return out


def save_results(results: list[dict], output_dir: str) -> None:
    """`test_results_<run>.json` per test run, and `test_results.json`: the headline run (the first, the config's
    primary protocol) at the top level, every run under `all_protocols`. Each file is written atomically."""
    if not du.is_master():
        return
    for r in results:
        write_json_atomic(r, os.path.join(output_dir, f"test_results_{r['protocol']}.json"))
    write_json_atomic({**results[0], "all_protocols": results}, os.path.join(output_dir, "test_results.json"))
