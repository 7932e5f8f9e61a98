"""The paper's Fig. 3: the [CLS] token's attention weights in the first Longformer layer over the frames,
drawn under a strip of the same frames (per head, or averaged over heads)."""
import os
from typing import List, Optional

import numpy as np

from vtn.datasets.decoder import PyAVDecoder


def cls_attention_over_frames(attention: List, layer: int = 0) -> np.ndarray:
    """(heads, T): the [CLS] row of `layer`, without the [CLS] column, renormalised over the frames."""
    a = attention[layer][:, 1:].numpy()
    return a / np.clip(a.sum(axis=1, keepdims=True), 1e-12, None)


def plot_attention(prediction, output: str, title: str = "", heads: str = "mean", layer: int = 0,
                   thumbnails: int = 16, thumb_height: int = 64) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if prediction.attention is None:
        raise ValueError("the prediction holds no attention (predict with return_attention=True)")
    att = cls_attention_over_frames(prediction.attention, layer)
    rows = att.mean(axis=0, keepdims=True) if heads == "mean" else att
    labels = ["mean of heads"] if heads == "mean" else [f"head {h}" for h in range(len(att))]
    idx = prediction.frame_idx.numpy()
    shown = np.unique(np.linspace(0, len(idx) - 1, min(thumbnails, len(idx))).round().astype(int))
    info = prediction.info
    width = max(1, int(round(info.width * thumb_height / info.height)))
    frames, _ = PyAVDecoder().decode(prediction.path, idx[shown], size=(width, thumb_height))
    strip = np.concatenate(list(frames), axis=1)
    fig_w = max(8.0, 1.0 * len(shown))
    fig, (ax_img, ax_att) = plt.subplots(2, 1, figsize=(fig_w, 2.0 + 0.35 * len(rows)),
                                         gridspec_kw={"height_ratios": [2.0, 0.3 + 0.35 * len(rows)]})
    ax_img.imshow(strip)
    ax_img.set_xticks([(i + 0.5) * width for i in range(len(shown))])
    ax_img.set_xticklabels([str(int(i)) for i in idx[shown]], fontsize=7)
    ax_img.set_yticks([])
    ax_img.set_xlabel("frame index in the video", fontsize=8)
    im = ax_att.imshow(rows, aspect="auto", cmap="viridis", extent=(0, len(idx), len(rows), 0))
    ax_att.set_yticks(np.arange(len(rows)) + 0.5)
    ax_att.set_yticklabels(labels, fontsize=7)
    ax_att.set_xlabel(f"sampled frames (layer {layer + 1} [CLS] attention; warm = high)", fontsize=8)
    bar = fig.colorbar(im, ax=ax_att, fraction=0.02, pad=0.01)
    bar.ax.tick_params(labelsize=6)
    bar.set_ticks([float(rows.min()), float(rows.max())])  # two ticks: more overlap on a one-row bar
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output)) or ".", exist_ok=True)
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output
