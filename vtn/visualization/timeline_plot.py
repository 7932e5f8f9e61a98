"""A timeline picture (demo_net.py --timeline S --plot PATH): the scores of the top classes per window over time
(time axis in mm:ss), above a strip of a few frames placed at their times in the video."""

import os

import numpy as np

from vtn.video.decoder import PyAVDecoder
from vtn.visualization.figures import save_figure


def mmss(seconds: float) -> str:
    """`mm:ss` (`h:mm:ss` from an hour on)."""
    s = int(round(seconds))
    h, m = divmod(s, 3600)
    m, s = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def top_classes(scores, num: int) -> list:
    """The classes to draw: each window's top-1 first (most windows first), then the highest mean scores."""
    scores = np.asarray(scores)
    wins = np.bincount(scores.argmax(1), minlength=scores.shape[1])
    order = sorted(range(scores.shape[1]), key=lambda c: (-wins[c], -scores[:, c].mean()))
    return order[: min(num, scores.shape[1])]


def strip_frames(path: str, duration: float, num: int = 8, height: int = 64, info=None):
    """`num` frames at the centres of `num` equal spans of the video (uint8 (H, W, 3) strip), decoded one by one
    at their own size (a few frames: no memory to speak of)."""
    dec = PyAVDecoder()
    info = info or dec.probe(path)
    times = (np.arange(num) + 0.5) * duration / num
    if info.times is None:
        idx = np.floor(times * info.fps).astype(np.int64)
    else:
        idx = np.searchsorted(np.asarray(info.times), times, side="right") - 1
    idx = np.unique(np.clip(idx, 0, info.num_frames - 1))
    width = max(1, int(round(info.width * height / max(info.height, 1))))
    frames, _ = dec.decode(path, idx, size=(width, height), info=info)
    return np.concatenate(list(frames), axis=1)


def plot_timeline(timeline, output: str, label, num_classes: int = 5, num_frames: int = 8) -> str:
    """Write the picture of `timeline` (vtn.inference.timeline.Timeline) to `output` (.png, .pdf, .svg)."""
    import matplotlib  # heavy: imported only when a picture is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    scores = timeline.scores().numpy()
    duration = timeline.duration
    fig, (ax, strip_ax) = plt.subplots(
        2, 1, figsize=(10, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}, constrained_layout=True
    )
    starts = np.array([w.start_s for w in timeline.windows])
    ends = np.array([w.end_s for w in timeline.windows])
    for c in top_classes(scores, num_classes):  # a step per window: the score holds over the window's span
        xs = np.stack([starts, ends], 1).reshape(-1)
        ys = np.repeat(scores[:, c], 2)
        ax.plot(xs, ys, label=label(c), lw=1.6)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("score")
    ax.set_title(f"{os.path.basename(timeline.path)}: top classes per {timeline.seconds:g} s window")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    strip = strip_frames(timeline.path, duration, num_frames, info=timeline.info)
    strip_ax.imshow(strip, extent=(0, duration, 0, 1), aspect="auto")
    strip_ax.set_yticks([])
    strip_ax.set_xlim(0, duration)
    strip_ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: mmss(x)))
    strip_ax.set_xlabel("time (mm:ss)")
    return save_figure(fig, output, dpi=100)
