"""Kinetics in the official release layout (annotations/*.csv with a header, clips named by YouTube id and
times, flat or in class folders), read as the download scripts leave it; and PySlowFast lists with class names."""

import logging
import os

import pytest

from tests.datasets.layout_cfg import layout_cfg
from tests.datasets.release_layouts import KINETICS_CLASSES, kinetics_official
from vtn.datasets import build_dataset, build_loader
from vtn.datasets.annotations import AnnotationError


@pytest.fixture()
def k400(tmp_path, synthetic_dir):
    return tmp_path, kinetics_official(str(tmp_path), synthetic_dir)


def test_official_layout_is_read_as_it_unpacks(k400, caplog):
    root, layout = k400
    cfg = layout_cfg("kinetics", root, 4)
    train = build_dataset(cfg, "train")
    # class ids: the names of the training annotations sorted alphabetically (spaces, quotes, parentheses kept)
    assert train.class_names == sorted(KINETICS_CLASSES)
    assert [(p, train.class_names[lab]) for p, lab in zip(train.paths, train.labels)] == layout["expected"]["train"]
    # the clip that was never downloaded is left out and counted; the partial download and md5 file are ignored
    assert train.missing == layout["missing"] and train.num_listed == 8 and train.num_videos == 7
    assert train.ignored_files == layout["ignored"]["train"]
    assert bool(train[(0, 0)]["ok"])  # .mp4, .mkv and .webm all decode
    val = build_dataset(cfg, "val")  # videos in class folders
    assert [(p, val.class_names[lab]) for p, lab in zip(val.paths, val.labels)] == layout["expected"]["val"]
    # Kinetics-700's test.csv has no labels: the test split is the validation split, said in the log
    with caplog.at_level(logging.WARNING):
        test = build_dataset(cfg, "test")
    assert test.paths == val.paths and "test.csv has no labels: testing on" in caplog.text


def test_official_test_split_with_labels_is_used(tmp_path, synthetic_dir):
    layout = kinetics_official(str(tmp_path), synthetic_dir, test_labels=True)
    test = build_dataset(layout_cfg("kinetics", tmp_path, 4), "test")
    assert [(p, test.class_names[lab]) for p, lab in zip(test.paths, test.labels)] == layout["expected"]["test"]


def test_missing_videos_are_logged_once_and_listed_in_the_output_dir(k400, caplog):
    root, layout = k400
    out = root / "out"
    cfg = layout_cfg("kinetics", root, 4, "OUTPUT_DIR", str(out))
    with caplog.at_level(logging.WARNING):
        build_loader(cfg, "train")
        build_loader(cfg, "train")
    lines = [r.getMessage() for r in caplog.records if "not on disk" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("1 of the 8 videos listed for the train split are not on disk")
    assert (out / "missing_videos_train.txt").read_text().splitlines() == layout["missing"]


def test_class_index_file_overrides_the_sorted_names(k400):
    root, _ = k400
    (root / "classes.txt").write_text("".join(n + "\n" for n in KINETICS_CLASSES))  # the order given
    train = build_dataset(layout_cfg("kinetics", root, 4, "DATA.CLASS_INDEX_FILE", "classes.txt"), "train")
    assert train.class_names == KINETICS_CLASSES


def test_official_format_errors_name_the_file_and_line(k400):
    root, _ = k400
    path = root / "annotations" / "val.csv"
    path.write_text("label,youtube_id,time_start,time_end,split\nzumba,abc,ten,20,val\n")
    with pytest.raises(AnnotationError, match=r"val.csv, line 2: time_start and time_end must be seconds"):
        build_dataset(layout_cfg("kinetics", root, 4), "val")
    path.write_text("label,youtube_id,time_start,time_end,split\nsalsa,abc,10,20,val\n")
    with pytest.raises(AnnotationError, match=r"val.csv, line 2: class 'salsa' is not in the class-index file"):
        build_dataset(layout_cfg("kinetics", root, 4), "val")


def test_pyslowfast_lists_with_class_names_that_contain_the_separator(tmp_path, synthetic_dir):
    root, src = tmp_path, os.path.join(synthetic_dir, "videos")
    video = os.path.join(src, "train", sorted(os.listdir(os.path.join(src, "train")))[0])
    (root / "classes.json").write_text('{"air drumming": 0, "drumming": 1, "passing American football (in game)": 2}')
    (root / "train.csv").write_text(
        f"{video} air drumming\n{video} drumming\n{video} passing American football (in game)\n"
    )
    train = build_dataset(layout_cfg("kinetics", root, 3, "DATA.CLASS_INDEX_FILE", "classes.json"), "train")
    assert train.labels == [0, 1, 2]


def test_rows_that_repeat_a_video_are_reported_and_tested_once(tmp_path, synthetic_dir, caplog, capsys):
    import torch

    from tests.helpers import run_tool, tiny_model
    from vtn.engine.evaluator import dataset_metrics, run_inference

    for split in ("train", "val", "test"):
        rows = open(os.path.join(synthetic_dir, f"{split}.csv")).read().splitlines()
        repeats = rows[:2] if split != "val" else []  # a list copied twice in part, as after a merge
        if split == "test":
            repeats[1] = repeats[1].rsplit(" ", 1)[0] + " stripes"  # and once with another label
        (tmp_path / f"{split}.csv").write_text("\n".join(rows + repeats) + "\n")
    opts = ["DATA.PATH_PREFIX", synthetic_dir, "DATA.CLASS_INDEX_FILE", os.path.join(synthetic_dir, "classes.json")]
    opts += ["DATA.TEST_SCALE", 32, "DATA.TEST_CROP_SIZE", 32]
    cfg = layout_cfg("kinetics", tmp_path, 6, *opts)
    with caplog.at_level(logging.WARNING):
        test = build_dataset(cfg, "test", "full_video")
        train = build_dataset(cfg, "train")
    assert test.num_listed == test.num_videos == 6 and test.repeated_rows == 2 and len(set(test.paths)) == 6
    assert "test split: 2 rows list a video listed above (1 with another label than their first row)" in caplog.text
    assert "each video is counted once, with its first row" in caplog.text
    assert train.num_videos == 14 and train.repeated_rows == 2 and "training uses every row" in caplog.text
    # the test phase scores each video once: 6 listed, 6 scored
    loader = build_loader(cfg, "test", "full_video")
    result = run_inference(tiny_model(*opts, "MODEL.NUM_CLASSES", 6), loader, cfg, torch.device("cpu"))
    metrics = dataset_metrics(result, loader.dataset, 6)
    assert metrics["num_listed"] == metrics["num_videos"] == 6
    # check_dataset says it per split
    proc = run_tool("check_dataset.py", "DATA.PATH_TO_DATA_DIR", tmp_path, "MODEL.NUM_CLASSES", 6, *opts)
    assert "[test] listed 6, present 6" in proc.stdout
    assert "; 2 rows list a video listed above (each video is counted once, with its first row)" in proc.stdout
    assert "[train] listed 14" in proc.stdout and "(training uses every row)" in proc.stdout
    assert "[val] listed 6, present 6, missing 0, unreadable 0; 6 classes\n" in proc.stdout
