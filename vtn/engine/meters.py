"""Meters: training statistics with one host sync per log line, and per-video aggregation of views.

`VideoAggregator` combines the softmax scores of the views of each video (sum or max). Each view
(video, temporal index, spatial index) counts once: repeats on one process are ignored, and a view seen by
several processes (a DistributedSampler pads its shards with repeats) is owned by the lowest rank that has
it; the others leave it out before the scores are summed over processes.
"""

import datetime
import logging
import time
from typing import Optional

import torch

from vtn.engine import distributed as du
from vtn.utils.metrics import topk_correct

logger = logging.getLogger(__name__)


def format_eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


class TrainMeter:
    """Accumulates loss and accuracy on the device; `log` syncs, reduces over processes and prints."""

    def __init__(self, epoch_iters: int, max_epoch: int, device: torch.device):
        self.epoch_iters = epoch_iters
        self.max_epoch = max_epoch
        self.device = device
        self._iter_times: list[float] = []
        self.reset_window()
        self.reset_epoch()

    def _zeros(self):
        # loss sum, samples, top1 hits, top5 hits, samples with hard labels, decode failures
        return torch.zeros(6, dtype=torch.float64, device=self.device)

    def reset_window(self):
        self.window = self._zeros()
        self.window_data_time = 0.0
        self.window_iter_time = 0.0
        self.window_iters = 0

    def reset_epoch(self):
        self.epoch = self._zeros()
        self.epoch_start = time.perf_counter()

    def update(self, loss, logits, labels: Optional[torch.Tensor], decode_failures, data_time, iter_time):
        n = logits.shape[0]
        row = self._zeros()
        row[0] = loss.detach().double() * n
        row[1] = n
        if labels is not None:
            hits = topk_correct(logits.detach(), labels, (1, 5))
            row[2], row[3], row[4] = hits[1], hits[5], n
        row[5] = decode_failures.sum()
        self.window += row
        self.epoch += row
        self.window_data_time += data_time
        self.window_iter_time += iter_time
        self.window_iters += 1
        self._iter_times.append(iter_time)
        self._iter_times = self._iter_times[-200:]

    @staticmethod
    def _summary(stats: torch.Tensor) -> dict[str, float]:
        stats = du.all_reduce_sum(stats.clone()).tolist()
        loss_sum, n, top1, top5, n_hard, failures = stats
        out = {"loss": loss_sum / max(n, 1), "decode_failures": int(failures)}
        if n_hard:
            out["top1_err"] = 100.0 * (1 - top1 / n_hard)
            out["top5_err"] = 100.0 * (1 - top5 / n_hard)
        return out

    def eta_seconds(self, epoch: int, it: int) -> float:
        avg = sum(self._iter_times) / max(len(self._iter_times), 1)
        remaining = (self.max_epoch - epoch) * self.epoch_iters - (it + 1)
        return avg * remaining

    def log_iter(self, epoch: int, it: int, lr: float, mem_gb: Optional[float] = None) -> dict:
        stats = self._summary(self.window)
        iters = max(self.window_iters, 1)
        stats.update(
            _type="train_iter",
            epoch=f"{epoch + 1}/{self.max_epoch}",
            epoch_float=round(epoch + (it + 1) / self.epoch_iters, 6),
            iter=f"{it + 1}/{self.epoch_iters}",
            lr=lr,
            data_time=self.window_data_time / iters,
            iter_time=self.window_iter_time / iters,
            eta=format_eta(self.eta_seconds(epoch, it)),
        )
        if mem_gb is not None:
            stats["gpu_mem_gb"] = mem_gb
        self.reset_window()
        return stats

    def log_epoch(self, epoch: int, lr: float) -> dict:
        stats = self._summary(self.epoch)
        stats.update(
            _type="train_epoch",
            epoch=f"{epoch + 1}/{self.max_epoch}",
            epoch_float=float(epoch + 1),
            lr=lr,
            epoch_time=time.perf_counter() - self.epoch_start,
        )
        self.reset_epoch()
        return stats


def format_stats(stats: dict) -> str:
    parts = []
    for k, v in stats.items():
        if k.startswith("_"):
            continue
        parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
    return " | ".join(parts)


class VideoAggregator:
    """Per-video ensemble of view scores, exact under repeated views and across processes."""

    def __init__(self, num_videos: int, num_views: int, num_classes: int, ensemble: str = "sum"):
        if ensemble not in ("sum", "max"):
            raise ValueError(f"DATA.ENSEMBLE_METHOD must be 'sum' or 'max', got {ensemble!r}")
        self.num_videos, self.num_views, self.num_classes = num_videos, num_views, num_classes
        self.ensemble = ensemble
        self.labels = torch.full((num_videos,), -1, dtype=torch.long)
        self.failed = torch.zeros(num_videos, dtype=torch.bool)
        self._seen = torch.zeros(num_videos * num_views, dtype=torch.bool)
        self._keys: list[torch.Tensor] = []
        self._scores: list[torch.Tensor] = []

    def add(self, video_idx, view_idx, scores, labels, ok) -> None:
        """One batch of views: `scores (N, C)` softmax scores; `ok (N,)` False for undecodable videos."""
        video_idx, view_idx = video_idx.long().cpu(), view_idx.long().cpu()
        keys = video_idx * self.num_views + view_idx
        if (view_idx >= self.num_views).any() or (video_idx >= self.num_videos).any():
            raise ValueError("a view or video index is out of range of the dataset")
        fresh = ~self._seen[keys]
        # a repeat inside this batch counts once as well
        first = torch.zeros_like(fresh)
        uniq_keys, inverse = torch.unique(keys, return_inverse=True)
        first_pos = torch.full((len(uniq_keys),), len(keys), dtype=torch.long).scatter_reduce(
            0, inverse, torch.arange(len(keys)), reduce="amin"
        )
        first[first_pos] = True
        take = fresh & first
        self._seen[keys[take]] = True
        self.labels[video_idx] = labels.long().cpu()
        self.failed[video_idx[~ok.cpu().bool()]] = True
        self._keys.append(keys[take])
        self._scores.append(scores.detach().float().cpu()[take])

    def finalize(self) -> dict[str, torch.Tensor]:
        """Combine over processes. Returns per-video `scores (V, C)`, `labels`, `views` (views counted),
        `failed`; identical on every process."""
        keys = torch.cat(self._keys) if self._keys else torch.zeros(0, dtype=torch.long)
        scores = torch.cat(self._scores) if self._scores else torch.zeros(0, self.num_classes)
        if du.get_world_size() > 1:
            keep = self._owned_by_me(keys)
            keys, scores = keys[keep], scores[keep]
        videos = keys // self.num_views
        agg = torch.zeros(self.num_videos, self.num_classes)
        if self.ensemble == "sum":
            agg.index_add_(0, videos, scores)
        else:
            agg.scatter_reduce_(0, videos[:, None].expand_as(scores), scores, "amax", include_self=True)
        views = torch.zeros(self.num_videos).index_add_(0, videos, torch.ones(len(videos)))
        labels = self.labels.clone()
        failed = self.failed.clone().float()
        if du.get_world_size() > 1:
            device = torch.device("cuda") if torch.cuda.is_available() and du.dist.get_backend() == "nccl" else None
            agg, views, labels_max, failed = self._reduce(agg, views, labels, failed, device)
            labels = labels_max
        return {"scores": agg, "labels": labels, "views": views, "failed": failed > 0}

    def _owned_by_me(self, keys: torch.Tensor) -> torch.Tensor:
        device = torch.device("cuda") if du.dist.get_backend() == "nccl" else torch.device("cpu")
        ranks = torch.full((len(keys),), du.get_rank(), dtype=torch.long)
        all_keys = du.all_gather_cat(keys.to(device)).cpu()
        all_ranks = du.all_gather_cat(ranks.to(device)).cpu()
        owner = torch.full((self.num_videos * self.num_views,), 1 << 30, dtype=torch.long)
        owner.scatter_reduce_(0, all_keys, all_ranks, reduce="amin")
        return owner[keys] == du.get_rank()

    def _reduce(self, agg, views, labels, failed, device):
        move = (lambda t: t.to(device)) if device is not None else (lambda t: t)
        agg, views, labels, failed = move(agg), move(views), move(labels), move(failed)
        if self.ensemble == "sum":
            du.all_reduce_sum(agg)
        else:
            du.dist.all_reduce(agg, op=du.dist.ReduceOp.MAX)
        du.all_reduce_sum(views)
        du.dist.all_reduce(labels, op=du.dist.ReduceOp.MAX)
        du.all_reduce_sum(failed)
        return agg.cpu(), views.cpu(), labels.cpu(), failed.cpu()
