"""The paper's Fig. 3: the [CLS] token's attention weights in the first Longformer layer over the frames,
drawn under a strip of the same frames (per head, or averaged over heads).

Layout: one attention cell per sampled frame (`prediction.frame_idx`), cell i spanning x in [i, i + 1] of a
shared x axis, and the thumbnail of that frame drawn over the same span in the strip above, so that every cell
sits under its frame. The colour scale is fixed to the attention probability range [0, 1], so pictures of
different videos compare.
"""

import math
from collections.abc import Hashable, Sequence
from typing import NamedTuple

import numpy as np

from vtn.video.decoder import PyAVDecoder
from vtn.visualization.figures import save_figure

CMAP = "viridis"


def cls_attention_over_frames(attention: list, layer: int = 0) -> np.ndarray:
    """(heads, T): the [CLS] row of `layer`, without the [CLS] column, renormalised over the frames."""
    a = attention[layer][:, 1:].numpy()
    return a / np.clip(a.sum(axis=1, keepdims=True), 1e-12, None)


def spread_over_classes(labels: Sequence[Hashable], limit: int = 0) -> list[int]:
    """Positions of at most `limit` items (0: all), taken round-robin over the labels: the first item of every
    label in the order the labels first appear, then the second of every label, and so on (csv order is kept
    inside a label). `--csv FILE --limit 6` thus draws six classes rather than six videos of the first one."""
    by_label = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    queues = list(by_label.values())
    wanted = len(labels) if limit <= 0 else min(limit, len(labels))
    picked, depth = [], 0
    while len(picked) < wanted:
        for q in queues:
            if depth < len(q) and len(picked) < wanted:
                picked.append(q[depth])
        depth += 1
    return picked


class AttentionFigure(NamedTuple):
    """What `build_attention_figure` draws: the figure, its frame strip and heatmap axes, and the colour bar."""

    fig: object
    strip: object
    heatmap: object
    colorbar: object


def _thumbnail_cells(num_cells: int, max_thumbnails: int) -> list[range]:
    """Groups of consecutive cells that share one thumbnail: one cell each up to `max_thumbnails` cells."""
    step = max(1, math.ceil(num_cells / max(1, max_thumbnails)))
    return [range(s, min(s + step, num_cells)) for s in range(0, num_cells, step)]


def _decode_thumbnails(prediction, indices: np.ndarray, thumb_height: int):
    """{frame index: (h, w, 3) uint8} for the frames at `indices` (frames the decoder misses are left out)."""
    info = prediction.info
    width = max(1, round(info.width * thumb_height / max(1, info.height)))
    frames, got = PyAVDecoder().decode(prediction.path, indices, size=(width, thumb_height), info=info)
    return {int(i): f for i, f in zip(got, frames)}, width


def _attention_rows(prediction, heads: str, layer: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The heatmap's rows (rows, T) with their labels, and the video frame index of each of the T cells."""
    if prediction.attention is None:
        raise ValueError("the prediction holds no attention (predict with return_attention=True)")
    if heads not in ("mean", "all"):
        raise ValueError(f"heads must be 'mean' or 'all', got {heads!r}")
    att = cls_attention_over_frames(prediction.attention, layer)
    rows = att.mean(axis=0, keepdims=True) if heads == "mean" else att
    row_labels = ["mean of heads"] if heads == "mean" else [f"head {h}" for h in range(len(att))]
    idx = np.asarray(prediction.frame_idx).astype(np.int64).reshape(-1)
    if len(idx) != rows.shape[1]:
        raise ValueError(f"{len(idx)} frame indices for {rows.shape[1]} attention cells")
    return rows, row_labels, idx


def _figure_axes(plt, num_thumbnails: int, num_rows: int, thumb_size: tuple[int, int], title: str):
    """The figure and its axes (strip, heatmap, colour bar), and the heatmap's height in inches.

    Geometry in inches: thumbnails about `cell_in` wide at the aspect ratio of `thumb_size` (width, height) in
    pixels, rows of the heatmap about 0.32 in, and a heatmap at least 0.8 in tall so the colour bar beside it stays
    readable."""
    cell_in = min(1.0, max(0.35, 14.0 / num_thumbnails))
    main_w = max(6.5, cell_in * num_thumbnails)
    thumb_w, thumb_h = thumb_size
    strip_h = min(2.5, max(0.5, main_w / num_thumbnails * thumb_h / thumb_w))
    heat_h = max(0.8, 0.32 * num_rows + 0.2)
    fig = plt.figure(figsize=(main_w + 1.9, strip_h + heat_h + 1.5 + (0.3 if title else 0.0)), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[strip_h, heat_h], width_ratios=[main_w, 0.22])
    ax_img = fig.add_subplot(grid[0, 0])
    ax_att = fig.add_subplot(grid[1, 0], sharex=ax_img)
    ax_bar = fig.add_subplot(grid[1, 1])
    return fig, ax_img, ax_att, ax_bar, heat_h


def _draw_strip(ax, frames: dict, groups: list[range], shown: list[int], idx: np.ndarray, blank: np.ndarray) -> None:
    """The strip: thumbnail j over cells groups[j] (x in [first cell, last cell + 1]); y from 0 (top) to 1. A frame
    the decoder missed is drawn as `blank`."""
    for g, cell in zip(groups, shown):
        ax.imshow(
            frames.get(int(idx[cell]), blank),
            extent=(g.start, g.stop, 1, 0),
            aspect="auto",
            interpolation="antialiased",
        )
    ax.set_xlim(0, groups[-1].stop)
    ax.set_ylim(1, 0)
    ax.set_yticks([])
    ax.set_ylabel("frames", fontsize=8)


def _draw_heatmap(ax, rows: np.ndarray, row_labels: list[str]):
    """The attention cells, cell i over x in [i, i + 1], on the fixed scale [0, 1]; returns the image."""
    n = rows.shape[1]
    im = ax.imshow(
        rows, aspect="auto", cmap=CMAP, vmin=0.0, vmax=1.0, extent=(0, n, len(rows), 0), interpolation="nearest"
    )
    if n <= 40 and len(rows) <= 16:  # the values, when the cells are wide enough to hold them
        for r in range(len(rows)):
            for c in range(n):
                v = float(rows[r, c])
                ax.text(
                    c + 0.5,
                    r + 0.5,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="black" if v > 0.6 else "white",
                )
    ax.set_yticks(np.arange(len(rows)) + 0.5)
    ax.set_yticklabels(row_labels, fontsize=7)
    ax.set_ylim(len(rows), 0)
    return im


def build_attention_figure(
    prediction, title: str = "", heads: str = "mean", layer: int = 0, thumbnails: int = 32, thumb_height: int = 64
) -> AttentionFigure:
    """The figure of `plot_attention`, not saved (the caller closes it).

    `thumbnails` caps the frames drawn in the strip: up to that many cells, every cell has its own thumbnail;
    beyond, each thumbnail spans a group of consecutive cells and shows the frame of the group's middle cell.
    The x ticks, shared by the strip and the heatmap, are the video frame indices of the cells with a thumbnail.
    """
    import matplotlib  # heavy: imported only when a picture is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, row_labels, idx = _attention_rows(prediction, heads, layer)
    n = rows.shape[1]
    groups = _thumbnail_cells(n, thumbnails)
    shown = [g[len(g) // 2] for g in groups]  # the cell whose frame each thumbnail shows
    frames, thumb_w = _decode_thumbnails(prediction, idx[shown], thumb_height)
    fig, ax_img, ax_att, ax_bar, heat_h = _figure_axes(plt, len(groups), len(rows), (thumb_w, thumb_height), title)
    _draw_strip(ax_img, frames, groups, shown, idx, np.full((thumb_height, thumb_w, 3), 128, dtype=np.uint8))
    im = _draw_heatmap(ax_att, rows, row_labels)
    for g in groups[1:]:  # thumbnail boundaries, through both axes
        ax_img.axvline(g.start, color="white", lw=0.8)
        ax_att.axvline(g.start, color="white", lw=0.8)

    # Shared x ticks (sharex: one locator for both axes): the frame index in the video of each thumbnail's cell.
    ax_att.set_xticks([c + 0.5 for c in shown], [str(int(idx[c])) for c in shown])
    ax_img.tick_params(axis="x", labelbottom=True, labelsize=7, length=2)
    ax_att.tick_params(axis="x", labelsize=7)
    ax_att.set_xlabel(
        f"frame index in the video  (layer {layer + 1} [CLS] attention over the {n} sampled frames)", fontsize=8
    )
    bar = fig.colorbar(im, cax=ax_bar)
    bar.set_ticks([0.0, 0.5, 1.0] if heat_h < 1.6 else [0.0, 0.25, 0.5, 0.75, 1.0])
    bar.ax.tick_params(labelsize=7)
    bar.set_label("attention", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return AttentionFigure(fig, ax_img, ax_att, bar)


def plot_attention(
    prediction,
    output: str,
    title: str = "",
    heads: str = "mean",
    layer: int = 0,
    thumbnails: int = 32,
    thumb_height: int = 64,
) -> str:
    """Draw `build_attention_figure` to the PNG `output`; returns `output`."""
    drawn = build_attention_figure(prediction, title, heads, layer, thumbnails, thumb_height)
    return save_figure(drawn.fig, output, dpi=100)
