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


class Recording(torch.nn.Module):
    """A model that notes the frame order it is given, then runs the wrapped one."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.orders = inner, []

    def forward(self, **inputs):
        self.orders.append(inputs.get("frame_order"))
        return self.inner(**inputs)


def test_a_shuffled_view_shuffles_the_frames_the_model_sees_in_a_seeded_order(synthetic_dir):
    cfg = tiny_cfg(*synthetic_opts(synthetic_dir), "TEST.PROTOCOLS", ["full_video"])
    cpu = torch.device("cpu")
    model = Recording(tiny_model(*synthetic_opts(synthetic_dir)))
    plain = run_inference(model, build_loader(cfg, "test", "full_video"), cfg, cpu)["scores"]
    assert model.orders and all(order is None for order in model.orders)
    model.orders.clear()
    loader = build_loader(cfg, "test", "full_video_shuffled")
    assert loader.dataset.view.shuffled and loader.dataset.view.name == "full_video_shuffled"
    shuffled = run_inference(model, loader, cfg, cpu)["scores"]
    orders = torch.cat(model.orders)
    assert orders.shape == (6, 8) and (orders.sort(dim=1).values == torch.arange(8)).all()
    assert (orders != torch.arange(8)).any(dim=1).all()  # every video's frames in another order
    assert not torch.equal(shuffled, plain)
    model.orders.clear()
    torch.testing.assert_close(run_inference(model, loader, cfg, cpu)["scores"], shuffled)
    assert torch.equal(torch.cat(model.orders), orders)  # seeded by RNG_SEED
