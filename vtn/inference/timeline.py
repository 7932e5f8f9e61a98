"""Timelines of long videos: top-k classes of consecutive windows of `seconds` each (demo_net.py --timeline).

Sampling: each window gets DATA.NUM_FRAMES frames spread evenly over its `seconds` (the instants
`start + k * seconds / NUM_FRAMES`, the positions a test clip of that footprint would take), so the whole video
is sampled at a fixed rate of NUM_FRAMES / seconds frames per second. A window then looks like a training clip
when `seconds` is the model's DATA.TEMPORAL_FOOTPRINT. The last window stops at the end of the video and keeps only
the instants inside it (fewer frames).

Cost and memory: the backbone runs once per sampled frame, streamed in chunks of VTN.BACKBONE_CHUNK_SIZE frames
(`VideoPredictor.embed`); only the `(T, D)` embeddings are kept, and each window's temporal-encoder pass takes
its own rows of them, with the frame indices of the original video (the position embedding sees where each frame
was). Peak memory is one decode chunk plus T x D floats plus one batch of windows, whatever the video's length.
"""

import csv
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from vtn.datasets.sampling import frames_at
from vtn.utils.errors import ConfigError
from vtn.utils.files import atomic_write
from vtn.video.decoder import VideoDecodeError, VideoInfo
from vtn.visualization.timeline_plot import mmss

WINDOW_BATCH = 32  # windows per temporal-encoder pass


@dataclass
class TimelineWindow:
    index: int
    start_s: float
    end_s: float
    frame_idx: torch.Tensor  # (n,) frame indices in the video
    scores: torch.Tensor  # (NUM_CLASSES,) softmax scores

    def topk(self, k: int = 5) -> list:
        values, ids = self.scores.topk(min(k, self.scores.numel()))
        return list(zip(ids.tolist(), values.tolist()))


@dataclass
class Timeline:
    path: str
    info: VideoInfo
    seconds: float
    frames_per_window: int
    windows: list = field(default_factory=list)

    @property
    def duration(self) -> float:
        return video_duration(self.info)

    def scores(self) -> torch.Tensor:
        """(W, NUM_CLASSES) scores of the windows, in order."""
        return torch.stack([w.scores for w in self.windows])


def video_duration(info: VideoInfo) -> float:
    if info.duration and info.duration > 0:
        return float(info.duration)
    return info.num_frames / info.fps if info.fps else 0.0


def check_seconds(seconds) -> float:
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        value = float("nan")
    if not value > 0 or not np.isfinite(value):
        raise ConfigError(f"--timeline {seconds!r}: expected a window length in seconds > 0")
    return value


def window_plan(info: VideoInfo, seconds: float, frames_per_window: int):
    """The windows of the video and the frames they sample.

    Returns `bounds` (W, 2) start and end seconds, `indices` (M,) frame indices (sorted, repeats possible when the
    rate exceeds the video's) and `window_of` (M,) the window of each."""
    seconds = check_seconds(seconds)
    if frames_per_window < 1:
        raise ConfigError(f"DATA.NUM_FRAMES = {frames_per_window}: a timeline window needs at least one frame")
    duration = video_duration(info)
    if info.num_frames < 1 or duration <= 0:
        raise VideoDecodeError("the video has no frames: no timeline")
    num = max(1, int(np.ceil(duration / seconds - 1e-9)))
    starts = np.arange(num) * seconds
    bounds = np.stack([starts, np.minimum(starts + seconds, duration)], axis=1)
    instants = (starts[:, None] + np.arange(frames_per_window)[None] * seconds / frames_per_window).reshape(-1)
    window_of = np.repeat(np.arange(num), frames_per_window)
    inside = instants < duration
    instants, window_of = instants[inside], window_of[inside]
    indices = frames_at(instants * info.fps, info.num_frames, "clamp", info.fps, info.times)
    return bounds, indices, window_of


def _align(requested: np.ndarray, got: np.ndarray, window_of: np.ndarray) -> np.ndarray:
    """The window of each decoded frame: the decoder keeps the requested order and drops frames the stream lacks
    (every copy of them)."""
    present = np.isin(requested, got)
    kept = window_of[present]
    if len(kept) != len(got):  # not a subsequence: should not happen with iter_frames' contract
        raise VideoDecodeError(f"decoded {len(got)} frames for {int(present.sum())} requested ones")
    return kept


@torch.no_grad()
def score_windows(model, emb: torch.Tensor, frame_idx: torch.Tensor, groups: list, batch: int = WINDOW_BATCH):
    """Softmax scores of each group of rows of `emb (T, D)` (one group per window), windows of equal length batched
    together: `forward_embeddings(emb[rows][None], frame_idx[rows][None])` for each."""
    device = emb.device
    out: list = [None] * len(groups)
    by_len: dict = {}
    for i, rows in enumerate(groups):
        by_len.setdefault(len(rows), []).append(i)
    for _, members in sorted(by_len.items()):
        for s in range(0, len(members), batch):
            part = members[s : s + batch]
            rows = torch.stack([torch.as_tensor(groups[i], device=device) for i in part])
            logits = model.forward_embeddings(emb[rows], frame_idx.to(device)[rows])
            probs = logits.float().softmax(-1).cpu()
            for j, i in enumerate(part):
                out[i] = probs[j]
    return out


@torch.no_grad()
def compute_timeline(predictor, path: str, seconds: float, frames_per_window: Optional[int] = None) -> Timeline:
    """Top classes over time: see the module's docstring. `predictor` is a `VideoPredictor`."""
    seconds = check_seconds(seconds)
    n = int(frames_per_window or predictor.cfg.DATA.NUM_FRAMES)
    info = predictor.decoder.probe(path)
    bounds, indices, window_of = window_plan(info, seconds, n)
    emb, got = predictor.embed(path, indices, info)  # chunked: bounded by VTN.BACKBONE_CHUNK_SIZE frames
    kept = _align(indices, got.numpy(), window_of)
    order = [np.flatnonzero(kept == w) for w in range(len(bounds))]
    live = [w for w in range(len(bounds)) if len(order[w])]  # a window whose frames all failed is left out
    scores = score_windows(predictor.model, emb, got, [order[w] for w in live])
    windows = [
        TimelineWindow(w, float(bounds[w, 0]), float(bounds[w, 1]), got[order[w]], s) for w, s in zip(live, scores)
    ]
    return Timeline(path, info, seconds, n, windows)


def window_rows(timeline: Timeline, label, k: int = 5) -> list:
    """One dict per window: start_s, end_s, num_frames and `top` [{"label", "score"}, ...] best first."""
    return [
        {
            "start_s": w.start_s,
            "end_s": w.end_s,
            "num_frames": len(w.frame_idx),
            "top": [{"label": label(c), "score": float(s)} for c, s in w.topk(k)],
        }
        for w in timeline.windows
    ]


def csv_header(k: int) -> list:
    cols = ["window", "start_s", "end_s", "start", "end", "num_frames"]
    for r in range(1, k + 1):
        cols += [f"label_{r}", f"score_{r}"]
    return cols


def write_csv(timeline: Timeline, path: str, label, k: int = 5) -> str:
    """Per-window top-k: columns window, start_s, end_s, start, end (mm:ss), num_frames, label_1, score_1, ...
    (fewer classes than k leave the last columns empty)."""

    def write(f) -> None:
        writer = csv.writer(f)
        writer.writerow(csv_header(k))
        for w in timeline.windows:
            row = [w.index, f"{w.start_s:.3f}", f"{w.end_s:.3f}", mmss(w.start_s), mmss(w.end_s), len(w.frame_idx)]
            top = w.topk(k)
            for r in range(k):
                row += [label(top[r][0]), f"{top[r][1]:.6f}"] if r < len(top) else ["", ""]
            writer.writerow(row)

    atomic_write(path, write, binary=False)
    return path


def describe_windows(timeline: Timeline, label, k: int = 3) -> list:
    """One printable line per window: `mm:ss-mm:ss  name (0.91), name (0.05), ...`."""
    return [
        f"{mmss(w.start_s)}-{mmss(w.end_s)}  " + ", ".join(f"{label(c)} ({s:.3f})" for c, s in w.topk(k))
        for w in timeline.windows
    ]
