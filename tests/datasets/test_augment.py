"""Clip-level RandAugment and random erasing: one draw per clip, the same in every frame."""

import random

import numpy as np
import pytest
import torch

from vtn.config import ConfigError, get_cfg, load_config
from vtn.datasets.augment import (
    ClipRandAugment,
    ClipRandomErasing,
    build_train_augmentations,
    rand_augment_policy_problem,
)

GEOMETRIC_OPS = ["Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"]


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def textured_frame(h=24, w=32, seed=0):
    """A frame with structure in every channel, so that rotations, shears and colour ops all show."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (h, w, 3), dtype=torch.uint8, generator=g)


def is_rectangle(mask):
    """True when the True pixels of a 2D mask fill exactly their bounding box."""
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    box = torch.zeros_like(mask)
    box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
    return bool((box == mask).all())


# ---------------------------------------------------------------- RandAugment


def test_rand_augment_keeps_shape_and_dtype_and_changes_clips():
    ra = ClipRandAugment("rand-m9-n2-mstd0.5-inc1")
    clip = torch.stack([textured_frame(seed=t) for t in range(3)])
    changed = 0
    for seed in range(10):
        seed_all(seed)
        out = ra(clip)
        assert out.shape == clip.shape and out.dtype == torch.uint8
        changed += bool((out != clip).any())
    # Each of the 2 ops applies with probability 0.5: about 3 clips in 4 change.
    assert changed >= 5


def test_rand_augment_clip_of_identical_frames_stays_identical():
    ra = ClipRandAugment("rand-m9-n2-mstd0.5-inc1")
    clip = textured_frame().expand(6, -1, -1, -1).contiguous()
    changed = 0
    for seed in range(12):
        seed_all(seed)
        out = ra(clip)
        assert (out == out[0]).all(), f"seed {seed}: frames of one clip were augmented differently"
        changed += bool((out != clip).any())
    assert changed >= 6  # the draws did apply ops (otherwise the check above is empty)


def test_rand_augment_every_frame_gets_the_op_of_the_first_frame():
    """Each frame of a clip comes out exactly as it would alone under the same draw, wherever it stands."""
    ra = ClipRandAugment("rand-m9-n3-mstd0.5-inc1")
    clip = torch.stack([textured_frame(seed=t) for t in range(4)])
    for seed in range(6):
        seed_all(seed)
        out = ra(clip)
        for t in range(len(clip)):
            seed_all(seed)
            alone = ra(clip[t : t + 1])
            assert torch.equal(out[t], alone[0]), f"seed {seed}, frame {t}"


def test_rand_augment_same_geometric_op_on_different_frames():
    """Frame 1 is frame 0 with its channels rotated; a shared geometric op keeps that relation exactly."""
    ra = ClipRandAugment("rand-m9-n2-mstd0.5-p1.0", interpolation="bilinear", transforms=GEOMETRIC_OPS)
    f0 = textured_frame()
    clip = torch.stack([f0, f0[..., [1, 2, 0]]])
    for seed in range(6):
        seed_all(seed)
        out = ra(clip)
        assert (out[0] != f0).any(), "p1.0: every clip must be warped"
        assert torch.equal(out[1], out[0][..., [1, 2, 0]]), f"seed {seed}: frames were warped differently"


def test_rand_augment_is_reproducible_and_draws_anew_per_clip():
    ra = ClipRandAugment("rand-m9-n2-mstd0.5-inc1")
    clip = torch.stack([textured_frame(seed=t) for t in range(3)])
    seed_all(3)
    first = [ra(clip) for _ in range(6)]
    seed_all(3)
    again = [ra(clip) for _ in range(6)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    distinct = {tuple(o.flatten()[::7].tolist()) for o in first}
    assert len(distinct) >= 4, "successive clips must get new draws (the global generators are restored)"


def test_rand_augment_leaves_the_global_generators_advanced_not_reset():
    ra = ClipRandAugment("rand-m9-n2")
    seed_all(0)
    ra(textured_frame()[None])
    after_call = (random.random(), float(np.random.rand()))
    seed_all(0)
    random.getrandbits(32)  # the one per-clip draw
    assert after_call == (random.random(), float(np.random.rand()))


def test_rand_augment_rejects_bad_input():
    ra = ClipRandAugment()
    with pytest.raises(TypeError, match="uint8"):
        ra(torch.zeros(2, 8, 8, 3))
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        ra(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


@pytest.mark.parametrize(
    "policy, problem",
    [
        ("rand-m9-n2-mstd0.5-inc1", None),
        ("rand-m7-mstd101-tweights", None),
        ("rand-m9-n2x", "'n2x'"),
        ("rand-m9-foo", "'foo'"),  # timm would silently ignore it
        ("rand-m9-tfoo", "'tfoo'"),  # timm would silently use its default op set
        ("rand-m9-m5", "twice"),
        ("augmix-m5", "start with 'rand'"),
        ("", "start with 'rand'"),
    ],
)
def test_policy_check(policy, problem):
    found = rand_augment_policy_problem(policy)
    if problem is None:
        assert found is None
        ClipRandAugment(policy)
    else:
        assert problem in found
        with pytest.raises(ValueError, match="RandAugment policy"):
            ClipRandAugment(policy)


# ---------------------------------------------------------------- random erasing


def test_erasing_prob_zero_is_identity():
    clip = torch.randn(3, 4, 16, 16)
    out = ClipRandomErasing(prob=0.0, mode="pixel", count=3)(clip.clone())
    assert torch.equal(out, clip)


@pytest.mark.parametrize("mode", ["const", "rand", "pixel"])
def test_erasing_same_box_and_fill_in_every_frame(mode):
    eraser = ClipRandomErasing(prob=1.0, mode=mode, count=1)
    for seed in range(5):
        seed_all(seed)
        clip = torch.randn(3, 5, 32, 40) + 100.0  # far from any fill value
        out = eraser(clip.clone())
        assert out.shape == clip.shape and out.dtype == clip.dtype
        erased = out != clip  # (C, T, H, W)
        mask = erased[0, 0]
        assert mask.any(), f"seed {seed}: prob 1 must erase"
        assert (erased == mask).all(), f"seed {seed}: the box differs between frames or channels"
        assert is_rectangle(mask)
        box = out[:, :, mask]  # (C, T, pixels)
        assert torch.equal(box, box[:, :1].expand_as(box)), "the fill must be the same in every frame"
        if mode == "const":
            assert (box == 0).all()
        elif mode == "rand":
            assert torch.equal(box, box[:, :, :1].expand_as(box)) and box[:, 0, 0].unique().numel() == 3
        else:
            assert box[0, 0].unique().numel() == box.shape[-1], "pixel mode: noise differs from pixel to pixel"


def test_erasing_probability_per_clip():
    eraser = ClipRandomErasing(prob=0.5, mode="const")
    seed_all(0)
    erased = sum(bool((eraser(torch.ones(3, 2, 32, 32)) == 0).any()) for _ in range(200))
    assert 70 < erased < 130


def test_erasing_count_draws_one_to_count_boxes():
    def erased_masks(count):
        eraser = ClipRandomErasing(prob=1.0, mode="const", count=count)
        seed_all(0)
        return [eraser(torch.ones(3, 2, 64, 64))[0, 0] == 0 for _ in range(40)]

    assert all(is_rectangle(m) for m in erased_masks(1))
    several = erased_masks(4)
    assert sum(not is_rectangle(m) for m in several) >= 10, "count 4 must often erase more than one box"
    # timm scales each box's area by the number of boxes: the union stays within max_area (1/3) plus rounding.
    assert max(float(m.float().mean()) for m in several) < 0.4


def test_erasing_rejects_bad_arguments_and_input():
    with pytest.raises(ValueError, match="'noise'"):
        ClipRandomErasing(1.0, "noise", 1)
    with pytest.raises(ValueError, match="count"):
        ClipRandomErasing(1.0, "pixel", 0)
    with pytest.raises(TypeError, match="float"):
        ClipRandomErasing(1.0)(torch.zeros(3, 2, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(C, T, H, W\)"):
        ClipRandomErasing(1.0)(torch.zeros(3, 8, 8))


# ---------------------------------------------------------------- building from a config


def test_build_disabled_gives_nothing():
    assert build_train_augmentations(load_config()) == (None, None)


def test_build_from_config():
    cfg = load_config(
        None,
        [
            "AUG.ENABLE",
            True,
            "AUG.AA_TYPE",
            "rand-m7-n3",
            "AUG.RE_PROB",
            0.4,
            "AUG.RE_MODE",
            "rand",
            "AUG.RE_COUNT",
            2,
            "DATA.MEAN",
            [0.0, 0.5, 1.0],
        ],
    )
    before, after = build_train_augmentations(cfg)
    assert isinstance(before, ClipRandAugment) and before.policy == "rand-m7-n3"
    assert before.transform.num_layers == 3 and before.transform.ops[0].magnitude == 7
    assert before.transform.ops[0].kwargs["fillcolor"] == (0, 128, 255)
    assert isinstance(after, ClipRandomErasing)
    assert (after.prob, after.mode, after.count) == (0.4, "rand", 2)
    assert after.eraser.max_count == 2


def test_build_parts_switch_off():
    cfg = load_config(None, ["AUG.ENABLE", True, "AUG.AA_TYPE", "", "AUG.RE_PROB", 0.0])
    assert build_train_augmentations(cfg) == (None, None)


def test_aug_config_file_turns_augmentation_on():
    from tests.helpers import REPO

    cfg = load_config(f"{REPO}/configs/Kinetics/VIT_B_VTN_AUG.yaml")
    before, after = build_train_augmentations(cfg)
    assert isinstance(before, ClipRandAugment) and isinstance(after, ClipRandomErasing)


def test_bad_policy_fails_naming_the_key():
    with pytest.raises(ConfigError, match=r"AUG\.AA_TYPE = 'rand-m9-x2'"):
        load_config(None, ["AUG.AA_TYPE", "rand-m9-x2"])
    cfg = get_cfg()  # not validated: the builder still names the key
    cfg.AUG.ENABLE, cfg.AUG.AA_TYPE = True, "rand-m9-x2"
    with pytest.raises(ConfigError, match=r"AUG\.AA_TYPE = 'rand-m9-x2'"):
        build_train_augmentations(cfg)
    with pytest.raises(ConfigError, match=r"AUG\.RE_MODE = 'noise'"):
        load_config(None, ["AUG.RE_MODE", "noise"])
