"""Which frames of a video form a clip (paper sec. 4.1): index arithmetic on a video's timeline.

The footprint is in seconds: a clip's frames are the frames shown at evenly spaced instants of its footprint,
whatever the file's frame rate. Positions below are counted in frames at the video's `fps`; a position p is
the instant p / fps, and the frame shown then is `floor(p)` for evenly spaced frames, or the last frame whose
display time (`times`, see decoder.VideoInfo) is at or before it for unevenly spaced ones (dropped frames,
variable frame rate). Every path (training clips, multi-view, full video, streaming, feature extraction) maps
positions to frames with `frames_at`, so the same instant gives the same frame everywhere.

- Training clip: a random start, a temporal footprint of DATA.TEMPORAL_FOOTPRINT seconds (or PySlowFast's
  NUM_FRAMES x SAMPLING_RATE / TARGET_FPS), subsampled uniformly to NUM_FRAMES frames.
- Multi-view test: NUM_ENSEMBLE_VIEWS clips of the same footprint, the k-th starting at (k + 1/2) / K of the
  possible start range, so the clips spread uniformly over the whole video (K = 1 gives the middle clip).
- Full video: TEST.FULL_VIDEO_FRAMES frames at instants spread uniformly over the video's duration,
  sub-sampling long videos and repeating frames of short ones.

Videos shorter than the footprint: "clamp" (DATA.SHORT_VIDEO_MODE) repeats the last frame for positions past
the end; "loop" continues from the first frame again.

`view_frame_indices` picks the frames of one view of a `ViewSpec` (vtn/config/views.py): the one place where a
protocol chooses among the samplers, for every dataset.
"""

from collections.abc import Sequence
from typing import Optional

import numpy as np

from vtn.config.views import ViewSpec


def fit_to_video(indices: np.ndarray, num_frames: int, mode: str = "clamp") -> np.ndarray:
    """Map positions past the end of a short video back into it."""
    if mode == "loop":
        return np.mod(indices, num_frames)
    if mode != "clamp":
        raise ValueError(f"DATA.SHORT_VIDEO_MODE must be 'clamp' or 'loop', got {mode!r}")
    return np.clip(indices, 0, num_frames - 1)


def frames_at(
    positions: np.ndarray,
    num_frames: int,
    mode: str = "clamp",
    fps: Optional[float] = None,
    times: Optional[Sequence[float]] = None,
) -> np.ndarray:
    """The frame shown at each position (in frames at `fps`); `times` (seconds) for unevenly spaced frames."""
    positions = np.asarray(positions, dtype=np.float64)
    if times is None:
        return fit_to_video(np.floor(positions).astype(np.int64), num_frames, mode)
    if mode == "loop":
        positions = np.mod(positions, num_frames)
    elif mode != "clamp":
        raise ValueError(f"DATA.SHORT_VIDEO_MODE must be 'clamp' or 'loop', got {mode!r}")
    shown = np.searchsorted(np.asarray(times), positions / fps + 1e-9, side="right") - 1
    return np.clip(shown, 0, num_frames - 1).astype(np.int64)


def _clip_positions(start: float, span: float, num_out: int) -> np.ndarray:
    return start + np.arange(num_out) * span / num_out


def train_clip_indices(
    num_frames: int,
    fps: float,
    num_out: int,
    seconds: float,
    rng: np.random.Generator,
    mode: str = "clamp",
    times: Optional[Sequence[float]] = None,
) -> np.ndarray:
    span = seconds * fps
    start = rng.uniform(0.0, max(num_frames - span, 0.0))
    return frames_at(_clip_positions(start, span, num_out), num_frames, mode, fps, times)


def view_clip_indices(
    num_frames: int,
    fps: float,
    num_out: int,
    seconds: float,
    view: int,
    num_views: int,
    mode: str = "clamp",
    times: Optional[Sequence[float]] = None,
) -> np.ndarray:
    if not 0 <= view < num_views:
        raise ValueError(f"view {view} out of range for {num_views} views")
    span = seconds * fps
    start = max(num_frames - span, 0.0) * (view + 0.5) / num_views
    return frames_at(_clip_positions(start, span, num_out), num_frames, mode, fps, times)


def full_video_indices(
    num_frames: int, num_out: int, fps: Optional[float] = None, times: Optional[Sequence[float]] = None
) -> np.ndarray:
    positions = (np.arange(num_out) + 0.5) * num_frames / num_out
    return frames_at(positions, num_frames, "clamp", fps, times)


def rate_indices(num_frames: int, fps: float, rate: float, times: Optional[Sequence[float]] = None) -> np.ndarray:
    """The frames shown at `rate` instants per second from the start (e.g. 1 fps over an hour), sorted, each once;
    a rate at or above the video's keeps every frame."""
    positions = np.arange(0, num_frames, fps / rate)
    return np.unique(frames_at(positions, num_frames, "clamp", fps, times))


def view_frame_indices(
    view: ViewSpec,
    num_frames: int,
    fps: float,
    times: Optional[Sequence[float]],
    temporal_idx: int,
    rng: Optional[np.random.Generator],
) -> np.ndarray:
    """The frames of clip `temporal_idx` of a video (`num_frames` at `fps`, display `times` or None) under `view`:
    a random training clip (drawn from `rng`), one of the view's evenly spread clips, or the whole video."""
    if view.training:
        return train_clip_indices(num_frames, fps, view.frames, view.seconds, rng, view.short_video_mode, times)
    if view.whole_video:
        return full_video_indices(num_frames, view.frames, fps, times)
    return view_clip_indices(
        num_frames, fps, view.frames, view.seconds, temporal_idx, view.clips, view.short_video_mode, times
    )
