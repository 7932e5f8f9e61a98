"""Clip-level strong augmentation (Table 3, dagger row): timm's RandAugment and random erasing, one draw per clip.

Image augmentations draw their random parameters on every call; called frame by frame they would give every
frame of a clip its own rotation, shear or erased box, which turns a clip into flicker. Here each clip gets one
draw, applied identically to all of its frames:

- `ClipRandAugment` runs timm's RandAugment on every frame with the global `random` and `numpy` generators
  reseeded, before each frame, from one seed drawn per clip (see the class for why this mechanism).
- `ClipRandomErasing` lets timm's RandomErasing erase one (C, H, W) canvas and pastes the erased pixels into
  every frame: the same box(es) with the same fill in the whole clip, like a static occluder.

All randomness comes from the global `random`, `numpy` and `torch` generators, so the data loader's seeded
workers make a run reproducible.
"""

import random
import re
from collections.abc import Sequence
from typing import Callable, Optional

import numpy as np
import torch
from PIL import Image
from timm.data.auto_augment import rand_augment_transform
from timm.data.random_erasing import RandomErasing

from vtn.config import register_check
from vtn.utils.errors import ConfigError

# Sections of a timm RandAugment string after the leading "rand" (timm 1.0's grammar): key -> value pattern.
_INT = r"\d+"
_FLOAT = r"\d+(?:\.\d+)?"
_POLICY_SECTIONS = {
    "m": _INT,  # magnitude, 0..10 (or up to mmax)
    "n": _INT,  # ops per clip
    "p": _FLOAT,  # probability of each op
    "mstd": _FLOAT,  # std of the magnitude noise (> 100: uniform in [0, m])
    "mmax": _INT,  # upper bound of the magnitude
    "inc": "[01]",  # ops whose severity increases with the magnitude
    "t": "weights|3a|3aw",  # named op set
}
_POLICY_EXAMPLE = (
    "'rand-m9-n2-mstd0.5-inc1' (sections: m<int>, n<int>, p<float>, mstd<float>, mmax<int>, inc<0|1>, "
    "t<weights|3a|3aw>)"
)

# PIL resampling filters by name; "random" lets timm pick bilinear or bicubic (still once per clip).
INTERPOLATIONS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "random": None}


def rand_augment_policy_problem(policy: str) -> Optional[str]:
    """What is wrong with a timm RandAugment string, or None when it is well formed.

    timm asserts on some mistakes and silently ignores others (a section without digits, an unknown op set);
    this check rejects both, so that a typo never trains with a policy other than the one written.
    """
    if not isinstance(policy, str):
        return f"expected a string, got {type(policy).__name__}"
    sections = policy.split("-")
    if sections[0] != "rand":
        return f"must start with 'rand' (timm RandAugment), e.g. {_POLICY_EXAMPLE}"
    seen = set()
    for section in sections[1:]:
        # Longest keys first so that "mstd0.5" is not read as "m" + "std0.5".
        for key in sorted(_POLICY_SECTIONS, key=len, reverse=True):
            if section.startswith(key) and re.fullmatch(_POLICY_SECTIONS[key], section[len(key) :]):
                break
        else:
            return f"section {section!r} is not understood; expected e.g. {_POLICY_EXAMPLE}"
        if key in seen:
            return f"section {key!r} is given twice"
        seen.add(key)
    return None


@register_check
def check_rand_augment_policy(cfg) -> None:
    """AUG.AA_TYPE must be "" or a well-formed timm RandAugment string (checked when a config is loaded)."""
    problem = rand_augment_policy_problem(cfg.AUG.AA_TYPE) if cfg.AUG.AA_TYPE != "" else None
    if problem:
        raise ConfigError(
            f'AUG.AA_TYPE = {cfg.AUG.AA_TYPE!r} is not allowed: expected "" (no RandAugment) or a timm RandAugment '
            f"string: {problem}."
        )


def _check_uint8_clip(frames: torch.Tensor) -> None:
    if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8:
        raise TypeError(
            f"ClipRandAugment expects a uint8 tensor (T, H, W, 3), got "
            f"{getattr(frames, 'dtype', type(frames).__name__)}."
        )
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"ClipRandAugment expects frames shaped (T, H, W, 3), got {tuple(frames.shape)}.")


class ClipRandAugment:
    """timm's RandAugment with one random draw per clip, applied identically to every frame.

    Mechanism: per clip, one seed is drawn from the global `random` generator. Before each frame, the global
    `random` and `numpy` generators (the only ones timm's RandAugment and its ops use) are seeded with it, so
    every frame sees the same sequence of draws: the same ops, probabilities, magnitudes, signs and
    resampling filter. Afterwards both generators are restored to where they were (advanced by the one seed
    draw), so the next clip gets a new draw and the rest of the pipeline is unaffected.

    Why reseeding rather than choosing the ops once and calling them per frame: each timm op draws again when
    called (whether to apply, the magnitude noise, the sign, the filter), so fixing the op list alone would not
    fix the op; freezing those draws would mean re-implementing timm's op logic. Reseeding keeps timm's exact
    semantics for every policy string (weighted op sets included) through its public `rand_augment_transform`.
    The generators are global, so one instance must not run in two threads at once (data-loader workers are
    processes, which is fine).

    Args:
        policy: a timm RandAugment string, e.g. "rand-m9-n2-mstd0.5-inc1".
        img_size: frame size the translate-by-pixels ops are scaled to (timm: 45% of it).
        mean: RGB mean in [0, 1]; geometric ops fill uncovered pixels with it (timm's default grey when None).
        interpolation: "bicubic" (DeiT), "bilinear" or "random" (timm picks one per clip).
        transforms: optional list of timm op names to draw from instead of the policy's set.
    """

    def __init__(
        self,
        policy: str = "rand-m9-n2-mstd0.5-inc1",
        img_size: int = 224,
        mean: Optional[Sequence[float]] = None,
        interpolation: str = "bicubic",
        transforms: Optional[list[str]] = None,
    ):
        problem = rand_augment_policy_problem(policy)
        if problem:
            raise ValueError(f"RandAugment policy {policy!r}: {problem}.")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {interpolation!r} is not one of {sorted(INTERPOLATIONS)}.")
        hparams = {"translate_const": int(img_size * 0.45)}
        hparams["img_mean"] = tuple(round(255 * m) for m in mean) if mean is not None else (128, 128, 128)
        if INTERPOLATIONS[interpolation] is not None:
            hparams["interpolation"] = INTERPOLATIONS[interpolation]
        try:
            self.transform = rand_augment_transform(policy, hparams, transforms=transforms)
        except (AssertionError, ValueError, KeyError) as e:
            raise ValueError(f"RandAugment policy {policy!r} (transforms={transforms}): timm rejects it: {e!r}.") from e
        self.policy = policy

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        _check_uint8_clip(frames)
        clip_seed = random.getrandbits(32)
        py_state, np_state = random.getstate(), np.random.get_state()
        out = []
        try:
            for frame in frames.cpu().numpy():
                random.seed(clip_seed)
                np.random.seed(clip_seed)
                out.append(np.asarray(self.transform(Image.fromarray(frame)), dtype=np.uint8))
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        if not out:
            return frames
        return torch.from_numpy(np.stack(out)).to(frames.device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(policy={self.policy!r})"


class ClipRandomErasing:
    """timm's RandomErasing on a normalised clip (C, T, H, W): the same box(es) and fill in every frame.

    timm's semantics: with probability `prob` a clip is erased by 1..`count` boxes (the number drawn per clip;
    the area of each box is scaled down by that number), each of 2%..33% of the frame area and aspect ratio
    0.3..3.3. `mode` fills a box with zeros ("const"), one normal random value per channel ("rand") or normal
    noise per pixel ("pixel"). The fill is drawn once per clip and is the same in every frame, so the box is a
    static occluder rather than flickering noise that the temporal encoder could tell apart from the video.

    Mechanism: timm erases a (C, H, W) canvas of NaNs; the pixels it wrote (the box and its fill) are copied into
    every frame. Works in place on `frames` and returns it.
    """

    def __init__(self, prob: float = 0.25, mode: str = "pixel", count: int = 1):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"random-erasing probability must be in [0, 1], got {prob!r}.")
        if mode not in ("const", "rand", "pixel"):
            raise ValueError(f"random-erasing mode {mode!r} is not one of 'const', 'rand', 'pixel'.")
        if not (isinstance(count, int) and count >= 1):
            raise ValueError(f"random-erasing count must be an integer >= 1, got {count!r}.")
        self.prob, self.mode, self.count = prob, mode, count
        self.eraser = RandomErasing(probability=prob, mode=mode, max_count=count, device="cpu")

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if not isinstance(frames, torch.Tensor) or not frames.is_floating_point():
            raise TypeError(
                f"ClipRandomErasing expects a normalised float tensor (C, T, H, W), got "
                f"{getattr(frames, 'dtype', type(frames).__name__)}."
            )
        if frames.dim() != 4:
            raise ValueError(f"ClipRandomErasing expects frames shaped (C, T, H, W), got {tuple(frames.shape)}.")
        if self.prob == 0.0:
            return frames
        channels, _, height, width = frames.shape
        canvas = torch.full((channels, height, width), float("nan"), dtype=frames.dtype)
        self.eraser(canvas)
        erased = ~torch.isnan(canvas[0])
        if not erased.any():
            return frames
        # Only the bounding region of the box(es) is rewritten; the fill broadcasts over time.
        rows, cols = erased.any(1).nonzero().flatten(), erased.any(0).nonzero().flatten()
        region = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
        fill = canvas[(slice(None),) + region].unsqueeze(1).to(frames.device)  # (C, 1, h, w)
        target = frames[(slice(None), slice(None)) + region]  # (C, T, h, w), a view
        target.copy_(torch.where(erased[region].to(frames.device), fill, target))
        return frames

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prob={self.prob}, mode={self.mode!r}, count={self.count})"


def build_train_augmentations(cfg) -> tuple[Optional[Callable], Optional[Callable]]:
    """(before_normalize, after_normalize) for training clips, each a callable or None.

    before_normalize: ClipRandAugment on uint8 (T, H, W, 3) frames after crop and flip (None when AUG.ENABLE is
    off or AUG.AA_TYPE is empty). after_normalize: ClipRandomErasing on the normalised (C, T, H, W) clip (None
    when AUG.ENABLE is off or AUG.RE_PROB is 0).
    """
    if not cfg.AUG.ENABLE:
        return None, None
    before = after = None
    if cfg.AUG.AA_TYPE:
        try:
            before = ClipRandAugment(
                cfg.AUG.AA_TYPE,
                img_size=cfg.DATA.TRAIN_CROP_SIZE,
                mean=cfg.DATA.MEAN,
                interpolation=cfg.AUG.INTERPOLATION,
            )
        except ValueError as e:
            raise ConfigError(f"AUG.AA_TYPE = {cfg.AUG.AA_TYPE!r} cannot be used: {e}") from e
    if cfg.AUG.RE_PROB > 0:
        try:
            after = ClipRandomErasing(cfg.AUG.RE_PROB, cfg.AUG.RE_MODE, cfg.AUG.RE_COUNT)
        except ValueError as e:
            raise ConfigError(
                f"AUG.RE_PROB / AUG.RE_MODE / AUG.RE_COUNT = {cfg.AUG.RE_PROB!r} / {cfg.AUG.RE_MODE!r} / "
                f"{cfg.AUG.RE_COUNT!r} cannot be used: {e}"
            ) from e
    return before, after
