"""Something-Something v2 as its archives unpack: labels/*.json and the .webm videos, no horizontal flip."""

import logging

import numpy as np
import pytest

from tests.datasets.layout_cfg import layout_cfg
from tests.datasets.release_layouts import SSV2_CLASSES, ssv2
from vtn.datasets import build_dataset
from vtn.datasets.annotations import AnnotationError


def test_release_layout(tmp_path, caplog):
    layout = ssv2(str(tmp_path))
    cfg = layout_cfg("ssv2", tmp_path, 3)
    train = build_dataset(cfg, "train")
    assert train.class_names == SSV2_CLASSES  # labels.json's ids (strings there)
    # the class is the template without its brackets, not the item's free-text label
    assert list(zip(train.paths, train.labels)) == layout["expected"]["train"]
    with caplog.at_level(logging.INFO):
        test = build_dataset(cfg, "test")
    assert list(zip(test.paths, test.labels)) == layout["expected"]["validation"]
    assert "test labels are not public: testing on validation.json" in caplog.text
    assert bool(train[(0, 0)]["ok"])  # a real VP8 WebM file


def test_left_right_classes_are_not_flipped_unless_asked(tmp_path):
    ssv2(str(tmp_path))
    flips = {}
    for value in ("None", "True"):
        ds = build_dataset(layout_cfg("ssv2", tmp_path, 3, "DATA.RANDOM_FLIP", value), "train")
        params = [ds._spatial(ds.info(ds.paths[0]), 0, np.random.default_rng(s)) for s in range(40)]
        flips[value] = sum(p.flip for p in params)
    assert flips["None"] == 0 and 5 < flips["True"] < 35
    assert build_dataset(layout_cfg("ssv2", tmp_path, 3, "DATA.RANDOM_FLIP", "False"), "train").random_flip is False


def test_a_template_that_is_not_a_class_is_an_error(tmp_path):
    ssv2(str(tmp_path))
    (tmp_path / "labels" / "validation.json").write_text('[{"id": "5", "template": "Juggling [something]"}]')
    with pytest.raises(AnnotationError, match=r"validation.json, item 0: the template 'Juggling \[something\]'"):
        build_dataset(layout_cfg("ssv2", tmp_path, 3), "val")
