import numpy as np
import pytest
import torch

from vtn.datasets import transforms as T


def test_scaled_size_keeps_aspect():
    assert T.scaled_size(320, 240, 256) == (341, 256)
    assert T.scaled_size(240, 320, 256) == (256, 341)
    assert T.scaled_size(256, 256, 224) == (224, 224)


@pytest.mark.parametrize(
    "w, h, expected",
    [
        (400, 300, [(0, 0), (37, 0), (75, 0)]),  # landscape: left / center / right (scaled to 299x224)
        (300, 400, [(0, 0), (0, 37), (0, 75)]),  # portrait: top / center / bottom
    ],
)
def test_three_crop_positions(w, h, expected):
    got = [(p.x0, p.y0) for p in (T.test_params(w, h, 224, 224, i, 3) for i in range(3))]
    assert got == expected
    center = T.test_params(w, h, 256, 224, 0, 1)
    assert (center.x0, center.y0) == ((center.width - 224) // 2, (center.height - 224) // 2)
    with pytest.raises(ValueError):
        T.test_params(w, h, 224, 224, 3, 3)


def test_train_params_in_range_and_flip_is_random():
    rng = np.random.default_rng(0)
    ps = [T.train_params(320, 240, [256, 320], 224, True, rng) for _ in range(200)]
    assert all(256 <= min(p.width, p.height) <= 320 for p in ps)
    assert all(0 <= p.x0 <= p.width - 224 and 0 <= p.y0 <= p.height - 224 for p in ps)
    flips = [p.flip for p in ps]
    assert 50 < sum(flips) < 150
    assert not any(T.train_params(320, 240, [256, 320], 224, False, rng).flip for _ in range(50))


def test_crop_and_flip_act_the_same_on_every_frame():
    frames = np.stack([np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3) + t for t in range(5)])
    p = T.SpatialParams(width=8, height=6, x0=2, y0=1, crop=4, flip=True)
    out = T.apply_crop_flip(frames, p)
    assert out.shape == (5, 4, 4, 3)
    for t in range(5):
        np.testing.assert_array_equal(out[t], frames[t, 1:5, 2:6][:, ::-1])
    with pytest.raises(ValueError, match="expected 9x6"):
        T.apply_crop_flip(frames, T.SpatialParams(9, 6, 0, 0, 4))


def test_normalisation():
    frames = np.full((2, 4, 4, 3), 255, dtype=np.uint8)
    frames[..., 1] = 0
    x = T.to_normalized_tensor(frames, [0.5, 0.5, 0.5], [0.25, 0.5, 1.0])
    assert x.shape == (3, 2, 4, 4) and x.dtype == torch.float32
    assert torch.allclose(x[0], torch.tensor(2.0)) and torch.allclose(x[1], torch.tensor(-1.0))
    assert torch.allclose(x[2], torch.tensor(0.5))


def test_normalisation_is_the_float32_formula_bit_for_bit_for_every_byte():
    frames = np.stack(np.meshgrid(np.arange(256), np.arange(3), indexing="ij"), -1)[..., :1].repeat(3, -1)
    frames = np.ascontiguousarray(frames.reshape(1, 256, 3, 3).astype(np.uint8))
    frames[..., 1] = 255 - frames[..., 1]  # another order of values in another channel
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    x = T.to_normalized_tensor(frames, mean, std)
    ref = torch.from_numpy(frames).permute(3, 0, 1, 2).float().div(255.0)
    ref = ref.sub(torch.tensor(mean).view(3, 1, 1, 1)).div(torch.tensor(std).view(3, 1, 1, 1))
    assert torch.equal(x, ref) and x.is_contiguous()
