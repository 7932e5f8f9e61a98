"""Whole-video inference streams the frames: the same logits as one batched forward, bounded by a chunk."""

import pytest
import torch

from tests.helpers import TINY_MODEL_OPTS, synthetic_opts
from vtn.config import load_config
from vtn.datasets import build_dataset
from vtn.inference.streaming import VideoPredictor, frame_indices
from vtn.models import build_model
from vtn.video.decoder import VideoInfo


def test_frame_indices_by_count_all_or_fps():
    info = VideoInfo(fps=30.0, num_frames=300, duration=10.0, width=64, height=48)
    assert len(frame_indices(info, 250)) == 250
    assert frame_indices(info, 0).tolist() == list(range(300))
    one_fps = frame_indices(info, 250, fps=1.0)
    assert one_fps.tolist() == list(range(0, 300, 30))


def test_streamed_prediction_equals_the_full_video_test_item(synthetic_dir):
    cfg = load_config(
        None,
        TINY_MODEL_OPTS + synthetic_opts(synthetic_dir) + ["TEST.FULL_VIDEO_FRAMES", 24, "VTN.BACKBONE_CHUNK_SIZE", 5],
    )
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    item = build_dataset(cfg, "test", "full_video")[(2, 0)]
    with torch.no_grad():
        expected = model(item["frames"][None], item["frame_idx"][None]).softmax(-1)[0]
    pred = VideoPredictor(cfg, model).predict(build_dataset(cfg, "test").paths[2], return_attention=True)
    assert torch.equal(pred.frame_idx, item["frame_idx"])
    torch.testing.assert_close(pred.scores, expected, rtol=0, atol=1e-5)
    assert pred.embeddings.shape == (24, 192)
    assert len(pred.attention) == 1 and pred.attention[0].shape == (3, 25)
    assert pred.topk(2)[0][0] == int(expected.argmax())


def test_chunks_bound_what_the_backbone_sees(synthetic_dir):
    cfg = load_config(None, TINY_MODEL_OPTS + synthetic_opts(synthetic_dir) + ["VTN.BACKBONE_CHUNK_SIZE", 7])
    model = build_model(cfg).eval()
    seen = []
    model.backbone.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    path = build_dataset(cfg, "test").paths[0]
    pred = VideoPredictor(cfg, model).predict(path, num_frames=0)  # every frame of the video
    assert len(pred.frame_idx) == pred.info.num_frames
    assert max(seen) <= 7 and sum(seen) == pred.info.num_frames


@pytest.mark.parametrize(
    "pos_opts", [["VTN.POS_EMBED", "fixed"], ["VTN.POS_EMBED", "learned", "VTN.POS_INDEX_MODE", "modulo"]]
)
def test_an_hour_at_one_fps_is_one_forward_of_3600_tokens(pos_opts):
    """1 fps over an hour of 25 fps video: 3,600 tokens with frame indices up to 90,000, far past the learned
    table (VTN.MAX_POSITION_EMBEDDINGS): the fixed sinusoid has no limit, the learned table wraps (modulo)."""
    cfg = load_config(None, TINY_MODEL_OPTS + pos_opts)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    frame_idx = torch.arange(3600)[None] * 25  # 0, 25, ..., 89,975
    emb = torch.randn(1, 3600, model.backbone.feature_dim)
    with torch.no_grad():
        logits = model.forward_embeddings(emb, frame_idx)
    assert logits.shape == (1, cfg.MODEL.NUM_CLASSES)
    assert torch.isfinite(logits).all()
    # the indices past the learned table: the learned one wraps them (index k is row k mod the table's size); the
    # fixed one codes each index itself, so wrapping them would change the result
    with torch.no_grad():
        wrapped = model.forward_embeddings(emb, frame_idx % cfg.VTN.MAX_POSITION_EMBEDDINGS)
    if cfg.VTN.POS_EMBED == "learned":
        assert torch.equal(wrapped, logits)
    else:
        assert (wrapped - logits).abs().max() > 1e-4
