"""The model you use outside training (what `vtn.load` returns): load a trained VTN and classify or embed whole videos.

    import vtn
    model = vtn.load("configs/Kinetics/VIT_B_VTN.yaml", checkpoint="model.pyth", opts=["MODEL.NUM_CLASSES", "400"])
    model.predict("video.mp4", topk=5)   # [{"label": "abseiling", "score": 0.91}, ...]
    model.embed("video.mp4")             # VideoEmbedding(frame_idx (T,), frame_embeddings (T, D), cls_feature (D,))

The weights are found as the test phase finds them (`find_test_checkpoint`), and the videos go through the same
full-video protocol, preprocessing and bounded-memory streaming as run_net's full-video test (`VideoPredictor`).
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Union

import torch

from vtn.config import load_config
from vtn.datasets.annotations import find_class_names
from vtn.engine.checkpoint import CheckpointError
from vtn.engine.components import register_components
from vtn.engine.tester import find_test_checkpoint, load_for_test
from vtn.inference.streaming import VideoPrediction, VideoPredictor
from vtn.inference.timeline import compute_timeline, window_rows
from vtn.models import build_model
from vtn.utils.errors import ConfigError
from vtn.video.decoder import VideoDecodeError

register_components()  # every name a config is validated against, as the tools do

PathLike = Union[str, os.PathLike]


@dataclass
class VideoEmbedding:
    path: str
    frame_idx: torch.Tensor  # (T,) indices of the frames used, in the video
    frame_embeddings: torch.Tensor  # (T, D) backbone features, before the temporal encoder
    cls_feature: torch.Tensor  # (D',) the final [CLS] feature, the input of the classification head


def resolve_device(device: Union[str, torch.device, None]) -> torch.device:
    """`None`: the current CUDA device when there is one, else the CPU; otherwise the device named."""
    if device is None:
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"device={device!r} is not a device; give e.g. 'cpu', 'cuda' or 'cuda:1'") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={str(device)!r} but CUDA is not available; use device='cpu'")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        elif device.index >= torch.cuda.device_count():
            raise ConfigError(f"device={str(device)!r} but this machine has {torch.cuda.device_count()} CUDA devices")
    return device


def checkpoint_opts(checkpoint: Optional[PathLike]) -> list:
    """The overrides that `checkpoint` stands for: a file is TEST.CHECKPOINT_FILE_PATH, a folder is OUTPUT_DIR
    (its best or newest checkpoint is then used, as the test phase picks it)."""
    if checkpoint is None:
        return []
    path = os.fspath(checkpoint)
    if os.path.isdir(path):
        return ["OUTPUT_DIR", path, "TEST.CHECKPOINT_FILE_PATH", ""]
    if os.path.isfile(path):
        return ["TEST.CHECKPOINT_FILE_PATH", path]
    raise CheckpointError(f"checkpoint={path!r} does not exist; give a .pyth file or a run's OUTPUT_DIR")


def check_video(path: PathLike) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoDecodeError(f"{path}: no such video file")
    return path


class VideoModel:
    """A trained VTN that classifies (`predict`) or embeds (`embed`) whole videos, one at a time."""

    def __init__(self, cfg, predictor: VideoPredictor, class_names: Optional[list] = None):
        self.cfg = cfg
        self.predictor = predictor
        self.class_names = class_names

    @property
    def device(self) -> torch.device:
        return self.predictor.device

    @property
    def checkpoint(self) -> Optional[str]:
        """The weights' file; None for random weights (TEST.ALLOW_RANDOM_INIT)."""
        return getattr(self.predictor, "checkpoint", None)

    def label(self, class_id: int) -> str:
        names = self.class_names
        return str(names[class_id]) if names and class_id < len(names) else str(class_id)

    def run(self, video: PathLike, return_cls: bool = False) -> VideoPrediction:
        """The predictor's whole output for one video (scores, frames, embeddings, video info)."""
        path = check_video(video)
        try:
            return self.predictor.predict(path, return_cls=return_cls)
        except (VideoDecodeError, CheckpointError):
            raise
        except (OSError, ValueError, EOFError) as e:  # PyAV's errors are OSError / ValueError subclasses
            raise VideoDecodeError(f"{path}: cannot be decoded ({e.__class__.__name__}: {e})") from e

    def predict(self, videos: Union[PathLike, Sequence[PathLike]], topk: int = 5):
        """Top-`topk` classes of one video, `[{"label": ..., "score": ...}, ...]` (softmax probabilities, best
        first), or of each video of a list (a list of such lists). A missing or undecodable file raises a
        VideoDecodeError naming it."""
        if isinstance(videos, (str, os.PathLike)):
            return self._top(self.run(videos), topk)
        return [self._top(self.run(v), topk) for v in videos]

    def _top(self, prediction: VideoPrediction, k: int) -> list:
        return [{"label": self.label(c), "score": float(s)} for c, s in prediction.topk(k)]

    def embed(self, video: PathLike) -> VideoEmbedding:
        """The frame indices used, their backbone embeddings (before the temporal encoder) and the final [CLS]
        feature (the head's input) of one video."""
        p = self.run(video, return_cls=True)
        return VideoEmbedding(p.path, p.frame_idx, p.embeddings, p.cls_feature)

    def timeline(self, video: PathLike, seconds: float, topk: int = 5) -> list:
        """Top-`topk` classes of consecutive windows of `seconds` over the whole video, in order:
        `[{"start_s", "end_s", "num_frames", "top": [{"label", "score"}, ...]}, ...]`. Each window gets
        DATA.NUM_FRAMES frames spread over it; the backbone runs once per frame (streamed at bounded memory) and
        each window's temporal-encoder pass reuses those embeddings (vtn/inference/timeline.py)."""
        path = check_video(video)
        try:
            result = compute_timeline(self.predictor, path, seconds)
        except (VideoDecodeError, CheckpointError, ConfigError):
            raise
        except (OSError, ValueError, EOFError) as e:
            raise VideoDecodeError(f"{path}: cannot be decoded ({e.__class__.__name__}: {e})") from e
        return window_rows(result, self.label, topk)


def load(
    cfg_file: Union[PathLike, Sequence[PathLike], None],
    checkpoint: Optional[PathLike] = None,
    opts: Sequence = (),
    device: Union[str, torch.device, None] = None,
) -> VideoModel:
    """The model of `cfg_file` (one YAML file or several, merged in order) with `opts` overrides (KEY VALUE ...,
    as on the command line) and its weights: `checkpoint` (a .pyth file, or an OUTPUT_DIR whose best or newest
    checkpoint is taken), else as the test phase finds them (TEST.CHECKPOINT_FILE_PATH, else OUTPUT_DIR's); no
    weights is an error unless TEST.ALLOW_RANDOM_INIT is True. `device`: None picks CUDA when available."""
    dev = resolve_device(device)
    if cfg_file is None:  # the defaults and `opts` only
        files = []
    elif isinstance(cfg_file, (str, os.PathLike)):
        files = [os.fspath(cfg_file)]
    else:
        files = [os.fspath(f) for f in cfg_file]
    for f in files:
        if not os.path.isfile(f):
            raise ConfigError(f"config file {f!r} does not exist")
    cfg = load_config(files, [str(o) for o in opts] + checkpoint_opts(checkpoint) + ["NUM_GPUS", 0])
    return from_config(cfg, dev)


def from_config(cfg, device: Union[str, torch.device, None] = None) -> VideoModel:
    """The model of a loaded config with its weights as the test phase finds them (what `load` and
    tools/predict.py share)."""
    dev = resolve_device(device)
    path = find_test_checkpoint(cfg)  # before building: a missing checkpoint fails fast
    model = build_model(cfg, gpu_id=dev.index if dev.type == "cuda" else None)
    if path is not None:
        load_for_test(model, path, cfg)
    model = model.to(dev).eval()
    predictor = VideoPredictor(cfg, model, dev)
    predictor.checkpoint = path
    return VideoModel(cfg, predictor, find_class_names(cfg))
