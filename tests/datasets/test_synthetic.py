import json
import os

import numpy as np
import pytest

from tests.helpers import TINY_SYNTHETIC, synthetic_opts
from vtn.config import load_config
from vtn.datasets import build_dataset
from vtn.datasets.synthetic import CLASSES, REVERSED, SyntheticSpec, make_synthetic_dataset, render_video
from vtn.utils.errors import DatasetError
from vtn.video.decoder import PyAVDecoder


def test_order_pairs_are_the_same_frames_in_opposite_order():
    for reversed_name, forward_name in REVERSED.items():
        fwd = render_video(forward_name, np.random.default_rng(5), 48, 64, 20)
        rev = render_video(reversed_name, np.random.default_rng(5), 48, 64, 20)
        np.testing.assert_array_equal(rev, fwd[::-1])
        assert not np.array_equal(rev, fwd)


def test_layout_variety_and_class_names(synthetic_dir):
    classes = json.load(open(os.path.join(synthetic_dir, "classes.json")))
    assert classes == {n: i for i, n in enumerate(CLASSES)}
    lines = open(os.path.join(synthetic_dir, "train.csv")).read().split("\n")
    assert lines[0].split(" ")[1] == "square_growing"  # class names in the csv
    ds = build_dataset(load_config(None, synthetic_opts(synthetic_dir)), "train")
    infos = [PyAVDecoder().probe(p) for p in ds.paths]
    assert {round(i.fps) for i in infos} == {24, 25, 30}
    assert {(i.width > i.height) for i in infos} == {True, False}  # landscape and portrait
    assert all(0.9 <= i.duration <= 3.1 for i in infos)


def test_generation_is_deterministic(tmp_path):
    spec = SyntheticSpec(
        **dict(TINY_SYNTHETIC, train_per_class=1, val_per_class=0, test_per_class=0, duration_range=(0.5, 1.0))
    )
    a = make_synthetic_dataset(str(tmp_path / "a"), spec)
    b = make_synthetic_dataset(str(tmp_path / "b"), spec)
    for name in sorted(os.listdir(os.path.join(a, "videos", "train"))):
        pa, pb = (os.path.join(d, "videos", "train", name) for d in (a, b))
        fa, _ = PyAVDecoder().decode(pa, list(range(5)))
        fb, _ = PyAVDecoder().decode(pb, list(range(5)))
        np.testing.assert_array_equal(fa, fb)
    assert open(os.path.join(a, "train.csv")).read() == open(os.path.join(b, "train.csv")).read()


def test_auto_generation_reuse_and_refusals(tmp_path, monkeypatch):
    import vtn.datasets.synthetic as syn

    target = str(tmp_path / "cache" / "synthetic")
    opts = synthetic_opts(target) + [
        "SYNTHETIC.TRAIN_PER_CLASS",
        1,
        "SYNTHETIC.VAL_PER_CLASS",
        0,
        "SYNTHETIC.TEST_PER_CLASS",
        0,
        "SYNTHETIC.DURATION_RANGE",
        [0.5, 1.0],
    ]
    with pytest.raises(DatasetError, match="SYNTHETIC.AUTO_GENERATE"):
        build_dataset(load_config(None, opts), "train")
    cfg = load_config(None, opts + ["SYNTHETIC.AUTO_GENERATE", True])
    assert build_dataset(cfg, "train").num_videos == 6
    calls = []
    monkeypatch.setattr(syn, "make_synthetic_dataset", lambda *a, **k: calls.append(a))
    build_dataset(cfg, "train")  # reused: nothing generated
    assert calls == []
    build_dataset(load_config(None, opts + ["SYNTHETIC.AUTO_GENERATE", True, "SYNTHETIC.SEED", 1]), "train")
    assert len(calls) == 1  # other settings: regenerated
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.txt").write_text("do not delete")
    with pytest.raises(DatasetError, match="not a synthetic dataset"):
        build_dataset(load_config(None, synthetic_opts(str(other)) + ["SYNTHETIC.AUTO_GENERATE", True]), "train")


def _square_areas(frames):
    return (frames.max(axis=3) > 160).sum(axis=(1, 2))  # the square is the only bright, saturated region


def test_cycle_range_sawtooth_or_one_ramp_over_the_video():
    sawtooth = _square_areas(render_video("square_growing", np.random.default_rng(3), 64, 48, 40, fps=8))
    ramp = _square_areas(
        render_video("square_growing", np.random.default_rng(3), 64, 48, 40, fps=8, cycle_range=(0.0, 0.0))
    )
    assert (np.diff(sawtooth) < -50).any()  # 5 s at 2.5-4 s per cycle: the square resets at least once
    assert (np.diff(ramp) >= -10).all() and ramp[-1] > 4 * ramp[0]  # grows from the first frame to the last


def test_cycle_range_is_validated():
    from vtn.config import ConfigError

    with pytest.raises(ConfigError, match="SYNTHETIC.CYCLE_RANGE"):
        load_config(None, ["SYNTHETIC.CYCLE_RANGE", [0.0, 3.0]])
