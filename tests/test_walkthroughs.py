"""Walkthroughs of the docs run as written: the commands of a GETTING_STARTED section, in order, in a fresh
folder that holds the repository's configs, with overrides appended only to make the data and the runs small."""

import json
import os

import pytest
import torch

from tests.helpers import REPO, load_tool, section_commands, synthetic_opts


def run_documented(line, *extra):
    """`python tools/<tool> args` of the docs, run in-process with `extra` overrides appended."""
    import shlex

    words = shlex.split(line)
    assert words[0] == "python" and words[1].startswith("tools/"), line
    load_tool(words[1]).main(words[2:] + [str(e) for e in extra])


@pytest.mark.slow
def test_the_feature_cache_walkthrough_runs_as_written(tmp_path, monkeypatch):
    from vtn.config import load_config
    from vtn.engine.checkpoint import checkpoint_name, save_checkpoint
    from vtn.models import build_model

    commands = section_commands("GETTING_STARTED.md", "Feature-cache training and testing")
    synthetic = [c for c in commands if "configs/Synthetic/" in c]
    assert len(synthetic) == 4, commands
    monkeypatch.chdir(tmp_path)
    os.symlink(os.path.join(REPO, "configs"), tmp_path / "configs")
    # its own small dataset: the config's SYNTHETIC settings differ from the session's, and it generates one
    small = [
        *synthetic_opts(str(tmp_path / "data")),
        "SOLVER.MAX_EPOCH",
        2,
        "TRAIN.EVAL_PERIOD",
        1,
        "TEST.FULL_VIDEO_FRAMES",
        16,
        "LOG_PERIOD",
        1,
    ]
    # The second pair starts from the demo's last checkpoint: the README's demo writes it under this name.
    demo = load_config("configs/Synthetic/VTN_TINY.yaml", small)
    demo_checkpoint = f"output/synthetic/VTN_TINY/checkpoints/{checkpoint_name(30)}"
    assert load_config("configs/Synthetic/VTN_TINY.yaml").SOLVER.MAX_EPOCH == 30
    assert demo_checkpoint in synthetic[2] and demo_checkpoint in synthetic[3]
    torch.manual_seed(123)  # "trained": other weights than the RNG_SEED initialisation the first pair uses
    save_checkpoint(demo_checkpoint, demo, build_model(demo), epoch=30)

    for line in synthetic:
        run_documented(line, *small)

    for out in ("output/synthetic/VTN_TINY_FEATURES", "output/synthetic/VTN_TINY_FEATURES_trained"):
        results = json.load(open(os.path.join(out, "test_results.json")))
        assert results["num_videos"] == results["num_listed"] == 6 and results["num_failed"] == 0
    manifests = [
        json.load(open(f"data_cache/features/{name}/manifest.json"))
        for name in ("synthetic_VTN_TINY", "synthetic_VTN_TINY_trained")
    ]
    assert manifests[0]["backbone_fingerprint"] != manifests[1]["backbone_fingerprint"]


@pytest.mark.slow
def test_the_own_dataset_walkthrough_runs_as_written(tmp_path, monkeypatch):
    from tests.helpers import TINY_MODEL_OPTS
    from vtn.config import load_config
    from vtn.engine.checkpoint import save_checkpoint
    from vtn.models import build_model

    commands = section_commands("GETTING_STARTED.md", "Your own dataset")
    assert [c.split()[1] for c in commands] == [
        "tools/make_synthetic_dataset.py",
        "tools/check_dataset.py",
        "tools/resize_videos.py",
        "tools/run_net.py",
    ], commands
    monkeypatch.chdir(tmp_path)
    os.symlink(os.path.join(REPO, "configs"), tmp_path / "configs")
    # a few short videos, a tiny model, one epoch: appended to the commands that read a config
    videos = ["SYNTHETIC.TRAIN_PER_CLASS", 2, "SYNTHETIC.VAL_PER_CLASS", 1, "SYNTHETIC.TEST_PER_CLASS", 0]
    videos += ["SYNTHETIC.DURATION_RANGE", "[1.0, 2.0]", "SYNTHETIC.SIZES", "[[96, 72], [72, 96]]"]
    small = [o for o in synthetic_opts("unused") if o not in ("DATA.PATH_TO_DATA_DIR", "unused")]
    # not TRAIN.DATASET / TEST.DATASET (the config's `folder`); one CPU process with the batch as given
    small = small[4:] + ["NUM_GPUS", 0, "SOLVER.REFERENCE_WORLD_SIZE", 0]
    tiny = [
        o for i, o in enumerate(TINY_MODEL_OPTS) if "MODEL.NUM_CLASSES" not in TINY_MODEL_OPTS[max(i - 1, 0) : i + 1]
    ]
    model = [*tiny, "SOLVER.MAX_EPOCH", 1, "TRAIN.EVAL_PERIOD", 1, "TEST.FULL_VIDEO_FRAMES", 8]
    model += ["DATA.TRAIN_JITTER_SCALES", "[32, 40]", "DATA.TEST_SCALE", 32, "DATA.TRAIN_CROP_SIZE", 32]
    model += ["DATA.TEST_CROP_SIZE", 32, "LOG_PERIOD", 1]
    # the Kinetics-400 checkpoint the last command fine-tunes: a tiny model with a 400-way head
    kinetics = load_config("configs/Custom/VIT_B_VTN_FROZEN.yaml", [str(o) for o in small + model])
    kinetics.defrost()
    kinetics.MODEL.NUM_CLASSES = 400
    checkpoint = "output/kinetics/VIT_B_VTN/checkpoints/checkpoint_epoch_00025.pyth"
    assert checkpoint in commands[3]
    save_checkpoint(checkpoint, kinetics, build_model(kinetics), epoch=25)

    run_documented(commands[0], *videos)
    assert sorted(os.listdir("data/my_videos")) == ["train", "val"]  # no test videos: testing reads val/
    assert sorted(os.listdir("data/my_videos/train")) == sorted(os.listdir("data/my_videos/val"))
    run_documented(commands[1], *small)  # an unreadable video would end it with status 1
    run_documented_resize = commands[2].split()
    load_tool(run_documented_resize[1]).main(run_documented_resize[2:])
    assert sorted(os.listdir("data/my_videos_256/train")) == sorted(os.listdir("data/my_videos/train"))
    run_documented(commands[3], *small, *model)
    out = "output/custom/VIT_B_VTN_FROZEN"
    results = json.load(open(os.path.join(out, "test_results.json")))
    # no test/ folder: the test split is val/, 6 classes x 1 video, all scored
    assert results["num_listed"] == results["num_videos"] == 6 and results["num_missing"] == 0
    log = open(os.path.join(out, "stdout.log")).read()
    assert "Re-initialised 2 tensors" in log and "checkpoint (400," in log


@pytest.mark.slow
def test_the_timeline_walkthrough_runs_as_written(tmp_path, monkeypatch):
    from tests.helpers import code_lines
    from vtn.config import load_config
    from vtn.engine.checkpoint import save_checkpoint
    from vtn.models import build_model

    text = open(os.path.join(REPO, "GETTING_STARTED.md"), encoding="utf-8").read()
    lines = [line for line in code_lines(text) if "data/long.mp4" in line]
    assert [line.split()[1] for line in lines] == ["tools/make_synthetic_dataset.py", "tools/demo_net.py"], lines
    monkeypatch.chdir(tmp_path)
    os.symlink(os.path.join(REPO, "configs"), tmp_path / "configs")
    # the demo's checkpoint where the README's demo command leaves it (untrained: the test checks the mechanics)
    cfg = load_config("configs/Synthetic/VTN_TINY.yaml")
    save_checkpoint(f"{cfg.OUTPUT_DIR}/checkpoints/checkpoint_epoch_00030.pyth", cfg, build_model(cfg), epoch=30)
    small = ["SYNTHETIC.SIZES", "[[64, 48]]"]  # a smaller video than the demo's, to keep the test short
    run_documented(lines[0], *small)
    run_documented(lines[1])
    rows = open("timeline.csv").read().splitlines()  # named after the plot timeline.png
    assert len(rows) == 1 + 4  # 12 s in windows of 3 s
    assert os.path.getsize("timeline.png") > 5000
