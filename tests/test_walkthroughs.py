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
