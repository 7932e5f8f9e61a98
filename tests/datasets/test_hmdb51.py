"""HMDB51 as its archives unpack: the class folders and testTrainMulti_7030_splits/ side by side."""

import pytest

from tests.datasets.layout_cfg import layout_cfg
from tests.datasets.release_layouts import hmdb51
from vtn.datasets import build_dataset
from vtn.datasets.annotations import AnnotationError


@pytest.mark.parametrize("split_id", [1, 2])
def test_official_splits_leave_out_unused_videos(tmp_path, synthetic_dir, split_id):
    layout = hmdb51(str(tmp_path), synthetic_dir)
    cfg = layout_cfg("hmdb51", tmp_path, 3, "DATA.SPLIT_ID", split_id)
    train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    assert train.class_names == layout["classes"]
    assert list(zip(train.paths, train.labels)) == layout["expected"][split_id]["train"]
    assert list(zip(test.paths, test.labels)) == layout["expected"][split_id]["test"]
    assert build_dataset(cfg, "val").paths == test.paths
    assert len(train.paths) + len(test.paths) == 9  # 4 videos per class, one of them unused (0)
    assert not train.missing and all(bool(test[(i, 0)]["ok"]) for i in range(len(test)))  # names with ( ) & ! ,


def test_format_errors_name_the_file_and_line(tmp_path, synthetic_dir):
    hmdb51(str(tmp_path), synthetic_dir)
    (tmp_path / "testTrainMulti_7030_splits" / "smile_test_split1.txt").write_text("a.avi 1\nb.avi 3\n")
    with pytest.raises(AnnotationError, match=r"smile_test_split1.txt, line 2: expected '<video>.avi k' with k = 0"):
        build_dataset(layout_cfg("hmdb51", tmp_path, 3), "train")
    with pytest.raises(AnnotationError, match=r"has no <class>_test_split3.txt files"):
        build_dataset(layout_cfg("hmdb51", tmp_path, 3, "DATA.SPLIT_ID", 3), "train")
