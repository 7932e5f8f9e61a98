"""Timelines of long videos: windows in order with the right times, each scored as a direct forward of its frames,
bounded decoding, the CSV, the plot, demo_net --timeline and VideoModel.timeline."""

import csv

import numpy as np
import pytest
import torch

from tests.helpers import TINY_MODEL_OPTS, run_tool
from vtn.config import load_config
from vtn.datasets.synthetic import render_video
from vtn.inference.streaming import VideoPredictor
from vtn.inference.timeline import check_seconds, compute_timeline, csv_header, window_plan, write_csv
from vtn.models import build_model
from vtn.utils.errors import ConfigError
from vtn.video.decoder import VideoInfo
from vtn.video.writer import encode_video
from vtn.visualization.timeline_plot import mmss, plot_timeline

OPTS = TINY_MODEL_OPTS + ["DATA.NUM_FRAMES", 4, "VTN.BACKBONE_CHUNK_SIZE", 5, "TEST.ALLOW_RANDOM_INIT", True]


@pytest.fixture(scope="module")
def halves_video(tmp_path_factory):
    """20 s at 4 fps, 32x32: a brightening disk for 10 s, then stripes."""
    rng = np.random.default_rng(0)
    first = render_video("disk_brightening", rng, 32, 32, 40, fps=4)
    second = render_video("stripes", rng, 32, 32, 40, fps=4)
    path = str(tmp_path_factory.mktemp("timeline") / "halves.mp4")
    encode_video(path, np.concatenate([first, second]), fps=4)
    return path


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """10 minutes at 1 fps, 32x32 (600 frames)."""
    rng = np.random.default_rng(1)
    frames = render_video("triangle", rng, 32, 32, 600, fps=1)
    path = str(tmp_path_factory.mktemp("timeline") / "long.mp4")
    encode_video(path, frames, fps=1)
    return path


def predictor(*opts):
    cfg = load_config(None, OPTS + list(opts))
    torch.manual_seed(0)
    return VideoPredictor(cfg, build_model(cfg).eval())


def test_windows_cover_the_video_in_order_with_their_times():
    info = VideoInfo(fps=10.0, num_frames=250, duration=25.0, width=32, height=32)
    bounds, indices, window_of = window_plan(info, 10.0, 4)
    assert bounds.tolist() == [[0.0, 10.0], [10.0, 20.0], [20.0, 25.0]]
    assert indices.tolist() == [0, 25, 50, 75, 100, 125, 150, 175, 200, 225]  # 4 per window, the last cut at 25 s
    assert window_of.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    assert np.all(np.diff(indices) >= 0)
    # unevenly spaced frames: the frame shown at each instant (0, 0.5, 1.0, 1.5 s), repeated when it still shows
    uneven = VideoInfo(fps=2.0, num_frames=4, duration=2.0, width=32, height=32, times=(0.0, 0.2, 1.5, 1.9))
    _, idx, win = window_plan(uneven, 1.0, 2)
    assert idx.tolist() == [0, 1, 1, 2] and win.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("bad", [0, -3, "x", float("nan")])
def test_a_bad_window_length_is_one_clear_error(bad):
    with pytest.raises(ConfigError, match="--timeline"):
        check_seconds(bad)


def test_each_window_scores_as_a_direct_forward_of_its_frames(halves_video):
    pred = predictor()
    timeline = compute_timeline(pred, halves_video, 2.0)
    assert [(w.start_s, w.end_s) for w in timeline.windows] == [(2.0 * i, 2.0 * i + 2) for i in range(10)]
    assert all(len(w.frame_idx) == 4 for w in timeline.windows)
    assert timeline.windows[3].frame_idx.tolist() == [24, 26, 28, 30]  # 6 s, 6.5 s, ... at 4 fps
    for w in (timeline.windows[0], timeline.windows[7]):
        emb, idx = pred.embed(halves_video, w.frame_idx.numpy(), timeline.info)  # the window alone
        with torch.no_grad():
            direct = pred.model.forward_embeddings(emb[None], idx[None]).softmax(-1)[0]
        torch.testing.assert_close(w.scores, direct, rtol=0, atol=1e-5)
    # content changes halfway: windows differ across the halves more than within one (random weights)
    s = timeline.scores()
    first, second = s[:5], s[5:]
    within = max(torch.cdist(first, first).max(), torch.cdist(second, second).max())
    assert torch.cdist(first, second).min() > within


def test_a_ten_minute_video_is_decoded_and_embedded_in_bounded_chunks(long_video, monkeypatch):
    pred = predictor("VTN.BACKBONE_CHUNK_SIZE", 7)
    chunks, seen = [], []
    original = pred.decoder.iter_frames

    def recording(*args, **kwargs):
        assert kwargs.get("chunk") == 7
        for frames, got in original(*args, **kwargs):
            chunks.append(len(frames))
            yield frames, got

    monkeypatch.setattr(pred.decoder, "iter_frames", recording)
    pred.model.backbone.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    timeline = compute_timeline(pred, long_video, 10.0)
    assert len(timeline.windows) == 60 and timeline.windows[-1].end_s == pytest.approx(600.0)
    assert max(chunks) <= 7 and sum(chunks) == 240  # 4 frames per 10 s window, never more than a chunk at once
    assert max(seen) <= 7 and sum(seen) == 240  # the backbone runs once per sampled frame


def test_csv_columns_and_plot(halves_video, tmp_path):
    timeline = compute_timeline(predictor(), halves_video, 5.0)
    path = write_csv(timeline, str(tmp_path / "t.csv"), lambda c: f"class {c}", k=3)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert (
        rows[0]
        == csv_header(3)
        == [
            "window",
            "start_s",
            "end_s",
            "start",
            "end",
            "num_frames",
            "label_1",
            "score_1",
            "label_2",
            "score_2",
            "label_3",
            "score_3",
        ]
    )
    assert [r[:5] for r in rows[1:]] == [
        [str(i), f"{5.0 * i:.3f}", f"{5.0 * i + 5:.3f}", mmss(5 * i), mmss(5 * i + 5)] for i in range(4)
    ]
    assert all(float(r[7]) >= float(r[9]) >= float(r[11]) for r in rows[1:])
    png = plot_timeline(timeline, str(tmp_path / "t.png"), lambda c: f"class {c}")
    with open(png, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert mmss(65) == "01:05" and mmss(3725) == "1:02:05"


def test_demo_net_timeline_writes_csv_and_plot(halves_video, tmp_path):
    opts = [str(o) for o in OPTS]
    plot = tmp_path / "timeline.png"
    proc = run_tool("demo_net.py", "--video", halves_video, "--timeline", "5", "--plot", plot, *opts)
    assert "4 windows of 5 s" in proc.stdout and "00:15-00:20" in proc.stdout
    assert plot.stat().st_size > 0
    with open(tmp_path / "timeline.csv", newline="") as f:  # named after the plot
        assert len(list(csv.reader(f))) == 5
    bad = run_tool("demo_net.py", "--video", halves_video, "--plot", plot, *opts, check=False)
    assert bad.returncode != 0 and "--timeline" in bad.stderr


def test_api_timeline(halves_video):
    from vtn.api import load

    model = load(None, opts=OPTS, device="cpu")
    windows = model.timeline(halves_video, 10.0, topk=2)
    assert [(w["start_s"], w["end_s"], w["num_frames"]) for w in windows] == [(0.0, 10.0, 4), (10.0, 20.0, 4)]
    assert [len(w["top"]) for w in windows] == [2, 2]
    assert windows[0]["top"][0]["score"] >= windows[0]["top"][1]["score"]
