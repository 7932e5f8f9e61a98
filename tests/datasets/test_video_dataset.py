import logging
import os
import shutil

import pytest
import torch

from tests.datasets.bad_files import make_bad_files
from tests.helpers import synthetic_opts
from vtn.config import load_config
from vtn.datasets import build_dataset
from vtn.datasets.video_dataset import VideoDataset
from vtn.utils.errors import DatasetError


def cfg_for(synthetic_dir, *opts):
    return load_config(None, synthetic_opts(synthetic_dir) + list(opts))


@pytest.mark.parametrize(
    "split, protocol, views, frames",
    [
        ("train", "train_clip", 1, 4),
        ("val", "single_view", 1, 4),
        ("test", "multi_view", 6, 4),
        ("test", "full_video", 1, 8),
    ],
)
def test_items_follow_the_contract(synthetic_dir, split, protocol, views, frames):
    cfg = cfg_for(
        synthetic_dir,
        "DATA.TRAIN_JITTER_SCALES",
        [32, 40],
        "DATA.TRAIN_CROP_SIZE",
        32,
        "DATA.TEST_SCALE",
        32,
        "DATA.TEST_CROP_SIZE",
        32,
    )
    ds = build_dataset(cfg, split, protocol)
    assert ds.protocol == protocol and ds.num_views == views and len(ds) == ds.num_videos * views
    assert ds.class_names[0] == "square_growing" and len(ds.class_names) == 6
    item = ds[(len(ds) - 1, 0)]
    assert set(item) == {
        "frames",
        "label",
        "video_idx",
        "frame_idx",
        "temporal_idx",
        "spatial_idx",
        "ok",
        "decode_failures",
    }
    assert item["frames"].shape == (3, frames, 32, 32) and item["frames"].dtype == torch.float32
    assert item["frame_idx"].shape == (frames,) and item["frame_idx"].dtype == torch.long
    assert item["video_idx"] == ds.num_videos - 1 and item["label"] == ds.labels[-1]
    assert bool(item["ok"]) and item["decode_failures"] == 0
    if protocol == "multi_view":
        assert (item["temporal_idx"].item(), item["spatial_idx"].item()) == (1, 2)
        assert ds[(1, 0)]["spatial_idx"] == 1 and ds[(3, 0)]["temporal_idx"] == 1
    # normalised with DATA.MEAN 0.45 / DATA.STD 0.225: pixel values in [-2, 2.45], never those of raw frames
    # ([0, 1] or [0, 255], never negative)
    low, high = item["frames"].min().item(), item["frames"].max().item()
    assert -2.0 - 1e-4 <= low < 0 and 0 < high <= (1 - 0.45) / 0.225 + 1e-4


def test_training_items_are_reproducible_per_index_and_epoch(synthetic_dir):
    ds = build_dataset(cfg_for(synthetic_dir), "train")
    a, b = ds[(3, 1)], ds[(3, 1)]
    assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["frame_idx"], b["frame_idx"])
    other_epochs = [ds[(3, e)]["frame_idx"] for e in range(2, 8)]
    assert any(not torch.equal(a["frame_idx"], f) for f in other_epochs)


def test_the_same_crop_and_flip_for_every_frame(synthetic_dir):
    """Decode the frames of a training item by hand and check that one crop/flip explains all of them."""
    cfg = cfg_for(
        synthetic_dir,
        "DATA.TRAIN_JITTER_SCALES",
        [48, 64],
        "DATA.TRAIN_CROP_SIZE",
        40,
        "DATA.MEAN",
        [0, 0, 0],
        "DATA.STD",
        [1, 1, 1],
    )
    ds = build_dataset(cfg, "train")
    item = ds[(0, 0)]
    info = ds.info(ds.paths[0])
    import numpy as np

    from vtn.datasets import sampling
    from vtn.datasets import transforms as T

    rng = np.random.default_rng(np.random.SeedSequence([cfg.RNG_SEED, 0, 0, 0]))
    sampling.view_frame_indices(ds.view, info.num_frames, info.fps, info.times, 0, rng)  # the clip start comes first
    params = ds._spatial(info, 0, rng)
    raw, _ = ds.decoder.decode(ds.paths[0], item["frame_idx"].numpy(), size=(params.width, params.height))
    expected = T.to_normalized_tensor(T.apply_crop_flip(raw, params), [0, 0, 0], [1, 1, 1])
    torch.testing.assert_close(item["frames"], expected)


def _dataset_with_bad_files(synthetic_dir, tmp_path, split, *opts):
    cfg = cfg_for(synthetic_dir, *opts)
    good = build_dataset(cfg, "train")
    files = make_bad_files(str(tmp_path), good.paths[0])
    vanished = os.path.join(str(tmp_path), "vanished.mp4")
    shutil.copyfile(good.paths[0], vanished)
    kinds = ["vanished", "zero_byte", "truncated", "not_a_video", "no_video_stream"]
    files["vanished"] = vanished
    paths = [files["missing"]] + [files[k] for k in kinds] + [files["copy_of_good"]]
    protocol = "train_clip" if split == "train" else "full_video"
    ds = VideoDataset(cfg, split, protocol, paths, [0] * 6 + [1], None)
    # a listed video that is not on disk is left out and counted, never decoded
    assert ds.missing == [files["missing"]] and ds.missing_labels == [0] and ds.num_listed == 7
    assert ds.paths == paths[1:] and ds.num_videos == 6 and ds.labels == [0] * 5 + [1]
    os.remove(vanished)  # gone after the dataset was built: fails to decode like a broken file
    return ds, kinds


def test_training_replaces_bad_videos_and_counts_them(synthetic_dir, tmp_path, caplog):
    ds, kinds = _dataset_with_bad_files(synthetic_dir, tmp_path, "train", "DATA_LOADER.NUM_RETRIES", 50)
    with caplog.at_level(logging.WARNING):
        for i, _kind in enumerate(kinds):
            item = ds[(i, 0)]
            assert bool(item["ok"]) and item["decode_failures"] >= 1
            assert item["video_idx"] == 5  # the only good video
            assert os.path.basename(ds.paths[i]) in caplog.text
    for reason in ("does not exist", "empty (0 bytes)", "cannot be opened", "has no video stream"):
        assert reason in caplog.text


def test_training_stops_clearly_when_every_retry_fails(synthetic_dir, tmp_path):
    ds, _ = _dataset_with_bad_files(synthetic_dir, tmp_path, "train", "DATA_LOADER.NUM_RETRIES", 2)
    ds.paths[5] = ds.paths[0]  # no good video left
    with pytest.raises(DatasetError, match=r"3 videos in a row failed to decode in the train split.*check_dataset"):
        ds[(0, 0)]


def test_testing_reports_bad_videos_as_failed(synthetic_dir, tmp_path):
    ds, kinds = _dataset_with_bad_files(synthetic_dir, tmp_path, "test")
    for i in range(len(kinds)):
        item = ds[(i, 0)]
        assert not bool(item["ok"]) and item["decode_failures"] == 1 and item["video_idx"] == i
        assert item["frames"].shape == (3, 8, 224, 224) and item["frames"].abs().sum() == 0
    assert bool(ds[(5, 0)]["ok"])


def test_labels_beyond_num_classes_are_an_error(synthetic_dir):
    cfg = cfg_for(synthetic_dir, "MODEL.NUM_CLASSES", 3)
    with pytest.raises(DatasetError, match="the dataset has 6 classes .* set MODEL.NUM_CLASSES 6"):
        build_dataset(cfg, "train")
    good = build_dataset(cfg_for(synthetic_dir), "train")
    with pytest.raises(DatasetError, match="labels >= MODEL.NUM_CLASSES = 3"):  # integer labels, no class names
        VideoDataset(cfg, "train", "train_clip", good.paths, good.labels, None)


def test_ten_clips_of_three_crops_spread_over_the_whole_video_and_each_clips_crops_share_its_frames(synthetic_dir):
    """The default multi-view test (10 clips x 3 crops): the k-th clip starts at (k + 1/2) / 10 of the start range,
    so the clips cover the whole video (not only its first third, as 30 positions for 10 clips would), and the
    3 crops of a clip are of the same frames."""
    import numpy as np

    cfg = cfg_for(
        synthetic_dir,
        "TEST.NUM_ENSEMBLE_VIEWS",
        10,
        "TEST.NUM_SPATIAL_CROPS",
        3,
        "DATA.TEMPORAL_FOOTPRINT",
        0.2,
        "DATA.TEST_SCALE",
        32,
        "DATA.TEST_CROP_SIZE",
        32,
    )
    ds = build_dataset(cfg, "test", "multi_view")
    assert ds.num_views == 30
    video = max(range(ds.num_videos), key=lambda v: ds.info(ds.paths[v]).num_frames)
    info = ds.info(ds.paths[video])
    assert info.times is None and info.num_frames >= 60  # evenly spaced: frame k is shown at k / fps
    clips = {}
    for view in range(30):
        item = ds[(video * 30 + view, 0)]
        clips.setdefault(int(item["temporal_idx"]), []).append(item)
    assert sorted(clips) == list(range(10))
    span = 0.2 * info.fps
    for k, crops in clips.items():
        assert sorted(int(c["spatial_idx"]) for c in crops) == [0, 1, 2]
        for c in crops[1:]:
            assert torch.equal(c["frame_idx"], crops[0]["frame_idx"]), f"clip {k}: its crops differ in time"
        start = (info.num_frames - span) * (k + 0.5) / 10
        expected = np.floor(start + np.arange(4) * span / 4).astype(np.int64)
        assert crops[0]["frame_idx"].tolist() == expected.tolist(), f"clip {k}"
    firsts = [int(clips[k][0]["frame_idx"][0]) for k in range(10)]
    lasts = [int(clips[k][0]["frame_idx"][-1]) for k in range(10)]
    assert firsts == sorted(firsts) and len(set(firsts)) == 10
    # the clips reach both ends of the video: the first near its start, the last near its end
    assert firsts[0] < 0.1 * info.num_frames and lasts[-1] > 0.85 * info.num_frames


def test_a_loader_copy_keeps_the_probes_of_a_bounded_number_of_videos(synthetic_dir, monkeypatch):
    import vtn.datasets.video_dataset as video_dataset

    monkeypatch.setattr(video_dataset, "INFO_CACHE", 2)
    dataset = build_dataset(load_config(None, synthetic_opts(synthetic_dir)), "train")
    for video in (0, 1, 0, 2):
        dataset.info(dataset.paths[video])
    assert list(dataset._info) == [dataset.paths[0], dataset.paths[2]]  # the least recently used one went
