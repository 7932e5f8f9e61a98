"""Mixup / cutmix of clip batches: whole-clip blends, one box through every frame, exact soft targets."""

import random

import numpy as np
import pytest
import torch

from vtn.config import ConfigError, get_cfg, load_config
from vtn.datasets.mixup import VideoMixup, build_mixup

SHAPE = (3, 4, 16, 20)  # C, T, H, W


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def constant_clips(batch):
    """Clip i holds the value i + 1 everywhere: any mixing shows in the values."""
    return torch.arange(1.0, batch + 1).view(batch, 1, 1, 1, 1).expand(batch, *SHAPE).clone()


def test_mixup_blends_whole_clips_and_targets_match_lambda():
    mix = VideoMixup(mixup_alpha=0.8, cutmix_alpha=0.0, prob=1.0, label_smoothing=0.0, num_classes=6)
    labels = torch.tensor([0, 1, 2, 3])
    for seed in range(5):
        seed_all(seed)
        clips = constant_clips(4)
        out, targets = mix(clips.clone(), labels)
        assert out.shape == clips.shape and targets.shape == (4, 6) and targets.dtype == torch.float32
        # clip 0 = lam * 1 + (1 - lam) * 4 everywhere
        lam = (4.0 - out[0, 0, 0, 0, 0].item()) / 3.0
        assert 0.0 < lam < 1.0
        for i in range(4):
            j = 3 - i
            expected = lam * (i + 1) + (1 - lam) * (j + 1)
            assert torch.allclose(out[i], torch.full(SHAPE, expected), atol=1e-5)
            assert targets[i, i].item() == pytest.approx(lam, abs=1e-5)
            assert targets[i, j].item() == pytest.approx(1 - lam, abs=1e-5)
        assert torch.allclose(targets.sum(1), torch.ones(4))


def test_cutmix_pastes_one_box_through_every_frame_and_lambda_is_the_kept_area():
    mix = VideoMixup(mixup_alpha=0.0, cutmix_alpha=1.0, prob=1.0, label_smoothing=0.0, num_classes=6)
    labels = torch.tensor([5, 4, 3, 2])
    boxes = 0
    for seed in range(8):
        seed_all(seed)
        clips = constant_clips(4)
        out, targets = mix(clips.clone(), labels)
        pasted = out != clips  # (B, C, T, H, W)
        mask = pasted[0, 0, 0]
        assert (pasted == mask).all(), f"seed {seed}: the box differs between clips, channels or frames"
        if mask.any():
            boxes += 1
            rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
            assert mask.sum() == len(rows) * len(cols), "the pasted region is one rectangle"
            assert torch.equal(out[0][:, :, mask], torch.full_like(out[0][:, :, mask], 4.0)), "pasted from clip 3"
        kept = 1.0 - mask.float().mean().item()
        for i in range(4):
            assert targets[i, labels[i]].item() == pytest.approx(kept, abs=1e-6)
            assert targets[i, labels[3 - i]].item() == pytest.approx(1 - kept, abs=1e-6)
    assert boxes >= 5


@pytest.mark.parametrize("switch_prob, cutmix", [(0.0, False), (1.0, True)])
def test_switch_prob_chooses_between_mixup_and_cutmix(switch_prob, cutmix):
    mix = VideoMixup(mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=switch_prob, label_smoothing=0.0, num_classes=4)
    seed_all(0)
    clips = constant_clips(2)
    pasted = 0
    for _ in range(5):
        out, _ = mix(clips.clone(), torch.tensor([0, 1]))
        values = out[0].unique()
        # mixup: one blended value; cutmix: the clip's own value and, where the box lies, the other clip's
        if cutmix:
            assert set(values.tolist()) <= {1.0, 2.0}
            pasted += set(values.tolist()) == {1.0, 2.0}
        else:
            assert values.numel() == 1 and values.item() not in (1.0, 2.0)
    assert not cutmix or pasted >= 3  # boxes were really pasted (a draw may clip one to nothing now and then)


def test_prob_zero_leaves_frames_and_gives_exact_smoothed_targets():
    mix = VideoMixup(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.0, label_smoothing=0.1, num_classes=10)
    clips = torch.randn(4, *SHAPE)
    labels = torch.tensor([0, 3, 9, 3])
    out, targets = mix(clips.clone(), labels)
    assert torch.equal(out, clips)
    expected = torch.full((4, 10), 0.01)
    expected[torch.arange(4), labels] = 0.91  # 1 - 0.1 + 0.1 / 10
    assert torch.allclose(targets, expected, atol=1e-7)


def test_smoothed_mixed_targets_sum_to_one_and_keep_the_floor():
    mix = VideoMixup(mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0, label_smoothing=0.1, num_classes=10)
    seed_all(1)
    _, targets = mix(torch.randn(6, *SHAPE), torch.tensor([0, 1, 2, 3, 4, 5]))
    assert torch.allclose(targets.sum(1), torch.ones(6))
    assert torch.allclose(targets[:, 6:], torch.full((6, 4), 0.01))


def test_some_batches_stay_unmixed_with_prob_below_one():
    mix = VideoMixup(mixup_alpha=0.8, cutmix_alpha=0.0, prob=0.5, label_smoothing=0.0, num_classes=4)
    seed_all(0)
    clips = constant_clips(2)
    unmixed = sum(torch.equal(mix(clips.clone(), torch.tensor([0, 1]))[0], clips) for _ in range(100))
    assert 30 < unmixed < 70


@pytest.mark.parametrize("batch", [1, 3, 5])
def test_odd_batch_mixes_all_but_the_last_clip(batch):
    mix = VideoMixup(mixup_alpha=0.8, cutmix_alpha=0.0, prob=1.0, label_smoothing=0.1, num_classes=8)
    seed_all(0)
    clips = constant_clips(batch)
    labels = torch.arange(batch)
    out, targets = mix(clips.clone(), labels)
    assert torch.equal(out[-1], clips[-1])
    expected_last = torch.full((8,), 0.1 / 8)
    expected_last[batch - 1] = 1 - 0.1 + 0.1 / 8
    assert torch.allclose(targets[-1], expected_last)
    if batch > 1:
        assert not torch.equal(out[:-1], clips[:-1])
        assert targets[0, batch - 2] > 0.1, "clip 0 pairs with clip B-2, the last of the mixed part"


def test_non_contiguous_frames_are_mixed_in_the_returned_tensor():
    mix = VideoMixup(mixup_alpha=0.8, cutmix_alpha=0.0, prob=1.0, label_smoothing=0.0, num_classes=4)
    seed_all(0)
    clips = constant_clips(2).permute(0, 2, 1, 3, 4).contiguous().permute(0, 2, 1, 3, 4)  # (B, C, T, H, W) view
    assert not clips.is_contiguous()
    out, targets = mix(clips, torch.tensor([0, 1]))
    lam = targets[0, 0].item()
    assert torch.allclose(out[0], torch.full(SHAPE, lam * 1 + (1 - lam) * 2), atol=1e-5)


def test_bad_input_is_rejected():
    mix = VideoMixup(num_classes=4)
    with pytest.raises(ValueError, match="NUM_CLASSES = 4"):
        mix(torch.zeros(2, *SHAPE), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        mix(torch.zeros(2, 3, 16, 16), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="labels"):
        mix(torch.zeros(2, *SHAPE), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="both 0"):
        VideoMixup(mixup_alpha=0.0, cutmix_alpha=0.0)


def test_build_mixup_from_config():
    assert build_mixup(load_config()) is None
    cfg = load_config(
        None,
        [
            "MIXUP.ENABLE",
            True,
            "MIXUP.ALPHA",
            0.4,
            "MIXUP.CUTMIX_ALPHA",
            0.0,
            "MIXUP.PROB",
            0.7,
            "MIXUP.SWITCH_PROB",
            0.2,
            "MIXUP.LABEL_SMOOTH_VALUE",
            0.05,
            "MODEL.NUM_CLASSES",
            12,
        ],
    )
    mix = build_mixup(cfg)
    assert isinstance(mix, VideoMixup)
    m = mix.mixup
    assert (m.mixup_alpha, m.cutmix_alpha, m.mix_prob, m.switch_prob) == (0.4, 0.0, 0.7, 0.2)
    assert (m.label_smoothing, m.num_classes, m.mode) == (0.05, 12, "batch")
    _, targets = mix(torch.zeros(2, *SHAPE), torch.tensor([0, 11]))
    assert targets.shape == (2, 12)


def test_nothing_to_mix_fails_naming_the_keys():
    with pytest.raises(ConfigError, match="MIXUP.ENABLE = True"):
        load_config(None, ["MIXUP.ENABLE", True, "MIXUP.ALPHA", 0.0, "MIXUP.CUTMIX_ALPHA", 0.0])
    cfg = get_cfg()  # not validated: the builder still names the group
    cfg.MIXUP.ENABLE, cfg.MIXUP.ALPHA, cfg.MIXUP.CUTMIX_ALPHA = True, 0.0, 0.0
    with pytest.raises(ConfigError, match="MIXUP"):
        build_mixup(cfg)
