"""Which frames of a video form a clip (paper sec. 4.1). Pure index arithmetic on (number of frames, fps).

- Training clip: a random start, a temporal footprint of DATA.TEMPORAL_FOOTPRINT seconds (or PySlowFast's
  NUM_FRAMES x SAMPLING_RATE / TARGET_FPS), subsampled uniformly to NUM_FRAMES frames. Seconds are seconds
  at any fps: the footprint covers `seconds x fps` frames of the file.
- Multi-view test: NUM_ENSEMBLE_VIEWS clips of the same footprint, the k-th starting at (k + 1/2) / K of the
  possible start range, so the clips spread uniformly over the whole video (K = 1 gives the middle clip).
- Full video: TEST.FULL_VIDEO_FRAMES frames spread uniformly over every frame of the video, sub-sampling
  long videos and repeating frames of short ones.

Videos shorter than the footprint: "clamp" (DATA.SHORT_VIDEO_MODE) repeats the last frame for positions past
the end; "loop" continues from the first frame again.
"""
import numpy as np

PROTOCOLS = ("train_clip", "single_view", "multi_view", "full_video")


def footprint_seconds(cfg) -> float:
    d = cfg.DATA
    return d.TEMPORAL_FOOTPRINT if d.TEMPORAL_FOOTPRINT > 0 else d.NUM_FRAMES * d.SAMPLING_RATE / d.TARGET_FPS


def fit_to_video(indices: np.ndarray, num_frames: int, mode: str = "clamp") -> np.ndarray:
    """Map positions past the end of a short video back into it."""
    if mode == "loop":
        return np.mod(indices, num_frames)
    if mode != "clamp":
        raise ValueError(f"DATA.SHORT_VIDEO_MODE must be 'clamp' or 'loop', got {mode!r}")
    return np.clip(indices, 0, num_frames - 1)


def _clip_from(start: float, span: float, num_out: int) -> np.ndarray:
    return np.floor(start + np.arange(num_out) * span / num_out).astype(np.int64)


def train_clip_indices(num_frames: int, fps: float, num_out: int, seconds: float, rng: np.random.Generator,
                       mode: str = "clamp") -> np.ndarray:
    span = seconds * fps
    start = rng.uniform(0.0, max(num_frames - span, 0.0))
    return fit_to_video(_clip_from(start, span, num_out), num_frames, mode)


def view_clip_indices(num_frames: int, fps: float, num_out: int, seconds: float, view: int, num_views: int,
                      mode: str = "clamp") -> np.ndarray:
    if not 0 <= view < num_views:
        raise ValueError(f"view {view} out of range for {num_views} views")
    span = seconds * fps
    start = max(num_frames - span, 0.0) * (view + 0.5) / num_views
    return fit_to_video(_clip_from(start, span, num_out), num_frames, mode)


def full_video_indices(num_frames: int, num_out: int) -> np.ndarray:
    pos = np.floor((np.arange(num_out) + 0.5) * num_frames / num_out).astype(np.int64)
    return np.clip(pos, 0, num_frames - 1)
