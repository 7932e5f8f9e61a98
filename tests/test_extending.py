"""GETTING_STARTED's "Extending vtn": each example file, written out as the page shows it, is imported with
--import by the command after it, which trains and tests the demo's config with it (small overrides only)."""

import json
import os
import shlex

import pytest

from tests.helpers import REPO, load_tool, section_code, section_commands, synthetic_opts

SECTION = "Extending vtn"


@pytest.mark.slow
def test_every_extension_example_trains_and_tests_as_documented(tmp_path, monkeypatch):
    from vtn.config import load_config
    from vtn.datasets.synthetic import ensure_synthetic_dataset

    files = section_code("GETTING_STARTED.md", SECTION)
    commands = section_commands("GETTING_STARTED.md", SECTION)
    assert sorted(files) == sorted(
        ["tiny_cnn.py", "mean_pool.py", "names_as_labels.py", "focal.py", "linear_decay.py", "best_to_file.py"]
    )
    assert len(commands) == len(files)
    monkeypatch.chdir(tmp_path)
    os.symlink(os.path.join(REPO, "configs"), tmp_path / "configs")
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    small = [
        *synthetic_opts(str(tmp_path / "data")),
        "SOLVER.MAX_EPOCH",
        1,
        "TRAIN.EVAL_PERIOD",
        1,
        "TEST.PROTOCOLS",
        "['full_video']",
        "TEST.SHUFFLE_ABLATION",
        False,
        "LOG_PERIOD",
        1,
    ]
    small = [str(o) for o in small]
    ensure_synthetic_dataset(
        load_config("configs/Synthetic/VTN_TINY.yaml", small)
    )  # the names_as_labels example reads it
    outputs = {}
    for line in commands:
        words = shlex.split(line)
        load_tool(words[1]).main(words[2:] + small)
        out = words[words.index("OUTPUT_DIR") + 1]
        results = json.load(open(os.path.join(out, "test_results.json")))
        assert results["num_videos"] == 6 and results["protocol"] == "full_video", line
        outputs[words[words.index("--import") + 1]] = out
    config = open(os.path.join(outputs["tiny_cnn.py"], "config.yaml")).read()
    assert "BACKBONE: tiny_cnn" in config
    assert "after epoch 1" in open(os.path.join(outputs["best_to_file.py"], "best.txt")).read()
    stats = [json.loads(x) for x in open(os.path.join(outputs["linear_decay.py"], "json_stats.log"))]
    lrs = [s["lr"] for s in stats if s["_type"] == "train_iter"]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] > lrs[-1]
