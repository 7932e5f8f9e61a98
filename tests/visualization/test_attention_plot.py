"""The layout of Fig. 3 (vtn/visualization/attention.py): every attention cell under its frame, the same frame
indices on the strip and the heatmap, a fixed [0, 1] colour scale, no overlapping labels; and the csv selection."""

import types

import numpy as np
import pytest
import torch

from vtn.visualization.attention import build_attention_figure, plot_attention, spread_over_classes


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory):
    """A 40-frame 48x32 mpeg4 file whose frames differ (a bar moving right)."""
    from vtn.video.writer import encode_video

    frames = np.zeros((40, 32, 48, 3), dtype=np.uint8)
    for t in range(40):
        frames[t, :, t % 48] = 255
    path = str(tmp_path_factory.mktemp("video") / "tiny.mp4")
    encode_video(path, frames, 10)
    return path


def fake_prediction(path, num_frames=16, heads=4, peak=None):
    """What VideoPredictor.predict(..., return_attention=True) returns, with made-up attention: near-uniform,
    or `peak` = a frame position that holds almost all of it."""
    from vtn.inference.streaming import frame_indices
    from vtn.video.decoder import PyAVDecoder

    info = PyAVDecoder().probe(path)
    idx = torch.as_tensor(frame_indices(info, num_frames))
    att = torch.rand(heads, 1 + len(idx)) + 1.0
    if peak is not None:
        att[:, 1 + peak] = 1000.0
    att = att / att.sum(dim=1, keepdim=True)
    return types.SimpleNamespace(path=path, info=info, frame_idx=idx, attention=[att])


def drawn(prediction, heads, **kw):
    out = build_attention_figure(prediction, "title", heads, **kw)
    out.fig.canvas.draw()  # constrained layout places the axes when drawing
    return out


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize("heads", ["mean", "all"])
def test_every_cell_sits_under_its_thumbnail(tiny_video, heads):
    pred = fake_prediction(tiny_video)
    d = drawn(pred, heads)
    strip, heat = d.strip.get_position(), d.heatmap.get_position()
    assert strip.x0 == pytest.approx(heat.x0, abs=1e-6) and strip.x1 == pytest.approx(heat.x1, abs=1e-6)
    assert d.strip.get_xlim() == d.heatmap.get_xlim() == (0, 16)
    extents = sorted(tuple(im.get_extent()[:2]) for im in d.strip.get_images())
    assert extents == [(i, i + 1) for i in range(16)]  # one thumbnail per cell, cell i over [i, i + 1]
    (cells,) = d.heatmap.get_images()
    assert tuple(cells.get_extent()[:2]) == (0, 16)
    assert cells.get_array().shape == (1 if heads == "mean" else 4, 16)


@pytest.mark.parametrize("heads", ["mean", "all"])
def test_strip_and_heatmap_show_the_same_frame_indices(tiny_video, heads):
    pred = fake_prediction(tiny_video)
    d = drawn(pred, heads)
    wanted = [str(int(i)) for i in pred.frame_idx]
    for ax in (d.strip, d.heatmap):
        labels = [t for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
        assert [t.get_text() for t in labels] == wanted
        assert list(ax.get_xticks()) == pytest.approx([i + 0.5 for i in range(16)])


@pytest.mark.parametrize("heads", ["mean", "all"])
def test_fixed_colour_range_and_a_readable_bar(tiny_video, heads):
    d = drawn(fake_prediction(tiny_video, peak=3), heads)
    (cells,) = d.heatmap.get_images()
    assert cells.get_clim() == (0.0, 1.0)
    assert cells.get_array()[0, 3] > 0.9  # the peak, near the top of the scale
    ticks = list(d.colorbar.get_ticks())
    assert ticks[0] == 0.0 and ticks[-1] == 1.0 and len(ticks) >= 3
    fig_w, fig_h = d.fig.get_size_inches()
    bar = d.colorbar.ax.get_position()
    assert bar.width * fig_w >= 0.15 and bar.height * fig_h >= 0.6  # inches


@pytest.mark.parametrize("heads", ["mean", "all"])
def test_no_label_overlaps_the_other_axis(tiny_video, heads):
    d = drawn(fake_prediction(tiny_video), heads)
    renderer = d.fig.canvas.get_renderer()
    strip_all, heat_all = d.strip.get_tightbbox(renderer), d.heatmap.get_tightbbox(renderer)
    strip_frame, heat_frame = d.strip.get_window_extent(renderer), d.heatmap.get_window_extent(renderer)
    assert strip_all.y0 >= heat_frame.y1  # the strip's tick labels end above the heatmap
    assert heat_all.y1 <= strip_frame.y0  # and the heatmap's labels below the strip
    bar_all = d.colorbar.ax.get_tightbbox(renderer)
    assert bar_all.x0 >= heat_frame.x1 and bar_all.x1 <= d.fig.bbox.x1 + 1
    title = d.fig._suptitle.get_window_extent(renderer)
    assert title.y0 >= strip_all.y1 - 1


def test_many_frames_share_thumbnails_and_stay_aligned(tiny_video):
    pred = fake_prediction(tiny_video, num_frames=0, heads=2)  # every frame: 40 cells
    d = drawn(pred, "all", thumbnails=8)
    images = sorted(tuple(im.get_extent()[:2]) for im in d.strip.get_images())
    assert images == [(5 * j, 5 * j + 5) for j in range(8)]
    assert d.strip.get_position().x0 == pytest.approx(d.heatmap.get_position().x0, abs=1e-6)
    assert d.strip.get_position().x1 == pytest.approx(d.heatmap.get_position().x1, abs=1e-6)
    labels = [t.get_text() for t in d.heatmap.get_xticklabels()]
    assert labels == [t.get_text() for t in d.strip.get_xticklabels()]
    assert labels == [str(int(pred.frame_idx[5 * j + 2])) for j in range(8)]


def test_plot_attention_writes_a_png(tiny_video, tmp_path):
    from PIL import Image

    out = plot_attention(fake_prediction(tiny_video), str(tmp_path / "sub" / "a.png"), "t", "all")
    assert Image.open(out).size[0] >= 800


def test_plot_attention_without_attention_is_an_error(tiny_video, tmp_path):
    pred = fake_prediction(tiny_video)
    pred.attention = None
    with pytest.raises(ValueError, match="return_attention"):
        plot_attention(pred, str(tmp_path / "a.png"))


def test_spread_over_classes_goes_round_robin():
    labels = ["a", "a", "a", "b", "b", "c", "a", "d"]
    assert spread_over_classes(labels, 6) == [0, 3, 5, 7, 1, 4]  # a b c d, then a b
    assert spread_over_classes(labels, 3) == [0, 3, 5]
    assert spread_over_classes(labels, 0) == [0, 3, 5, 7, 1, 4, 2, 6]  # all of them, still spread
    assert spread_over_classes(labels, 100) == spread_over_classes(labels, 0)
    assert spread_over_classes([2, 2, 1, 1], 2) == [0, 2]  # classes in the order they first appear
    assert spread_over_classes([], 5) == []
