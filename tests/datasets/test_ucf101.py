"""UCF101 as its archives unpack: UCF-101/ and ucfTrainTestlist/ side by side, read with DATA.SPLIT_ID."""

import logging

import pytest

from tests.datasets.layout_cfg import layout_cfg
from tests.datasets.release_layouts import UCF_CLASSES, ucf101
from vtn.datasets import build_dataset
from vtn.datasets.annotations import AnnotationError


@pytest.mark.parametrize("split_id", [1, 2])
def test_official_splits(tmp_path, synthetic_dir, split_id, caplog):
    layout = ucf101(str(tmp_path), synthetic_dir)
    cfg = layout_cfg("ucf101", tmp_path, 3, "DATA.SPLIT_ID", split_id)
    train = build_dataset(cfg, "train")
    assert train.class_names == UCF_CLASSES  # classInd.txt's order, 1-based there, 0-based here
    # the lists say v_HandstandPushups_*, the disk v_HandStandPushups_*: found, none missing
    assert list(zip(train.paths, train.labels)) == layout["expected"][split_id]["train"] and not train.missing
    with caplog.at_level(logging.INFO):
        test, val = build_dataset(cfg, "test"), build_dataset(cfg, "val")
    assert list(zip(test.paths, test.labels)) == layout["expected"][split_id]["test"] and test.paths == val.paths
    assert "UCF101 has no validation split" in caplog.text
    assert bool(test[(0, 0)]["ok"])


def test_a_label_that_contradicts_the_class_folder_is_an_error(tmp_path, synthetic_dir):
    ucf101(str(tmp_path), synthetic_dir)
    (tmp_path / "ucfTrainTestlist" / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi 1\nBasketball/v_Basketball_g02_c01.avi 3\n"
    )
    with pytest.raises(AnnotationError, match=r"trainlist01.txt, line 2: the id 3 does not match the class folder"):
        build_dataset(layout_cfg("ucf101", tmp_path, 3), "train")


def test_split_id_is_checked(tmp_path):
    from vtn.utils.errors import ConfigError

    with pytest.raises(ConfigError, match=r"DATA.SPLIT_ID.*1, 2 or 3"):
        layout_cfg("ucf101", tmp_path, 3, "DATA.SPLIT_ID", 4)
