"""Spatial transforms of a clip (paper sec. 4.1), with the same parameters for every frame of the clip.

The resize happens while decoding (the decoder converts each kept frame straight to the target size), then
crops and flips act on the uint8 `(T, H, W, 3)` array, and `to_normalized_tensor` gives the float
`(C, T, H, W)` model input.

- Training: short side to a random size in DATA.TRAIN_JITTER_SCALES, a random DATA.TRAIN_CROP_SIZE square
  crop, a random horizontal flip (DATA.RANDOM_FLIP).
- Testing: short side to DATA.TEST_SCALE, DATA.TEST_CROP_SIZE crops: with 3 crops, left / center / right for
  landscape frames and top / center / bottom for portrait ones; with 1 crop, the center.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class SpatialParams:
    """Where a clip's frames are resized to and cropped: the same for all its frames."""

    width: int  # size after the resize
    height: int
    x0: int  # crop origin and size
    y0: int
    crop: int
    flip: bool = False


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side at `short_side` and the aspect ratio kept."""
    if width <= height:
        return short_side, max(short_side, int(round(height * short_side / width)))
    return max(short_side, int(round(width * short_side / height))), short_side


def train_params(
    width: int, height: int, scales: Sequence[int], crop: int, flip: bool, rng: np.random.Generator
) -> SpatialParams:
    short = int(rng.integers(scales[0], scales[1] + 1))
    w, h = scaled_size(width, height, short)
    return SpatialParams(
        w,
        h,
        int(rng.integers(0, w - crop + 1)),
        int(rng.integers(0, h - crop + 1)),
        crop,
        bool(flip and rng.random() < 0.5),
    )


def test_params(width: int, height: int, scale: int, crop: int, spatial_idx: int, num_crops: int) -> SpatialParams:
    """Crop `spatial_idx` of `num_crops` (1: center; 3: start / center / end of the long side)."""
    w, h = scaled_size(width, height, scale)
    position = 1 if num_crops == 1 else spatial_idx  # 0 start, 1 center, 2 end
    if num_crops not in (1, 3) or not 0 <= spatial_idx < num_crops:
        raise ValueError(f"spatial crop {spatial_idx} of {num_crops} is not defined (1 or 3 crops)")
    along_x = w >= h
    x_free, y_free = w - crop, h - crop
    x0 = x_free * position // 2 if along_x else x_free // 2
    y0 = y_free // 2 if along_x else y_free * position // 2
    return SpatialParams(w, h, x0, y0, crop)


def apply_crop_flip(frames: np.ndarray, p: SpatialParams) -> np.ndarray:
    """uint8 (T, H, W, 3) at the resized size -> (T, crop, crop, 3)."""
    if frames.shape[1:3] != (p.height, p.width):
        raise ValueError(f"frames are {frames.shape[2]}x{frames.shape[1]}, expected {p.width}x{p.height}")
    out = frames[:, p.y0 : p.y0 + p.crop, p.x0 : p.x0 + p.crop]
    if p.flip:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


def normalization_table(mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """float32 (3, 256): (v / 255 - mean[c]) / std[c] for every byte value v, computed in float32 in that order."""
    values = torch.arange(256, dtype=torch.float32).div_(255.0).view(1, 256)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1)
    return values.sub(m).div_(s).numpy()


def to_normalized_tensor(
    frames: np.ndarray, mean: Sequence[float], std: Sequence[float], shared: bool = False
) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float32 (3, T, H, W) contiguous, (x / 255 - mean) / std: each byte looked up in
    `normalization_table` (the same float32 arithmetic, one pass, written in the final layout). `shared`: written
    into shared memory, where a loader worker hands it to the main process as it is (see build.collate_items)."""
    table = normalization_table(mean, std)
    out = torch.empty((3, *frames.shape[:3]), dtype=torch.float32)
    if shared:
        out.share_memory_()
    values = out.numpy()
    for c in range(3):
        np.take(table[c], frames[..., c], out=values[c], mode="clip")  # bytes are in range; "clip" skips a buffer
    return out
