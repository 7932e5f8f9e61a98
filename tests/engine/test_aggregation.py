import os

import pytest
import torch
import torch.multiprocessing as mp

from tests.servers import free_port
from vtn.engine.aggregation import VideoAggregator
from vtn.engine.evaluator import compute_metrics


def one_hot_scores(classes, num_classes=4):
    return torch.nn.functional.one_hot(torch.tensor(classes), num_classes).float()


def test_sum_and_max_over_views_and_repeats_count_once():
    agg = VideoAggregator(num_videos=2, num_views=3, num_classes=4)
    # video 0: views 0,1,2 -> classes 1,1,2 ; video 1: views 0,1 -> 3,3 (view 2 never seen)
    agg.add(
        torch.tensor([0, 0, 1]),
        torch.tensor([0, 1, 0]),
        one_hot_scores([1, 1, 3]),
        torch.tensor([1, 1, 3]),
        torch.tensor([True] * 3),
    )
    # a padded sampler repeats views (also inside one batch)
    agg.add(
        torch.tensor([0, 0, 0, 1]),
        torch.tensor([2, 2, 0, 1]),
        one_hot_scores([2, 2, 1, 3]),
        torch.tensor([1, 1, 1, 3]),
        torch.tensor([True] * 4),
    )
    out = agg.finalize()
    assert out["views"].tolist() == [3.0, 2.0]
    assert out["scores"][0].tolist() == [0, 2, 1, 0] and out["scores"][1].tolist() == [0, 0, 0, 2]
    m = VideoAggregator(2, 3, 4, "max")
    m.add(
        torch.tensor([0, 0]),
        torch.tensor([0, 1]),
        torch.tensor([[0.1, 0.9, 0, 0], [0.5, 0.2, 0.3, 0]]),
        torch.tensor([1, 1]),
        torch.tensor([True, True]),
    )
    assert m.finalize()["scores"][0].tolist() == pytest.approx([0.5, 0.9, 0.3, 0])


def test_failed_videos_are_reported_and_left_out_of_accuracy():
    agg = VideoAggregator(3, 1, 4)
    agg.add(
        torch.tensor([0, 1, 2]),
        torch.zeros(3, dtype=torch.long),
        one_hot_scores([1, 0, 2]),
        torch.tensor([1, 2, 2]),
        torch.tensor([True, True, False]),
    )
    metrics = compute_metrics(agg.finalize(), 4)
    assert (metrics["num_listed"], metrics["num_videos"], metrics["num_failed"], metrics["num_missing"]) == (3, 2, 1, 0)
    assert metrics["top1"] == pytest.approx(50.0)  # video 0 right, video 1 wrong, video 2 failed
    assert metrics["top5"] == pytest.approx(100.0)
    assert metrics["top1_listed"] == pytest.approx(100 / 3) and metrics["top5_listed"] == pytest.approx(200 / 3)
    # a failed video that is not on disk is counted as missing, not as failed
    missing = compute_metrics(agg.finalize(), 4, is_missing=lambda v: v in (0, 2))  # video 0 was scored
    assert (missing["num_missing"], missing["num_failed"], missing["num_videos"]) == (1, 0, 2)
    assert missing["scored"].tolist() == [True, True, False]
    assert metrics["per_class_top1"][1] == 100.0 and metrics["per_class_top1"][2] == 0.0
    assert metrics["mean_class_acc"] == pytest.approx(50.0)


def _padded_worker(rank, world, port, out_dir):
    import torch.distributed as dist
    from torch.utils.data.distributed import DistributedSampler

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    num_videos, num_views = 5, 2  # 10 views over 4 processes: the sampler pads with 2 repeats
    sampler = DistributedSampler(range(num_videos * num_views), num_replicas=world, rank=rank, shuffle=False)
    agg = VideoAggregator(num_videos, num_views, 3)
    for i in sampler:
        video, view = i // num_views, i % num_views
        agg.add(
            torch.tensor([video]),
            torch.tensor([view]),
            torch.tensor([[1.0, 0.0, 0.0]]),
            torch.tensor([0]),
            torch.tensor([True]),
        )
    out = agg.finalize()
    torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_padded_distributed_sampler_counts_every_view_once(tmp_path):
    world = 4
    mp.spawn(_padded_worker, args=(world, free_port(), str(tmp_path)), nprocs=world)
    for r in range(world):
        out = torch.load(tmp_path / f"rank{r}.pt")
        assert out["views"].tolist() == [2.0] * 5, f"rank {r}"
        assert out["scores"][:, 0].tolist() == [2.0] * 5
