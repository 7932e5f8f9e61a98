import json
import logging
import os

import pytest

from tests.helpers import synthetic_opts
from vtn.config import load_config
from vtn.datasets import build_dataset
from vtn.datasets.annotations import AnnotationError, read_class_index, read_path_label_csv, resolve_path


def write(path, text):
    path.write_text(text)
    return str(path)


def test_a_byte_order_mark_and_windows_line_endings_are_read_as_editors_save_them(tmp_path):
    (tmp_path / "val.csv").write_bytes("\ufeffa.mp4 1\r\nb.mp4 0\r\n".encode("utf-8"))
    assert read_path_label_csv(str(tmp_path / "val.csv")) == (["a.mp4", "b.mp4"], [1, 0])
    (tmp_path / "classes.txt").write_bytes("\ufeffabseiling\r\nzumba\r\n".encode("utf-8"))
    assert read_class_index(str(tmp_path / "classes.txt")) == {"abseiling": 0, "zumba": 1}
    (tmp_path / "classes.json").write_bytes('\ufeff{"abseiling": 0}'.encode("utf-8"))
    assert read_class_index(str(tmp_path / "classes.json")) == {"abseiling": 0}


def test_integer_labels_and_paths_with_spaces(tmp_path):
    f = write(tmp_path / "train.csv", "a/b c.mp4 3\n\nx.mp4 0\n")
    assert read_path_label_csv(f) == (["a/b c.mp4", "x.mp4"], [3, 0])
    f = write(tmp_path / "comma.csv", "a.mp4,2\n")
    assert read_path_label_csv(f, ",") == (["a.mp4"], [2])


@pytest.mark.parametrize(
    "text, words",
    [
        ("ok.mp4 1\nbroken_line\n", ["train.csv, line 2", "expected 'path label'", "broken_line"]),
        ("ok.mp4 1\nv.mp4 abseiling\n", ["line 2", "'abseiling' is not an integer", "DATA.CLASS_INDEX_FILE"]),
        ("ok.mp4 -1\n", ["line 1", "negative"]),
        ("\n\n", ["lists no videos"]),
    ],
)
def test_malformed_csv_lines_name_file_and_line(tmp_path, text, words):
    f = write(tmp_path / "train.csv", text)
    with pytest.raises(AnnotationError) as e:
        read_path_label_csv(f)
    for w in words:
        assert w in str(e.value)


def test_class_names_through_the_class_index_file(tmp_path):
    mapping_json = read_class_index(write(tmp_path / "classes.json", json.dumps({"abseiling": 0, "zumba": 1})))
    mapping_txt = read_class_index(write(tmp_path / "classes.txt", "abseiling\nzumba\n"))
    mapping_ids = read_class_index(write(tmp_path / "moments_categories.txt", "zumba,1\nabseiling,0\n"))
    assert mapping_json == mapping_txt == mapping_ids == {"abseiling": 0, "zumba": 1}
    f = write(tmp_path / "val.csv", "v1.mp4 zumba\nv2.mp4 abseiling\nv3.mp4 1\n")
    assert read_path_label_csv(f, " ", mapping_json)[1] == [1, 0, 1]
    f = write(tmp_path / "bad.csv", "v1.mp4 yoga\n")
    with pytest.raises(AnnotationError, match="line 1: class 'yoga' is not in the class-index file"):
        read_path_label_csv(f, " ", mapping_json)
    with pytest.raises(AnnotationError, match="does not exist"):
        read_class_index(str(tmp_path / "nope.json"))


def test_path_prefix_and_relative_paths():
    assert resolve_path("a/b.mp4", "/videos", "/data") == "/videos/a/b.mp4"
    assert resolve_path("a/b.mp4", "", "/data") == "/data/a/b.mp4"
    assert resolve_path("/abs/b.mp4", "", "/data") == "/abs/b.mp4"


def test_missing_test_csv_falls_back_to_val_with_a_warning(synthetic_dir, tmp_path, caplog):
    import shutil

    data = tmp_path / "k"
    shutil.copytree(synthetic_dir, data)
    os.remove(data / "test.csv")
    cfg = load_config(
        None, synthetic_opts(str(data)) + ["TEST.DATASET", "kinetics", "DATA.CLASS_INDEX_FILE", "classes.json"]
    )
    with caplog.at_level(logging.WARNING):
        ds = build_dataset(cfg, "test")
    assert "test.csv does not exist: testing on" in caplog.text and "val.csv" in caplog.text
    assert ds.num_videos == 6


def test_empty_data_dir_is_explained():
    cfg = load_config(None, ["TRAIN.DATASET", "kinetics", "MODEL.NUM_CLASSES", 6])
    with pytest.raises(ValueError, match="DATA.PATH_TO_DATA_DIR is empty"):
        build_dataset(cfg, "train")
