import numpy as np
import pytest

from vtn.config import load_config
from vtn.config.views import footprint_seconds
from vtn.datasets import sampling


@pytest.mark.parametrize("fps", [24, 25, 30])
def test_training_footprint_is_in_seconds_at_any_fps(fps):
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = sampling.train_clip_indices(20 * fps, fps, 16, 5.12, rng)
        assert len(idx) == 16 and idx.min() >= 0 and idx.max() < 20 * fps
        assert np.all(np.diff(idx) > 0)
        span = 5.12 * fps
        assert abs((idx[-1] - idx[0]) - span * 15 / 16) <= 1.0  # 16 uniform steps over the footprint
        steps = np.diff(idx)
        assert steps.max() - steps.min() <= 1


def test_random_starts_cover_the_whole_video():
    rng = np.random.default_rng(0)
    starts = [sampling.train_clip_indices(300, 30, 16, 2.56, rng)[0] for _ in range(400)]
    assert min(starts) < 15 and max(starts) > 300 - 77 - 15


def test_footprint_default_follows_pyslowfast():
    cfg = load_config(None, ["DATA.NUM_FRAMES", 16, "DATA.SAMPLING_RATE", 8, "DATA.TARGET_FPS", 30])
    assert footprint_seconds(cfg) == pytest.approx(16 * 8 / 30)
    cfg = load_config(None, ["DATA.TEMPORAL_FOOTPRINT", 2.56])
    assert footprint_seconds(cfg) == 2.56


def test_multi_view_clips_spread_uniformly_over_the_video():
    clips = [sampling.view_clip_indices(600, 30, 16, 2.56, k, 10) for k in range(10)]
    starts = np.array([c[0] for c in clips])
    gaps = np.diff(starts)
    assert gaps.max() - gaps.min() <= 1  # equal spacing
    free = 600 - 2.56 * 30
    assert starts[0] == pytest.approx(free * 0.05, abs=1) and clips[-1][-1] < 600
    assert clips[-1][0] == pytest.approx(free * 0.95, abs=1)
    middle = sampling.view_clip_indices(600, 30, 16, 2.56, 0, 1)
    assert middle[0] == pytest.approx(free / 2, abs=1)
    with pytest.raises(ValueError):
        sampling.view_clip_indices(600, 30, 16, 2.56, 10, 10)


@pytest.mark.parametrize("seconds, fps", [(2, 30), (20, 30), (2, 24), (20, 25)])
def test_full_video_gives_exactly_250_frames_over_the_whole_video(seconds, fps):
    n = seconds * fps
    idx = sampling.full_video_indices(n, 250)
    assert len(idx) == 250 and idx.min() >= 0 and idx.max() <= n - 1
    assert np.all(np.diff(idx) >= 0)
    assert idx[0] <= n / 250 and idx[-1] >= n - 1 - n / 250  # the first and last parts are covered
    if n >= 250:
        assert len(np.unique(idx)) == 250  # sub-sampling: no repeats
    else:
        assert len(np.unique(idx)) == n  # up-sampling: every frame used, some repeated


def test_short_videos_clamp_or_loop():
    rng = np.random.default_rng(0)
    clamp = sampling.train_clip_indices(30, 30, 16, 5.12, rng, "clamp")  # a 1 s video, 5.12 s footprint
    assert clamp.max() == 29 and np.all(np.diff(clamp) >= 0) and (clamp == 29).sum() > 8
    loop = sampling.train_clip_indices(30, 30, 16, 5.12, np.random.default_rng(0), "loop")
    assert loop.max() <= 29 and np.any(np.diff(loop) < 0)  # wraps to the start
    with pytest.raises(ValueError, match="SHORT_VIDEO_MODE"):
        sampling.fit_to_video(np.arange(3), 2, "mirror")
