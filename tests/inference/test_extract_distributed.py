"""Feature extraction sharded over 2 gloo processes (torchrun, the real command line) gives the cache of one
process: the same index, in the split's order (bad and missing videos included), and the same files; videos
already cached are shared out and skipped, the rest split between the processes."""

import json
import os
import shutil

import pytest
import torch

from tests.helpers import TINY_MODEL_OPTS, run_torchrun, synthetic_opts
from vtn.config import load_config
from vtn.datasets.features import load_feature_file
from vtn.inference.extract import extract_features


def _opts(data_dir, features_dir, *extra):
    values = (
        TINY_MODEL_OPTS
        + synthetic_opts(data_dir)
        + ["DATA.FEATURES_DIR", features_dir, "DATA.FEATURES_SOURCE", "synthetic", "LOG_PERIOD", 100]
        + list(extra)
    )
    return [json.dumps(v) if isinstance(v, list) else str(v) for v in values]


@pytest.mark.slow
def test_two_processes_extract_the_cache_of_one(synthetic_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    rows = open(data / "test.csv").read().split()
    with open(data / rows[2], "wb") as f:
        f.write(b"not a video at all" * 20)
    os.remove(data / rows[4])  # listed, not on disk: recorded after the others
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    counts = extract_features(load_config(None, _opts(str(data), one)), ["train", "test"])
    assert counts["test"] == {"videos": 6, "extracted": 4, "cached": 0, "failed": 2}
    # Three train videos already done (an interrupted run of the same settings): skipped, not redone.
    train_index = json.load(open(os.path.join(one, "train.json")))
    os.makedirs(os.path.join(two, "train"))
    shutil.copy(os.path.join(one, "manifest.json"), two)
    for v in train_index["videos"][:3]:
        shutil.copy(os.path.join(one, v["file"]), os.path.join(two, v["file"]))
    proc = run_torchrun(
        "extract_features.py",
        "--splits",
        "train,test",
        *_opts(str(data), two, "DATA_LOADER.NUM_WORKERS", 1),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "Extraction: 2 processes (this is rank 0)" in out
    # rank 0's share: 5 of the 9 train videos to do (rank 1 has the other 4), 3 of the 4 test videos on disk
    assert "extract train: 5/5 videos (this process's share of 2), 3 already cached" in out
    assert "extract test: 3/3 videos (this process's share of 2), 0 already cached" in out
    summary = [line for line in out.splitlines() if not line.startswith("[")]  # the printed lines, not the log
    assert summary == [  # the whole split's counts, printed by rank 0 only
        "train: 12 videos: 9 extracted, 3 already cached, 0 failed",
        "test: 6 videos: 4 extracted, 0 already cached, 2 failed",
        f"feature cache: {two}",
    ]
    for split in ("train", "test"):
        a = json.load(open(os.path.join(one, f"{split}.json")))
        b = json.load(open(os.path.join(two, f"{split}.json")))
        assert a == b, split  # same entries, same order
        for v in a["videos"]:
            if v["file"]:
                x, y = load_feature_file(os.path.join(one, v["file"])), load_feature_file(os.path.join(two, v["file"]))
                assert torch.equal(x["embeddings"], y["embeddings"]) and torch.equal(x["frame_idx"], y["frame_idx"])
    test_videos = json.load(open(os.path.join(two, "test.json")))["videos"]
    assert [v["file"] is None for v in test_videos] == [False, True, False, False, False, True]
    assert test_videos[5]["missing"] and test_videos[5]["path"].endswith(rows[4])
    assert not any(n.startswith(".tmp-") for n in os.listdir(os.path.join(two, "train")))
