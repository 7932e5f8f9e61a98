"""Per-video aggregation of test and validation views (the multi-view protocol's ensemble).

`VideoAggregator` combines the softmax scores of the views of each video (sum or max). Each view
(video, temporal index, spatial index) counts once: repeats on one process are ignored, and a view seen by
several processes (a DistributedSampler pads its shards with repeats) is owned by the lowest rank that has
it; the others leave it out before the scores are summed over processes.
"""

import torch

from vtn.engine import distributed as du


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
