"""What a view of a video is: one value, parsed once from the config, for every place that needs it.

A protocol says how a video is cut into views (paper sec. 4.1): `train_clip` (one clip at a random start, with
random spatial augmentation), `single_view` (the middle clip, center crop), `multi_view` (TEST.NUM_ENSEMBLE_VIEWS
clips spread over the video x TEST.NUM_SPATIAL_CROPS crops each) and `full_video` (TEST.FULL_VIDEO_FRAMES frames
spread over the whole video, one pass). A test pass may also shuffle the frames of every view before the model
sees them (sec. 5.1, "test-time shuffle"): its name is the protocol's with `_shuffled` added, the name the
results table, test_results_<name>.json and predictions_<name>.* use.

`view_spec(cfg, name)` builds the `ViewSpec` of a protocol name, `views_to_test(cfg)` lists the test passes of a
config, `default_view(cfg, split)` is the view a split is read with when none is named. The datasets read a
view's fields (vtn/datasets/sampling.py picks its frames, `view_frame_indices`); the tester and evaluator name
and shuffle their runs by it. This module holds the protocol names; it imports nothing of vtn.
"""

import dataclasses
from dataclasses import dataclass
from typing import Optional, Union

# every protocol a dataset can be read with
PROTOCOLS = ("train_clip", "single_view", "multi_view", "full_video")
# the protocols of a test pass (TEST.PROTOCOLS) and of validation (TRAIN.EVAL_PROTOCOL)
TEST_PROTOCOLS = ("multi_view", "full_video")
EVAL_PROTOCOLS = ("single_view", "full_video")
SHUFFLED = "_shuffled"
# the names TEST.PROTOCOLS may list: a protocol, and the same with its frames shuffled (sec. 5.1)
TEST_PROTOCOL_NAMES = TEST_PROTOCOLS + tuple(p + SHUFFLED for p in TEST_PROTOCOLS)
SHORT_VIDEO_MODES = ("clamp", "loop")


def footprint_seconds(cfg) -> float:
    """A clip's footprint in seconds: DATA.TEMPORAL_FOOTPRINT, or PySlowFast's NUM_FRAMES x SAMPLING_RATE /
    TARGET_FPS when it is 0."""
    d = cfg.DATA
    return d.TEMPORAL_FOOTPRINT if d.TEMPORAL_FOOTPRINT > 0 else d.NUM_FRAMES * d.SAMPLING_RATE / d.TARGET_FPS


@dataclass(frozen=True)
class ViewSpec:
    """How a dataset cuts each video into views, and whether a test pass shuffles their frames.

    protocol: one of PROTOCOLS. clips: temporal clips per video; crops: spatial crops per clip (a video has
    clips x crops views, numbered clip-major: view = temporal_idx x crops + spatial_idx). frames: frames per
    view. seconds: a clip's footprint (full_video spreads its frames over the whole video instead).
    short_video_mode: what a clip does past the end of a shorter video ("clamp" repeats the last frame, "loop"
    starts again). shuffled: the model sees every view's frames in a seeded random order; the frames read are
    those of the unshuffled view.
    """

    protocol: str
    frames: int
    seconds: float
    clips: int = 1
    crops: int = 1
    short_video_mode: str = "clamp"
    shuffled: bool = False

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        for field in ("frames", "clips", "crops"):
            if getattr(self, field) < 1:
                raise ValueError(f"a view's {field} must be >= 1, got {getattr(self, field)}")
        if self.short_video_mode not in SHORT_VIDEO_MODES:
            raise ValueError(f"DATA.SHORT_VIDEO_MODE must be 'clamp' or 'loop', got {self.short_video_mode!r}")
        if self.shuffled and self.training:
            raise ValueError("train_clip cannot be shuffled: shuffled frames are a test pass (sec. 5.1)")

    @property
    def views(self) -> int:
        """Views per video: clips x crops."""
        return self.clips * self.crops

    @property
    def name(self) -> str:
        """The protocol, with `_shuffled` when the frames are shuffled: the name of a test pass in the results
        table, test_results_<name>.json and predictions_<name>.*."""
        return self.protocol + (SHUFFLED if self.shuffled else "")

    @property
    def training(self) -> bool:
        """A training clip: a random start and random spatial augmentation, at DATA.TRAIN_CROP_SIZE."""
        return self.protocol == "train_clip"

    @property
    def whole_video(self) -> bool:
        """Frames spread over the whole video in one view (full_video), rather than clips of `seconds`."""
        return self.protocol == "full_video"

    def split(self, view_index: int) -> tuple[int, int]:
        """(temporal_idx, spatial_idx) of a video's view `view_index`."""
        if not 0 <= view_index < self.views:
            raise ValueError(f"view {view_index} out of range for {self.views} views ({self.name})")
        return divmod(view_index, self.crops)

    def one_crop(self) -> "ViewSpec":
        """The same view with one (center) crop per clip, e.g. for cached embeddings."""
        return dataclasses.replace(self, crops=1)

    def with_shuffled(self, shuffled: bool) -> "ViewSpec":
        """The same view with its frames shuffled or not."""
        return dataclasses.replace(self, shuffled=shuffled)


def parse_name(name: str) -> tuple[str, bool]:
    """(protocol, shuffled) of a protocol name such as 'multi_view' or 'full_video_shuffled'."""
    protocol = name[: -len(SHUFFLED)] if name.endswith(SHUFFLED) else name
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS} (or one of them + {SHUFFLED!r}), got {name!r}")
    return protocol, protocol != name


def view_spec(cfg, name: str) -> ViewSpec:
    """The view of a protocol name (with or without `_shuffled`) under `cfg`."""
    protocol, shuffled = parse_name(name)
    d, t = cfg.DATA, cfg.TEST
    multi = protocol == "multi_view"
    return ViewSpec(
        protocol=protocol,
        frames=t.FULL_VIDEO_FRAMES if protocol == "full_video" else d.NUM_FRAMES,
        seconds=footprint_seconds(cfg),
        clips=t.NUM_ENSEMBLE_VIEWS if multi else 1,
        crops=t.NUM_SPATIAL_CROPS if multi else 1,
        short_video_mode=d.SHORT_VIDEO_MODE,
        shuffled=shuffled,
    )


def as_view(cfg, view: Union[ViewSpec, str]) -> ViewSpec:
    """A ViewSpec as it is; a protocol name (a dataset builder written before views) as `view_spec` reads it."""
    if isinstance(view, ViewSpec):
        return view
    if isinstance(view, str):
        return view_spec(cfg, view)
    raise TypeError(f"a view is a ViewSpec or a protocol name, got {type(view).__name__} {view!r}")


def views_to_test(cfg) -> list[ViewSpec]:
    """The test passes of a config: TEST.PROTOCOLS in order (the first is the headline), then, with
    TEST.SHUFFLE_ABLATION, each unshuffled one again with its frames shuffled (none twice)."""
    views = [view_spec(cfg, name) for name in cfg.TEST.PROTOCOLS]
    if cfg.TEST.SHUFFLE_ABLATION:
        views += [v.with_shuffled(True) for v in list(views) if not v.shuffled and v.with_shuffled(True) not in views]
    return views


def default_view(cfg, split: str) -> ViewSpec:
    """The view a split is read with when none is named: training clips, TRAIN.EVAL_PROTOCOL for validation,
    the headline's frames for testing (unshuffled: shuffling is the model's input, not the dataset's)."""
    if split == "train":
        return view_spec(cfg, "train_clip")
    if split == "val":
        return view_spec(cfg, cfg.TRAIN.EVAL_PROTOCOL)
    return view_spec(cfg, cfg.TEST.PROTOCOLS[0]).with_shuffled(False)


def passes_of(views: list[ViewSpec]) -> list[tuple[ViewSpec, Optional[ViewSpec]]]:
    """(view, shuffled twin or None) of each pass over the test data: a view whose shuffled twin is tested too
    (TEST.SHUFFLE_ABLATION) runs it in the same pass, from the same decoded frames and backbone embeddings."""
    passes = []
    for view in views:
        twin = view.with_shuffled(True)
        if view.shuffled and view.with_shuffled(False) in views:
            continue  # run with its unshuffled view
        passes.append((view, twin if not view.shuffled and twin in views else None))
    return passes
