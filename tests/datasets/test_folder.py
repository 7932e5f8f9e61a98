"""A dataset of class folders: train/<class>/, val/<class>/, optional test/<class>/."""

import logging

import numpy as np
import pytest

from tests.datasets.layout_cfg import layout_cfg
from tests.datasets.release_layouts import FOLDER_CLASSES, class_folders
from vtn.datasets import build_dataset
from vtn.utils.errors import DatasetError


def test_class_folders(tmp_path, synthetic_dir, caplog):
    layout = class_folders(str(tmp_path), synthetic_dir)
    cfg = layout_cfg("folder", tmp_path, 3)
    train = build_dataset(cfg, "train")
    assert train.class_names == FOLDER_CLASSES
    # videos at any depth below the class folder, any case of extension; the notes and thumbnail are ignored
    assert list(zip(train.paths, train.labels)) == layout["expected"]["train"]
    assert train.ignored_files == layout["ignored"]
    with caplog.at_level(logging.INFO):
        test = build_dataset(cfg, "test")
    assert list(zip(test.paths, test.labels)) == layout["expected"]["val"] and "testing on" in caplog.text
    assert bool(train[(0, 0)]["ok"]) and train.random_flip
    params = [train._spatial(train.info(train.paths[0]), 0, np.random.default_rng(s)) for s in range(40)]
    assert 5 < sum(p.flip for p in params) < 35  # flipped by default


def test_a_test_folder_is_used_when_there_is_one(tmp_path, synthetic_dir):
    layout = class_folders(str(tmp_path), synthetic_dir, with_test=True)
    test = build_dataset(layout_cfg("folder", tmp_path, 3), "test")
    assert list(zip(test.paths, test.labels)) == layout["expected"]["test"]


def test_a_class_that_training_does_not_have_is_an_error(tmp_path, synthetic_dir):
    class_folders(str(tmp_path), synthetic_dir)
    (tmp_path / "val" / "horses").mkdir()
    with pytest.raises(DatasetError, match=r"val/horses is a class folder that the training split does not have"):
        build_dataset(layout_cfg("folder", tmp_path, 3), "val")
