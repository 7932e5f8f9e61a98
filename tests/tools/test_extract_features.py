"""From the command line: extract the tiny synthetic dataset's features, train an epoch on the cache and test
it with tools/run_net.py; the trained checkpoint then predicts the same on the videos, end to end."""

import json
import os

import pytest
import torch

from tests.helpers import TINY_MODEL_OPTS, run_tool, synthetic_opts


def opts(synthetic_dir, features_dir, *extra):
    values = (
        TINY_MODEL_OPTS
        + synthetic_opts(synthetic_dir)
        + [
            "DATA.FEATURES_DIR",
            features_dir,
            "DATA.FEATURES_SOURCE",
            "synthetic",
            "TRAIN.DATASET",
            "features",
            "TEST.DATASET",
            "features",
            "VTN.FREEZE_BACKBONE",
            True,
        ]
        + list(extra)
    )
    return [json.dumps(v) if isinstance(v, list) else str(v) for v in values]


@pytest.fixture(scope="module")
def cache(synthetic_dir, tmp_path_factory):
    features_dir = str(tmp_path_factory.mktemp("features") / "cache")
    proc = run_tool("extract_features.py", *opts(synthetic_dir, features_dir))
    return features_dir, proc


def test_extraction_writes_a_cache_and_a_second_run_skips_everything(cache, synthetic_dir):
    features_dir, proc = cache
    assert "train: 12 videos: 12 extracted, 0 already cached, 0 failed" in proc.stdout
    assert "test: 6 videos: 6 extracted, 0 already cached, 0 failed" in proc.stdout
    manifest = json.load(open(os.path.join(features_dir, "manifest.json")))
    assert manifest["backbone"] == "vit_tiny_patch16_224" and manifest["feature_dim"] == 192
    assert manifest["sampling"] == {"frames": 8} and manifest["sources"]["test"] == "synthetic"
    assert os.path.isfile(os.path.join(features_dir, "config.yaml"))
    again = run_tool("extract_features.py", *opts(synthetic_dir, features_dir))
    for split, n in (("train", 12), ("val", 6), ("test", 6)):
        assert f"{split}: {n} videos: 0 extracted, {n} already cached, 0 failed" in again.stdout


def test_train_and_test_on_the_cache_then_end_to_end(cache, synthetic_dir, tmp_path):
    features_dir, _ = cache
    out = str(tmp_path / "out")
    proc = run_tool(
        "run_net.py",
        *opts(
            synthetic_dir,
            features_dir,
            "OUTPUT_DIR",
            out,
            "SOLVER.MAX_EPOCH",
            1,
            "LOG_PERIOD",
            1,
            "TEST.PROTOCOLS",
            ["multi_view", "full_video"],
        ),
    )
    assert "train_epoch" in proc.stdout and "val_epoch" in proc.stdout
    assert "1 crop (TEST.NUM_SPATIAL_CROPS = 3 does not apply" in proc.stdout
    assert "differ from those that made the feature cache" not in proc.stdout  # same seed, same backbone
    # a cache of a random backbone: said, with what to expect (near chance) and what to do
    assert f"the feature cache {features_dir} was made with a randomly initialised backbone" in proc.stdout
    assert "accuracy may stay near chance (16.7%)" in proc.stdout and "--checkpoint of a trained model" in proc.stdout
    for protocol, views in (("multi_view", 2), ("full_video", 1)):
        r = json.load(open(os.path.join(out, f"test_results_{protocol}.json")))
        assert r["num_videos"] == 6 and r["num_failed"] == 0 and r["views_per_video"] == views
    # The checkpoint trained on the cache, tested on the videos (backbone + encoder): the same predictions.
    ckpt = json.load(open(os.path.join(out, "test_results_full_video.json")))["checkpoint"]
    e2e = str(tmp_path / "e2e")
    run_tool(
        "run_net.py",
        *opts(
            synthetic_dir,
            features_dir,
            "OUTPUT_DIR",
            e2e,
            "TRAIN.ENABLE",
            False,
            "TEST.DATASET",
            "synthetic",
            "TEST.PROTOCOLS",
            ["full_video"],
            "TEST.CHECKPOINT_FILE_PATH",
            ckpt,
        ),
    )
    cached = json.load(open(os.path.join(out, "predictions_full_video.json")))
    videos = json.load(open(os.path.join(e2e, "predictions_full_video.json")))
    assert [p["path"] for p in cached] == [p["path"] for p in videos]
    for a, b in zip(cached, videos):
        assert max(abs(x - y) for x, y in zip(a["top5_scores"], b["top5_scores"])) <= 1e-4


def test_workers_and_float16_from_the_command_line(synthetic_dir, tmp_path):
    features_dir = str(tmp_path / "half")
    extra = ["--splits", "test", "DATA_LOADER.NUM_WORKERS", "1", "FEATURES.DTYPE", "float16"]
    proc = run_tool("extract_features.py", *opts(synthetic_dir, features_dir, *extra))
    assert "test: 6 videos: 6 extracted, 0 already cached, 0 failed" in proc.stdout
    assert json.load(open(os.path.join(features_dir, "manifest.json")))["dtype"] == "float16"
    entry = json.load(open(os.path.join(features_dir, "test.json")))["videos"][0]
    data = torch.load(os.path.join(features_dir, entry["file"]), weights_only=True)
    assert data["embeddings"].dtype == torch.float16 and data["embeddings"].shape == (8, 192)
    bad = run_tool("extract_features.py", *opts(synthetic_dir, features_dir, "FEATURES.DTYPE", "half"), check=False)
    assert bad.returncode == 2
    assert "extract_features: error: FEATURES.DTYPE = 'half' is not one of: 'float32', 'float16'" in bad.stderr


def test_an_unwritable_features_dir_is_one_line_before_any_work(synthetic_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    features_dir = str(tmp_path / "file" / "cache")
    proc = run_tool("extract_features.py", *opts(synthetic_dir, features_dir), check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"DATA.FEATURES_DIR: cannot write {features_dir}/.tmp-probe: {tmp_path / 'file'} is a file" in proc.stderr
    assert proc.stdout == ""  # nothing extracted, nothing logged
