"""The feature cache: extraction (resumable, bad videos counted), the `features` dataset and its samplers, and
logits on cached embeddings equal to end-to-end logits with the same weights."""

import json
import os
import shutil

import numpy as np
import pytest
import torch

from tests.helpers import TINY_MODEL_OPTS, synthetic_opts
from vtn.config import load_config
from vtn.config.loading import ConfigError
from vtn.datasets import build_dataset, build_loader
from vtn.datasets.features import FeatureCacheError, load_feature_file, nearest_positions
from vtn.engine.evaluator import run_inference
from vtn.inference import extract as extract_module
from vtn.inference.extract import VideoFrames, build_extraction_model, extract_features


def features_cfg(synthetic_dir, features_dir, *extra):
    return load_config(
        None,
        TINY_MODEL_OPTS
        + synthetic_opts(synthetic_dir)
        + [
            "DATA.FEATURES_DIR",
            str(features_dir),
            "DATA.FEATURES_SOURCE",
            "synthetic",
            "TRAIN.DATASET",
            "features",
            "TEST.DATASET",
            "features",
            "VTN.FREEZE_BACKBONE",
            True,
        ]
        + list(extra),
    )


def video_cfg(cfg):
    """The same config reading the videos instead of the cache."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.TRAIN.DATASET = cfg.TEST.DATASET = "synthetic"
    cfg.freeze()
    return cfg


@pytest.fixture(scope="module")
def every_frame_cache(synthetic_dir, tmp_path_factory):
    """A cache of every frame (DATA.FEATURES_FPS above any video's fps), with the model that made it."""
    cfg = features_cfg(
        synthetic_dir,
        tmp_path_factory.mktemp("cache") / "all",
        "DATA.FEATURES_FPS",
        1000.0,
        "TEST.NUM_SPATIAL_CROPS",
        1,
    )
    model = build_extraction_model(cfg)
    extract_features(cfg, model=model)
    return cfg, model


def test_nearest_positions():
    cached = np.array([0, 10, 20, 30])
    assert nearest_positions(cached, np.array([0, 4, 5, 6, 29, 31, 100, -3])).tolist() == [0, 0, 0, 1, 3, 3, 3, 0]


def test_cached_logits_equal_end_to_end_logits_full_video(synthetic_dir, tmp_path):
    cfg = features_cfg(synthetic_dir, tmp_path / "cache")  # FEATURES_FPS 0: TEST.FULL_VIDEO_FRAMES per video
    model = build_extraction_model(cfg)
    counts = extract_features(cfg, ["test"], model=model)
    assert counts["test"] == {"videos": 6, "extracted": 6, "cached": 0, "failed": 0}
    cached = run_inference(model, build_loader(cfg, "test", "full_video"), cfg, torch.device("cpu"))
    e2e = run_inference(model, build_loader(video_cfg(cfg), "test", "full_video"), cfg, torch.device("cpu"))
    assert (cached["scores"] - e2e["scores"]).abs().max() <= 1e-4
    # the logits themselves, item by item; and the model runs no backbone on cached inputs
    features, videos = build_dataset(cfg, "test", "full_video"), build_dataset(video_cfg(cfg), "test", "full_video")
    calls = []
    hook = model.backbone.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        for i in range(len(videos)):
            a, b = features[(i, 0)], videos[(i, 0)]
            assert torch.equal(a["frame_idx"], b["frame_idx"])
            assert a["embeddings"].shape == (8, 192)
            calls.clear()
            from_cache = model(embeddings=a["embeddings"][None], frame_idx=a["frame_idx"][None])
            assert not calls
            end_to_end = model(b["frames"][None], b["frame_idx"][None])
            assert (from_cache - end_to_end).abs().max() <= 1e-4
    hook.remove()


def test_cached_multi_view_and_train_clips_match_the_video_dataset(every_frame_cache):
    cfg, model = every_frame_cache
    features, videos = build_dataset(cfg, "test", "multi_view"), build_dataset(video_cfg(cfg), "test", "multi_view")
    assert features.num_views == videos.num_views == 2 and len(features) == len(videos) == 12
    with torch.no_grad():
        for key in [(0, 0), (1, 0), (7, 0), (11, 0)]:
            a, b = features[key], videos[key]
            assert torch.equal(a["frame_idx"], b["frame_idx"]) and a["temporal_idx"] == b["temporal_idx"]
            diff = model(embeddings=a["embeddings"][None], frame_idx=a["frame_idx"][None]) - model(
                b["frames"][None], b["frame_idx"][None]
            )
            assert diff.abs().max() <= 1e-4
    train_f, train_v = build_dataset(cfg, "train"), build_dataset(video_cfg(cfg), "train")
    for key in [(0, 0), (3, 1), (5, 7)]:  # the same random footprint for the same (index, epoch)
        assert torch.equal(train_f[key]["frame_idx"], train_v[key]["frame_idx"])
    assert not torch.equal(train_f[(3, 1)]["frame_idx"], train_f[(3, 2)]["frame_idx"])


def test_multi_view_on_features_has_one_crop_whatever_num_spatial_crops(every_frame_cache):
    cfg, model = every_frame_cache
    cfg = cfg.clone()
    cfg.defrost()
    cfg.TEST.NUM_SPATIAL_CROPS = 3
    cfg.freeze()
    loader = build_loader(cfg, "test", "multi_view")
    assert loader.dataset.num_views == 2 and loader.dataset.view.crops == 1
    result = run_inference(model, loader, cfg, torch.device("cpu"))
    assert result["views"].tolist() == [2] * 6


def test_extraction_resumes_and_redoes_only_what_is_missing(synthetic_dir, tmp_path, monkeypatch):
    cfg = features_cfg(synthetic_dir, tmp_path / "cache")
    model = build_extraction_model(cfg)
    first = extract_features(cfg, ["train", "val"], model=model)
    assert first["train"] == {"videos": 12, "extracted": 12, "cached": 0, "failed": 0}
    index = json.load(open(tmp_path / "cache" / "train.json"))
    files = [os.path.join(tmp_path, "cache", v["file"]) for v in index["videos"]]
    stamps = {f: os.stat(f).st_mtime_ns for f in files}
    again = extract_features(cfg, ["train", "val"], model=model)
    assert again["train"] == {"videos": 12, "extracted": 0, "cached": 12, "failed": 0}
    assert again["val"] == {"videos": 6, "extracted": 0, "cached": 6, "failed": 0}
    assert all(os.stat(f).st_mtime_ns == stamps[f] for f in files)
    os.unlink(files[3])
    with open(files[5], "r+b") as f:  # a damaged file is redone too
        f.truncate(100)
    open(tmp_path / "cache" / "train" / ".tmp-left-by-a-crash.pyth", "wb").close()
    decoded = []  # the videos handed to the decoding side: only those to redo, none of the cached ones
    real_pieces = VideoFrames.pieces

    def pieces(self, decoder, pos, path):
        decoded.append(path)
        return real_pieces(self, decoder, pos, path)

    monkeypatch.setattr(VideoFrames, "pieces", pieces)
    third = extract_features(cfg, ["train"], model=model)
    assert decoded == [index["videos"][3]["path"], index["videos"][5]["path"]]
    assert third["train"] == {"videos": 12, "extracted": 2, "cached": 10, "failed": 0}
    assert [f for f in files if os.stat(f).st_mtime_ns != stamps.get(f)] == [files[3], files[5]]
    assert not any(n.startswith(".tmp-") for n in os.listdir(tmp_path / "cache" / "train"))
    assert load_feature_file(files[5])["embeddings"].shape == (8, 192)
    assert json.load(open(tmp_path / "cache" / "train.json")) == index


def test_a_bad_video_is_skipped_counted_and_reported(synthetic_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    test_rows = open(data / "test.csv").read().split()
    train_rows = open(data / "train.csv").read().split()
    with open(data / test_rows[2], "wb") as f:
        f.write(b"not a video at all" * 20)
    open(data / train_rows[0], "wb").close()  # zero bytes
    os.remove(data / test_rows[4])  # listed, not on disk
    cfg = features_cfg(str(data), tmp_path / "cache")
    counts = extract_features(cfg, ["train", "test"])
    assert counts["train"] == {"videos": 12, "extracted": 11, "cached": 0, "failed": 1}
    assert counts["test"] == {"videos": 6, "extracted": 4, "cached": 0, "failed": 2}
    entries = json.load(open(tmp_path / "cache" / "test.json"))["videos"]
    assert entries[1]["file"] is None and "cannot be opened as a video" in entries[1]["error"]
    assert entries[5]["missing"] and entries[5]["path"].endswith(test_rows[4])  # recorded after the others
    test = build_dataset(cfg, "test", "full_video")
    assert test.num_videos == 6 and test.is_missing(5) and not test.is_missing(1)
    assert [bool(test[(i, 0)]["ok"]) for i in range(6)] == [True, False, True, True, True, False]
    assert build_dataset(cfg, "train").num_videos == 11  # left out of training
    again = extract_features(cfg, ["test"])  # a failed video is retried, the rest is skipped
    assert again["test"] == {"videos": 6, "extracted": 0, "cached": 4, "failed": 2}


def test_a_cache_of_another_backbone_is_a_clear_error(every_frame_cache):
    from vtn.models import build_model

    cfg, _ = every_frame_cache
    other = cfg.clone()
    other.defrost()
    other.VTN.BACKBONE_KWARGS.embed_dim = 96
    other.freeze()
    dataset = build_dataset(other, "test", "full_video")
    with pytest.raises(
        FeatureCacheError, match=r"holds 192-d embeddings of backbone 'vit_tiny_patch16_224'.*gives 96-d"
    ):
        dataset.check_model(build_model(other))
    with pytest.raises(ValueError, match=r"expects \(B, T, 96\) frame embeddings"):
        build_model(other)(embeddings=dataset[(0, 0)]["embeddings"][None])


def test_extracting_into_a_cache_made_otherwise_is_an_error(every_frame_cache):
    cfg, model = every_frame_cache
    other = cfg.clone()
    other.defrost()
    other.DATA.FEATURES_FPS = 2.0
    other.freeze()
    with pytest.raises(FeatureCacheError, match=r"made with other settings \(sampling: cache \{'fps': 1000.0\} vs now"):
        extract_features(other, ["test"], model=model)


def test_missing_cache_and_config_errors(synthetic_dir, tmp_path):
    cfg = features_cfg(synthetic_dir, tmp_path / "nothing")
    with pytest.raises(FeatureCacheError, match="holds no feature cache.*tools/extract_features.py"):
        build_dataset(cfg, "train")
    base = TINY_MODEL_OPTS + synthetic_opts(synthetic_dir) + ["TRAIN.DATASET", "features"]
    with pytest.raises(ConfigError, match="DATA.FEATURES_DIR = '' is not allowed"):
        load_config(None, base + ["VTN.FREEZE_BACKBONE", True])
    with pytest.raises(ConfigError, match="VTN.FREEZE_BACKBONE = False is not allowed.*cached embeddings cannot"):
        load_config(None, base + ["DATA.FEATURES_DIR", "x"])
    with pytest.raises(ConfigError, match="FEATURES.DTYPE = 'bfloat16' is not one of: 'float32', 'float16'"):
        load_config(None, base + ["DATA.FEATURES_DIR", "x", "VTN.FREEZE_BACKBONE", True, "FEATURES.DTYPE", "bfloat16"])
    with pytest.raises(ConfigError, match="MIXUP.ENABLE = True is not allowed"):
        load_config(None, base + ["DATA.FEATURES_DIR", "x", "VTN.FREEZE_BACKBONE", True, "MIXUP.ENABLE", True])
    with pytest.raises(FeatureCacheError, match="set DATA.FEATURES_SOURCE"):
        extract_features(
            load_config(None, base + ["DATA.FEATURES_DIR", str(tmp_path / "c"), "VTN.FREEZE_BACKBONE", True]), ["train"]
        )


def cache_files(features_dir, split):
    """The index of a split of a cache, and the contents of its files in the index's order (None: failed)."""
    index = json.load(open(os.path.join(features_dir, f"{split}.json")))
    return index, [
        load_feature_file(os.path.join(features_dir, v["file"])) if v["file"] else None for v in index["videos"]
    ]


def with_values(cfg, **values):
    """A copy of `cfg` with `values` ("DATA__FEATURES_DIR": ... for DATA.FEATURES_DIR)."""
    cfg = cfg.clone()
    cfg.defrost()
    for key, value in values.items():
        group, name = key.split("__")
        cfg[group][name] = value
    cfg.freeze()
    return cfg


def test_loader_workers_give_the_cache_of_the_main_process(synthetic_dir, tmp_path):
    """Decoding in 2 DataLoader workers: the same index (bad and missing videos included, in order) and the same
    files as decoding in the main process."""
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    rows = open(data / "test.csv").read().split()
    with open(data / rows[2], "wb") as f:
        f.write(b"not a video at all" * 20)
    os.remove(data / rows[4])
    out = {}
    for workers in (0, 2):
        cfg = features_cfg(str(data), tmp_path / f"w{workers}", "DATA_LOADER.NUM_WORKERS", workers)
        counts = extract_features(cfg, ["test"], model=build_extraction_model(cfg))
        assert counts["test"] == {"videos": 6, "extracted": 4, "cached": 0, "failed": 2}
        out[workers] = cache_files(tmp_path / f"w{workers}", "test")
    (index0, files0), (index2, files2) = out[0], out[2]
    assert index0 == index2
    assert [v["file"] is None for v in index2["videos"]] == [False, True, False, False, False, True]
    assert "cannot be opened as a video" in index2["videos"][1]["error"] and index2["videos"][5]["missing"]
    for a, b in zip(files0, files2):
        if a is not None:
            assert torch.equal(a["embeddings"], b["embeddings"]) and torch.equal(a["frame_idx"], b["frame_idx"])


def test_float16_storage_halves_the_files_and_keeps_the_logits(every_frame_cache, tmp_path):
    cfg32, model = every_frame_cache
    cfg16 = with_values(cfg32, DATA__FEATURES_DIR=str(tmp_path / "half"), FEATURES__DTYPE="float16")
    extract_features(cfg16, ["test"], model=model)
    assert json.load(open(tmp_path / "half" / "manifest.json"))["dtype"] == "float16"
    index32, files32 = cache_files(cfg32.DATA.FEATURES_DIR, "test")
    index16, files16 = cache_files(cfg16.DATA.FEATURES_DIR, "test")
    assert [v["path"] for v in index32["videos"]] == [v["path"] for v in index16["videos"]]
    for v32, v16, a, b in zip(index32["videos"], index16["videos"], files32, files16):
        assert a["embeddings"].dtype == torch.float32 and b["embeddings"].dtype == torch.float16
        assert (b["embeddings"].float() - a["embeddings"]).abs().max() <= 1e-2
        size32 = os.path.getsize(os.path.join(cfg32.DATA.FEATURES_DIR, v32["file"]))
        size16 = os.path.getsize(os.path.join(cfg16.DATA.FEATURES_DIR, v16["file"]))
        saved = a["embeddings"].numel() * 2  # two bytes per value
        assert abs((size32 - size16) - saved) <= 256 and size16 < 0.6 * size32, (size32, size16)
    # read back as float32; the model's logits within 1e-2 of those on float32 storage
    half, full = build_dataset(cfg16, "test", "full_video"), build_dataset(cfg32, "test", "full_video")
    with torch.no_grad():
        for i in range(len(full)):
            a, b = full[(i, 0)], half[(i, 0)]
            assert b["embeddings"].dtype == torch.float32 and torch.equal(a["frame_idx"], b["frame_idx"])
            diff = model(embeddings=b["embeddings"][None], frame_idx=b["frame_idx"][None]) - model(
                embeddings=a["embeddings"][None], frame_idx=a["frame_idx"][None]
            )
            assert 0 < diff.abs().max() <= 1e-2  # rounded, yet close
    # the dtype is part of what made a cache; a manifest without it (made before the key) stands for float32
    with pytest.raises(FeatureCacheError, match=r"other settings \(dtype: cache 'float16' vs now 'float32'\)"):
        extract_features(with_values(cfg32, DATA__FEATURES_DIR=str(tmp_path / "half")), ["test"], model=model)
    manifest = json.load(open(tmp_path / "half" / "manifest.json"))
    del manifest["dtype"]
    json.dump(manifest, open(tmp_path / "half" / "manifest.json", "w"))
    with pytest.raises(FeatureCacheError, match=r"other settings \(dtype: cache 'float32' vs now 'float16'\)"):
        extract_features(cfg16, ["test"], model=model)


def test_mixed_precision_is_asked_for_and_off_on_the_cpu(every_frame_cache, tmp_path, monkeypatch):
    """TRAIN.MIXED_PRECISION: the backbone runs under autocast_for(cfg), which is disabled on the CPU (the cache
    is then that of fp32) and is torch.autocast on CUDA (what runs there is a GPU check: GETTING_STARTED.md)."""
    cfg, model = every_frame_cache
    amp = with_values(cfg, DATA__FEATURES_DIR=str(tmp_path / "amp"), TRAIN__MIXED_PRECISION=True)
    calls = []
    real = extract_module.autocast_for

    def autocast_for(c):
        context = real(c)
        calls.append((c.TRAIN.MIXED_PRECISION, isinstance(context, torch.autocast)))
        return context

    monkeypatch.setattr(extract_module, "autocast_for", autocast_for)
    extract_features(amp, ["test"], model=model)
    index = json.load(open(tmp_path / "amp" / "test.json"))
    pieces = sum(-(-v["num_cached"] // 64) for v in index["videos"])  # VTN.BACKBONE_CHUNK_SIZE 0: 64
    assert calls == [(True, False)] * pieces  # asked for on every backbone pass, disabled on the CPU
    assert json.load(open(tmp_path / "amp" / "manifest.json"))["mixed_precision"] == ""
    for a, b in zip(cache_files(cfg.DATA.FEATURES_DIR, "test")[1], cache_files(amp.DATA.FEATURES_DIR, "test")[1]):
        assert torch.equal(a["embeddings"], b["embeddings"])
    gpu = amp.clone()
    gpu.defrost()
    gpu.NUM_GPUS = 1
    with pytest.warns(UserWarning, match="CUDA is not available"):  # this machine's torch disables it
        assert isinstance(real(gpu), torch.autocast) and real(gpu).fast_dtype == torch.float16


@pytest.mark.parametrize("features_fps", [1000.0, 0.0])
def test_full_video_of_unevenly_spaced_frames_picks_the_frames_of_the_video_dataset(tmp_path, features_fps):
    """A video with dropped frames (18 frames over 29.6 s): the full-video frames of the cache (every frame, or
    TEST.FULL_VIDEO_FRAMES per video) are those the video dataset shows at the same instants, from the frames'
    timestamps, not from their count."""
    from tests.datasets.odd_videos import DROPPED_PTS, write_video
    from vtn.datasets import sampling

    data = tmp_path / "data"
    os.makedirs(data)
    write_video(str(data / "dropped.mp4"), "mp4", "mpeg4", len(DROPPED_PTS), rate=15, pts=DROPPED_PTS)
    (data / "test.csv").write_text("dropped.mp4 2\n")
    cfg = features_cfg(str(data), str(tmp_path / "cache"), "DATA.FEATURES_SOURCE", "kinetics")
    cfg.defrost()
    cfg.DATA.FEATURES_FPS = features_fps
    cfg.freeze()
    extract_features(cfg, ["test"], model=build_extraction_model(cfg))
    videos_cfg = cfg.clone()
    videos_cfg.defrost()
    videos_cfg.TRAIN.DATASET = videos_cfg.TEST.DATASET = "kinetics"
    videos_cfg.freeze()
    videos = build_dataset(videos_cfg, "test", "full_video")
    info = videos.info(videos.paths[0])
    assert info.times is not None and info.num_frames == len(DROPPED_PTS)
    by_time = videos[(0, 0)]["frame_idx"]
    # not vacuous: by count the frames would be others (the evenly spaced picks of 18 frames)
    assert by_time.tolist() != sampling.full_video_indices(info.num_frames, 8).tolist()
    # the frames shown at the instants (k + 1/2) / 8 of the 29.6 s (444 / 15: to the end of the last frame)
    shown = [max(i for i, p in enumerate(DROPPED_PTS) if p <= (k + 0.5) / 8 * 444) for k in range(8)]
    assert by_time.tolist() == shown == [5, 9, 12, 12, 14, 15, 15, 15]
    cached = build_dataset(cfg, "test", "full_video")[(0, 0)]
    assert torch.equal(cached["frame_idx"], by_time)
