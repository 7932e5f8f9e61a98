"""Walkthroughs of the docs run as written: the commands of a GETTING_STARTED section, in order, in a fresh
folder that holds the repository's configs, with overrides appended only to make the data and the runs small."""

import json
import os

import pytest
import torch
import yaml

from tests.helpers import REPO, load_tool, run_tool, section_commands, synthetic_opts


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
        *synthetic_opts(str(tmp_path / "data"))[4:],  # not its TRAIN.DATASET / TEST.DATASET: the cache is the data
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

    for out, random_backbone in (
        ("output/synthetic/VTN_TINY_FEATURES", True),
        ("output/synthetic/VTN_TINY_FEATURES_trained", False),
    ):
        results = json.load(open(os.path.join(out, "test_results.json")))
        assert results["num_videos"] == results["num_listed"] == 6 and results["num_failed"] == 0
        # the documented expectation: the random backbone's cache is said to give chance accuracy
        log = open(os.path.join(out, "stdout.log")).read()
        assert ("made with a randomly initialised backbone" in log) == random_backbone
        run_cfg = yaml.safe_load(open(os.path.join(out, "config.yaml")))
        assert run_cfg["TRAIN"]["DATASET"] == run_cfg["TEST"]["DATASET"] == "features"  # the cache, not videos
    manifests = [
        json.load(open(f"data_cache/features/{name}/manifest.json"))
        for name in ("synthetic_VTN_TINY", "synthetic_VTN_TINY_trained")
    ]
    assert manifests[0]["backbone_fingerprint"] != manifests[1]["backbone_fingerprint"]


def run_documented_tool(line, *extra):
    """`python tools/<tool> args` of the docs through tests.helpers.run_tool (exit status and output captured)."""
    import shlex

    words = shlex.split(line)
    assert words[0] == "python" and words[1].startswith("tools/"), line
    return run_tool(os.path.basename(words[1]), *words[2:], *extra, check=False, cwd=os.getcwd())


@pytest.mark.slow
def test_the_own_dataset_walkthrough_runs_as_written(tmp_path, monkeypatch):
    from vtn.config import load_config
    from vtn.engine.checkpoint import save_checkpoint
    from vtn.models import build_model

    commands = section_commands("GETTING_STARTED.md", "Your own dataset")
    assert [c.split()[1] for c in commands] == [
        "tools/make_synthetic_dataset.py",
        "tools/check_dataset.py",
        "tools/resize_videos.py",
        "tools/run_net.py",
        "tools/run_net.py",
    ], commands
    monkeypatch.chdir(tmp_path)
    os.symlink(os.path.join(REPO, "configs"), tmp_path / "configs")
    # fewer, shorter and smaller videos (the SYNTHETIC keys), the commands' flags as printed: test/ included
    sizes = ["SYNTHETIC.TRAIN_PER_CLASS", 2, "SYNTHETIC.VAL_PER_CLASS", 1, "SYNTHETIC.TEST_PER_CLASS", 1]
    sizes += ["SYNTHETIC.DURATION_RANGE", "[1.0, 2.0]", "SYNTHETIC.SIZES", "[[96, 72], [72, 96]]"]
    run_documented(commands[0], *sizes)
    assert sorted(os.listdir("data/my_videos")) == ["test", "train", "val"]
    assert sorted(os.listdir("data/my_videos/train")) == sorted(os.listdir("data/my_videos/test"))
    run_documented(commands[1])  # as printed: an unreadable video would end it with status 1
    run_documented(commands[2])
    assert sorted(os.listdir("data/my_videos_256/train")) == sorted(os.listdir("data/my_videos/train"))

    # The GPU recipe, as printed: on a machine without its GPUs or its Kinetics checkpoint, one line at once.
    if not torch.cuda.is_available():
        proc = run_documented_tool(commands[3])
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "NUM_GPUS = 8 but this machine has 0 visible CUDA GPUs" in proc.stderr
    built = []
    monkeypatch.setattr("vtn.engine.trainer.build_model", lambda cfg: built.append(cfg))
    proc = run_documented_tool(commands[3], "NUM_GPUS", 0)  # the override the GPU error asks for
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert (
        "TRAIN.CHECKPOINT_FILE_PATH output/kinetics/VIT_B_VTN/checkpoints/checkpoint_epoch_00025.pyth does not exist"
        in (proc.stderr)
    )
    assert not built  # said before the model (and its pretrained download) and the loaders
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)

    # The CPU version from the demo's last checkpoint (untrained here: the test checks the mechanics), one epoch.
    demo = load_config("configs/Synthetic/VTN_TINY.yaml")
    checkpoint = "output/synthetic/VTN_TINY/checkpoints/checkpoint_epoch_00030.pyth"  # where the demo leaves it
    assert checkpoint in commands[4] and os.path.normpath(demo.OUTPUT_DIR) == "output/synthetic/VTN_TINY"
    save_checkpoint(checkpoint, demo, build_model(demo), epoch=30)
    small = ["SOLVER.MAX_EPOCH", 1, "TRAIN.EVAL_PERIOD", 1, "TEST.FULL_VIDEO_FRAMES", 16]
    small += ["TEST.NUM_ENSEMBLE_VIEWS", 2, "DATA_LOADER.NUM_WORKERS", 0, "LOG_PERIOD", 1, "TRAIN.BATCH_SIZE", 4]
    run_documented(commands[4], *small)
    out = "output/custom/VTN_TINY_FROZEN"
    results = json.load(open(os.path.join(out, "test_results.json")))
    # test/ holds 6 classes x 1 video, all scored
    assert results["num_listed"] == results["num_videos"] == 6 and results["num_missing"] == 0
    log = open(os.path.join(out, "stdout.log")).read()
    assert f"from {checkpoint} (0 reinitialised, 0 missing, 0 unexpected)" in log  # the demo's model, whole
    assert "randomly initialised backbone" not in log


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


@pytest.mark.slow
def test_the_data_at_scale_walkthrough_runs_as_written(tmp_path, monkeypatch, s3_server):
    import shlex
    import subprocess
    import sys

    from tests.helpers import code_lines
    from vtn.storage.backends import forget_backends

    text = open(os.path.join(REPO, "GETTING_STARTED.md"), encoding="utf-8").read()
    start = text.index("\n**A walkthrough**")
    lines = code_lines(text[start : text.index("\n## ", start)])
    assert lines[0] == 'pip install "moto[server]"' and lines[1].startswith("python -m moto.server -H 127.0.0.1")
    monkeypatch.chdir(tmp_path)
    os.symlink(os.path.join(REPO, "configs"), tmp_path / "configs")
    # the server the docs start: the tests' own, on a free port instead of 9000
    assert lines[2].startswith("export ")
    for assignment in shlex.split(lines[2])[1:]:
        name, value = assignment.split("=", 1)
        monkeypatch.setenv(name, value.replace("http://127.0.0.1:9000", s3_server))
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    forget_backends()
    words = shlex.split(lines[3])
    assert words[:2] == ["python", "-c"]
    subprocess.run([sys.executable, "-c", words[2]], check=True, timeout=60)
    tools = [line for line in lines[4:] if line.startswith("python tools/")]
    assert len(tools) == 4 and len(lines) == 8
    small = [*synthetic_opts(str(tmp_path / "unused"))[6:], "TEST.FULL_VIDEO_FRAMES", 16]  # the config's data folder
    for line in tools[:3]:
        run_documented(line, *small)
    run_documented(tools[3], *small, "SOLVER.MAX_EPOCH", 1, "TRAIN.EVAL_PERIOD", 1)
    forget_backends()
    with open("output/synthetic/VTN_TINY_SHARDS/test_results.json") as f:
        results = json.load(f)
    assert results["num_listed"] == 6 and results["num_failed"] == 0  # the 6 test videos of the small dataset
