"""Inference over a test loader: views whose scores are not finite make their video failed, never scored."""

import torch

from tests.helpers import synthetic_opts, tiny_cfg, tiny_model
from vtn.datasets import build_loader
from vtn.engine.evaluator import dataset_metrics, run_inference


def test_views_with_nan_scores_count_their_video_as_failed(synthetic_dir, caplog):
    cfg = tiny_cfg(*synthetic_opts(synthetic_dir), "TEST.PROTOCOLS", ["full_video"])
    loader = build_loader(cfg, "test", "full_video")
    model = tiny_model(*synthetic_opts(synthetic_dir))
    fine = dataset_metrics(run_inference(model, loader, cfg, torch.device("cpu")), loader.dataset, 6)
    assert fine["num_videos"] == fine["num_listed"] == 6 and fine["num_failed"] == 0
    with torch.no_grad():
        model.mlp_head[-1].bias[2] = float("nan")  # every view's softmax becomes NaN
    broken = dataset_metrics(run_inference(model, loader, cfg, torch.device("cpu")), loader.dataset, 6)
    assert broken["num_failed"] == broken["num_listed"] == 6 and broken["num_videos"] == 0
    assert broken["top1"] == broken["top1_listed"] == 0.0  # no headline over NaN scores
    assert "6 views gave NaN or infinite scores; their videos count as failed" in caplog.text
