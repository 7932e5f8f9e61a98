"""Mixup and cutmix of video batches with label smoothing (Table 3, dagger row), through timm's Mixup.

A batch of clips (B, C, T, H, W) is viewed as a batch of images (B, C*T, H, W): timm's batch-mode Mixup then
blends whole clips (mixup) or pastes one box, cut through every channel of every frame, from the flipped batch
(cutmix), corrects lambda for the box area clipped at the borders, and builds the smoothed mixed targets. The
view shares memory with the clip tensor, so nothing of timm's logic is rewritten here.

The engine trains on the soft targets with the loss of MODEL.LOSS_FUNC (vtn/engine/losses.py).
"""

from typing import Optional

import torch
from timm.data.mixup import Mixup, mixup_target

from vtn.utils.errors import ConfigError

__all__ = ["VideoMixup", "build_mixup"]


class VideoMixup:
    """Mixup / cutmix of a batch of clips, one lambda (and one box) per batch as in DeiT.

    Call with frames (B, C, T, H, W) float and labels (B,) int64; returns (frames, targets (B, num_classes)).
    Mixup blends clip i with clip B-1-i; cutmix pastes the same box of clip B-1-i into every frame of clip i;
    lambda is corrected to the unpasted area; targets are smoothed one-hot labels mixed by lambda. With
    probability 1 - prob the batch is left unmixed (targets still smoothed). Frames are mixed in place when
    they are contiguous; use the returned tensor.

    Odd batches: timm pairs clip i with clip B-1-i and needs an even batch. An odd batch (the last of an
    epoch, or an odd per-process batch) mixes its first B-1 clips and leaves the last one unmixed with its
    smoothed one-hot target, so a run never stops on the batch size.
    """

    def __init__(
        self,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
        num_classes: int = 400,
    ):
        if mixup_alpha < 0 or cutmix_alpha < 0 or not (mixup_alpha > 0 or cutmix_alpha > 0):
            raise ValueError(
                f"mixup_alpha ({mixup_alpha}) and cutmix_alpha ({cutmix_alpha}) must be >= 0 and not both 0."
            )
        for name, value in (("prob", prob), ("switch_prob", switch_prob)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}.")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}.")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes!r}.")
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.mixup = Mixup(
            mixup_alpha=mixup_alpha,
            cutmix_alpha=cutmix_alpha,
            prob=prob,
            switch_prob=switch_prob,
            mode="batch",
            correct_lam=True,
            label_smoothing=label_smoothing,
            num_classes=num_classes,
        )

    def _check(self, frames: torch.Tensor, labels: torch.Tensor) -> None:
        if frames.dim() != 5 or not frames.is_floating_point():
            raise ValueError(
                f"VideoMixup expects float frames (B, C, T, H, W), got {frames.dtype} {tuple(frames.shape)}."
            )
        if labels.dim() != 1 or labels.shape[0] != frames.shape[0] or labels.is_floating_point():
            raise ValueError(
                f"VideoMixup expects integer labels (B,) with B = {frames.shape[0]}, got {labels.dtype} "
                f"{tuple(labels.shape)}."
            )
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"labels must be in [0, MODEL.NUM_CLASSES = {self.num_classes}), got min {int(labels.min())}, "
                f"max {int(labels.max())}."
            )

    def __call__(self, frames: torch.Tensor, labels: torch.Tensor):
        """Mixes `frames` (on any device); `labels` may stay on the CPU (the trainer passes them so: the range
        check then costs no host sync), the targets are returned on the device of `frames`."""
        self._check(frames, labels)
        frames = frames.contiguous()
        batch, channels, time, height, width = frames.shape
        mixed = batch - batch % 2
        targets = mixup_target(labels, self.num_classes, 1.0, self.label_smoothing)
        if mixed:
            images = frames.view(batch, channels * time, height, width)[:mixed]
            _, mixed_targets = self.mixup(images, labels[:mixed])  # mixes `images`, hence `frames`, in place
            targets[:mixed] = mixed_targets
        return frames, targets.to(frames.device, non_blocking=True)

    def __repr__(self) -> str:
        m = self.mixup
        return (
            f"{type(self).__name__}(mixup_alpha={m.mixup_alpha}, cutmix_alpha={m.cutmix_alpha}, prob={m.mix_prob}, "
            f"switch_prob={m.switch_prob}, label_smoothing={m.label_smoothing}, num_classes={m.num_classes})"
        )


def build_mixup(cfg) -> Optional[VideoMixup]:
    """The configured VideoMixup, or None when MIXUP.ENABLE is False."""
    if not cfg.MIXUP.ENABLE:
        return None
    try:
        return VideoMixup(
            mixup_alpha=cfg.MIXUP.ALPHA,
            cutmix_alpha=cfg.MIXUP.CUTMIX_ALPHA,
            prob=cfg.MIXUP.PROB,
            switch_prob=cfg.MIXUP.SWITCH_PROB,
            label_smoothing=cfg.MIXUP.LABEL_SMOOTH_VALUE,
            num_classes=cfg.MODEL.NUM_CLASSES,
        )
    except ValueError as e:
        raise ConfigError(f"MIXUP.* / MODEL.NUM_CLASSES cannot be used: {e}") from e
