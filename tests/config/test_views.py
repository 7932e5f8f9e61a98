"""What a view of a video is (vtn/config/views.py): parsed once from the config, the test passes in order, the
one frame-index choice of every dataset, and the dataset contract's defaults (vtn/datasets/contract.py)."""

import numpy as np
import pytest
import torch

from tests.helpers import synthetic_opts
from vtn.config import ViewSpec, default_view, load_config, view_spec, views_to_test
from vtn.config.views import TEST_PROTOCOL_NAMES, as_view, footprint_seconds
from vtn.datasets import ViewDataset, sampling
from vtn.datasets.video_dataset import VideoDataset

OPTS = [
    "DATA.NUM_FRAMES",
    16,
    "DATA.TEMPORAL_FOOTPRINT",
    2.56,
    "TEST.NUM_ENSEMBLE_VIEWS",
    10,
    "TEST.NUM_SPATIAL_CROPS",
    3,
    "TEST.FULL_VIDEO_FRAMES",
    250,
]


def cfg_with(*opts):
    return load_config(None, OPTS + list(opts))


# ----------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    "name, clips, crops, frames, shuffled",
    [
        ("train_clip", 1, 1, 16, False),
        ("single_view", 1, 1, 16, False),
        ("multi_view", 10, 3, 16, False),
        ("full_video", 1, 1, 250, False),
        ("multi_view_shuffled", 10, 3, 16, True),
        ("full_video_shuffled", 1, 1, 250, True),
    ],
)
def test_a_protocol_name_gives_its_clips_crops_frames_and_shuffle(name, clips, crops, frames, shuffled):
    view = view_spec(cfg_with("DATA.SHORT_VIDEO_MODE", "loop"), name)
    assert (view.clips, view.crops, view.frames, view.shuffled) == (clips, crops, frames, shuffled)
    assert view.views == clips * crops and view.name == name and view.protocol == name.replace("_shuffled", "")
    assert view.seconds == 2.56 and view.short_video_mode == "loop"
    assert view == view_spec(cfg_with("DATA.SHORT_VIDEO_MODE", "loop"), name)  # a value: equal, hashable
    assert len({view, view_spec(cfg_with("DATA.SHORT_VIDEO_MODE", "loop"), name)}) == 1


def test_the_footprint_follows_pyslowfast_when_it_is_not_given():
    cfg = load_config(None, ["DATA.NUM_FRAMES", 16, "DATA.SAMPLING_RATE", 8, "DATA.TARGET_FPS", 30])
    assert footprint_seconds(cfg) == pytest.approx(16 * 8 / 30)
    assert view_spec(cfg, "single_view").seconds == pytest.approx(16 * 8 / 30)


def test_bad_names_and_views_are_refused():
    cfg = cfg_with()
    with pytest.raises(ValueError, match="protocol must be one of .*'full_vid'"):
        view_spec(cfg, "full_vid")
    with pytest.raises(ValueError, match="train_clip cannot be shuffled"):
        view_spec(cfg, "train_clip_shuffled")
    with pytest.raises(ValueError, match="frames must be >= 1"):
        ViewSpec("full_video", frames=0, seconds=1.0)
    with pytest.raises(ValueError, match="SHORT_VIDEO_MODE"):
        ViewSpec("single_view", frames=4, seconds=1.0, short_video_mode="wrap")
    with pytest.raises(TypeError, match="ViewSpec or a protocol name"):
        as_view(cfg, 3)


def test_validation_allows_the_test_protocol_names_of_views():
    assert TEST_PROTOCOL_NAMES == ("multi_view", "full_video", "multi_view_shuffled", "full_video_shuffled")
    assert [v.name for v in views_to_test(cfg_with("TEST.PROTOCOLS", list(TEST_PROTOCOL_NAMES)))] == list(
        TEST_PROTOCOL_NAMES
    )


def test_a_view_index_splits_clip_major_and_one_crop_keeps_the_rest():
    view = view_spec(cfg_with(), "multi_view")
    assert [view.split(i) for i in range(view.views)] == [(t, s) for t in range(10) for s in range(3)]
    with pytest.raises(ValueError, match="view 30 out of range for 30 views"):
        view.split(30)
    one = view.one_crop()
    assert (one.clips, one.crops, one.views, one.frames, one.name) == (10, 1, 10, 16, "multi_view")
    assert [one.split(i) for i in range(10)] == [(t, 0) for t in range(10)]
    assert view.with_shuffled(True).one_crop().name == "multi_view_shuffled"


# ----------------------------------------------------------------------------- the test passes
def test_test_views_are_the_listed_protocols_in_order_then_the_shuffle_ablation():
    assert [v.name for v in views_to_test(cfg_with())] == ["multi_view"]
    both = ["multi_view", "full_video"]
    ablation = views_to_test(cfg_with("TEST.PROTOCOLS", both, "TEST.SHUFFLE_ABLATION", True))
    assert [v.name for v in ablation] == ["multi_view", "full_video", "multi_view_shuffled", "full_video_shuffled"]
    assert [v.shuffled for v in ablation] == [False, False, True, True]
    assert ablation[2] == ablation[0].with_shuffled(True)
    # without the ablation, the list is what runs; the first protocol listed is the headline
    assert [v.name for v in views_to_test(cfg_with("TEST.PROTOCOLS", both[::-1]))] == ["full_video", "multi_view"]
    # a shuffled protocol as the primary test: nothing else runs, and nothing is shuffled twice
    shuffled = views_to_test(cfg_with("TEST.PROTOCOLS", ["full_video_shuffled"], "TEST.SHUFFLE_ABLATION", True))
    assert [v.name for v in shuffled] == ["full_video_shuffled"]
    listed = ["full_video", "full_video_shuffled", "multi_view"]
    mixed = cfg_with("TEST.PROTOCOLS", listed, "TEST.SHUFFLE_ABLATION", True)
    assert [v.name for v in views_to_test(mixed)] == [
        "full_video",
        "full_video_shuffled",
        "multi_view",
        "multi_view_shuffled",
    ]


def test_default_views_of_the_splits():
    cfg = cfg_with("TRAIN.EVAL_PROTOCOL", "full_video", "TEST.PROTOCOLS", ["multi_view_shuffled", "full_video"])
    assert default_view(cfg, "train") == view_spec(cfg, "train_clip")
    assert default_view(cfg, "val") == view_spec(cfg, "full_video")
    # the headline's frames: shuffling is the model's input, not the dataset's
    assert default_view(cfg, "test") == view_spec(cfg, "multi_view")


# ----------------------------------------------------------------------------- one frame-index choice
def indices_before_views(cfg, protocol, n, fps, times, temporal_idx, rng):
    """The per-protocol choice VideoDataset._temporal (and FeatureDataset._wanted) made before views."""
    d, seconds = cfg.DATA, footprint_seconds(cfg)
    if protocol == "train_clip":
        return sampling.train_clip_indices(n, fps, d.NUM_FRAMES, seconds, rng, d.SHORT_VIDEO_MODE, times)
    if protocol == "full_video":
        return sampling.full_video_indices(n, cfg.TEST.FULL_VIDEO_FRAMES, fps, times)
    views = cfg.TEST.NUM_ENSEMBLE_VIEWS if protocol == "multi_view" else 1
    return sampling.view_clip_indices(n, fps, d.NUM_FRAMES, seconds, temporal_idx, views, d.SHORT_VIDEO_MODE, times)


def timelines():
    """(num_frames, fps, times) of short and long videos, evenly and unevenly spaced."""
    rng = np.random.default_rng(5)
    out = []
    for n, fps in ((7, 24.0), (30, 30.0), (95, 29.97), (400, 25.0)):
        out.append((n, fps, None))
        gaps = rng.uniform(0.5, 1.5, n) / fps  # dropped frames and a variable rate
        out.append((n, fps, list(np.concatenate([[0.0], np.cumsum(gaps[:-1])]))))
    return out


@pytest.mark.parametrize("mode", ["clamp", "loop"])
@pytest.mark.parametrize("protocol", ["train_clip", "single_view", "multi_view", "full_video"])
def test_view_frame_indices_are_those_of_the_per_protocol_samplers(protocol, mode):
    cfg = cfg_with("DATA.SHORT_VIDEO_MODE", mode, "TEST.NUM_ENSEMBLE_VIEWS", 4, "TEST.FULL_VIDEO_FRAMES", 40)
    view = view_spec(cfg, protocol)
    for n, fps, times in timelines():
        for view_of in (view, view.one_crop(), view.with_shuffled(not view.training)):  # the feature cache's view
            for t in range(view_of.clips):
                for seed in range(3):
                    got = sampling.view_frame_indices(view_of, n, fps, times, t, np.random.default_rng(seed))
                    old = indices_before_views(cfg, protocol, n, fps, times, t, np.random.default_rng(seed))
                    assert got.dtype == old.dtype and np.array_equal(got, old), (protocol, mode, n, times is None, t)


# ----------------------------------------------------------------------------- builders and the contract
def build_mine(cfg, split, protocol):
    """A dataset builder written as GETTING_STARTED.md showed it before views: a protocol string passed on."""
    from vtn.datasets.kinetics import read_kinetics_layout

    cfg = cfg.clone()
    cfg.defrost()
    cfg.DATA.CLASS_INDEX_FILE = "classes.json"
    paths, labels, names, _ = read_kinetics_layout(cfg, split)
    return VideoDataset(cfg, split, protocol, paths, labels, names)


def test_a_builder_that_passes_a_protocol_string_on_still_works(synthetic_dir):
    cfg = load_config(None, synthetic_opts(synthetic_dir))
    by_name, by_view = build_mine(cfg, "test", "multi_view"), build_mine(cfg, "test", view_spec(cfg, "multi_view"))
    assert by_name.view == by_view.view == view_spec(cfg, "multi_view") and by_name.protocol == "multi_view"
    assert by_name.num_views == 6 and len(by_name) == 6 * by_name.num_videos
    a, b = by_name[(10, 0)], by_view[(10, 0)]  # video 1, view 4
    assert (int(a["temporal_idx"]), int(a["spatial_idx"])) == (1, 1)
    assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["frame_idx"], b["frame_idx"])
    with pytest.raises(ValueError, match="protocol must be one of"):
        build_mine(cfg, "test", "multi_vew")


class Listed(ViewDataset):
    """The smallest dataset of the contract: a list of paths (never decoded here)."""

    def __init__(self, cfg, split, view, paths):
        super().__init__(cfg, split, view)
        self.paths = list(paths)
        self.labels = [0] * len(paths)


def test_the_contract_defaults():
    cfg = cfg_with("DATA.PATH_TO_DATA_DIR", "/data/k400")
    ds = Listed(cfg, "test", "multi_view_shuffled", ["a.mp4", "b.mp4"])
    assert ds.view == view_spec(cfg, "multi_view_shuffled") and ds.protocol == "multi_view" and ds.split == "test"
    assert (ds.num_videos, ds.num_views, len(ds), ds.num_listed) == (2, 30, 60, 2)
    assert ds.missing == [] and ds.missing_labels == [] and not ds.is_missing(0)
    assert ds.class_names is None and ds.class_groups == {} and ds.init_advice == ""
    assert ds.data_root == "/data/k400" and ds.check_model(object()) is None
    ds.missing, ds.missing_labels = ["c.mp4"], [1]
    assert ds.num_listed == 3 and ds.num_videos == 2
    assert Listed(cfg, "train", view_spec(cfg, "train_clip"), ["a.mp4"]).view.training
