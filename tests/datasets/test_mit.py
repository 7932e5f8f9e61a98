import os
import shutil

import pytest

from tests.helpers import synthetic_opts
from vtn.config import load_config
from vtn.datasets import build_dataset
from vtn.datasets.annotations import AnnotationError


def mit_layout(root, synthetic_dir):
    """The MiT v2 release layout, with a few synthetic videos standing in."""
    names = ["juggling", "opening"]
    (root / "moments_categories.txt").write_text("".join(f"{n},{i}\n" for i, n in enumerate(names)))
    src = [os.path.join(synthetic_dir, line.split()[0]) for line in open(os.path.join(synthetic_dir, "train.csv"))]
    for folder, csv_name, count in (("training", "trainingSet.csv", 4), ("validation", "validationSet.csv", 2)):
        rows = []
        for i in range(count):
            name = names[i % 2]
            rel = f"{name}/clip_{i}.mp4"
            os.makedirs(root / folder / name, exist_ok=True)
            shutil.copyfile(src[i], root / folder / rel)
            rows.append(f"{rel},{name},3,0\n")
        (root / csv_name).write_text("".join(rows))


def test_training_mit_from_scratch_warns_that_the_paper_starts_from_kinetics(synthetic_dir, tmp_path, caplog):
    from tests.helpers import tiny_cfg
    from vtn.engine.trainer import Trainer

    os.makedirs(tmp_path / "mit")
    mit_layout(tmp_path / "mit", synthetic_dir)
    opts = [
        *synthetic_opts(str(tmp_path / "mit")),
        "TRAIN.DATASET",
        "mit",
        "TEST.DATASET",
        "mit",
        "MODEL.NUM_CLASSES",
        2,
        "OUTPUT_DIR",
        str(tmp_path / "out"),
        "TRAIN.EVAL_PERIOD",
        0,
    ]
    Trainer(tiny_cfg(*opts))
    assert "the paper initialises Moments in Time models from a Kinetics-400 VTN" in caplog.text
    caplog.clear()
    Trainer(
        tiny_cfg(*opts, "TRAIN.DATASET", "synthetic", "DATA.PATH_TO_DATA_DIR", synthetic_dir, "MODEL.NUM_CLASSES", 6)
    )
    assert "Kinetics-400" not in caplog.text


def test_mit_release_layout(synthetic_dir, tmp_path):
    mit_layout(tmp_path, synthetic_dir)
    cfg = load_config(
        None, synthetic_opts(str(tmp_path)) + ["TRAIN.DATASET", "mit", "TEST.DATASET", "mit", "MODEL.NUM_CLASSES", 2]
    )
    train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    assert train.num_videos == 4 and test.num_videos == 2
    assert train.class_names == ["juggling", "opening"] and train.labels == [0, 1, 0, 1]
    assert train.paths[1] == os.path.join(str(tmp_path), "training", "opening/clip_1.mp4")
    assert bool(train[(1, 0)]["ok"])
    assert "Kinetics-400" in train.init_advice and "TRAIN.CHECKPOINT_FILE_PATH" in train.init_advice
    # as a spreadsheet saves it: a byte-order mark before the header
    text = (tmp_path / "validationSet.csv").read_text()
    (tmp_path / "validationSet.csv").write_bytes(("\ufefffilename,label,pos,neg\r\n" + text).encode("utf-8"))
    assert build_dataset(cfg, "val").paths == test.paths
    (tmp_path / "validationSet.csv").write_text("juggling/clip_0.mp4\n")
    with pytest.raises(AnnotationError, match="validationSet.csv, line 1: expected 'filename,label"):
        build_dataset(cfg, "val")
