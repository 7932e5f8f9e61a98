"""Classify one video with a trained VTN: whole-video prediction, top-k class names, optional overlay."""

import logging
from typing import Optional

from vtn.datasets.annotations import find_class_names
from vtn.datasets.decoder import VideoDecodeError
from vtn.engine import distributed as du
from vtn.engine.streaming import VideoPrediction, VideoPredictor
from vtn.engine.tester import find_test_checkpoint, load_for_test
from vtn.models import build_model
from vtn.visualization.overlay import write_prediction

logger = logging.getLogger(__name__)


def load_predictor(cfg) -> VideoPredictor:
    """The model of the config with its checkpoint (TEST.CHECKPOINT_FILE_PATH or OUTPUT_DIR's), streaming."""
    model = build_model(cfg)
    path = find_test_checkpoint(cfg)
    if path is not None:
        load_for_test(model, path, cfg)
    predictor = VideoPredictor(cfg, model, du.device_for(cfg))
    predictor.checkpoint = path  # None: random weights (TEST.ALLOW_RANDOM_INIT)
    return predictor


def describe(prediction: VideoPrediction, class_names, k: int) -> list:
    lines = []
    for rank, (c, score) in enumerate(prediction.topk(k), 1):
        name = class_names[c] if class_names else f"class {c}"
        lines.append(f"{rank}. {name} ({score:.3f})")
    return lines


def run_demo(cfg, video: str, output: Optional[str] = None, top_k: Optional[int] = None) -> VideoPrediction:
    if not video:
        raise VideoDecodeError("no video given: pass --video PATH (or set DEMO.INPUT_VIDEO)")
    predictor = load_predictor(cfg)
    prediction = predictor.predict(video, fps=cfg.DEMO.FPS)
    names = find_class_names(cfg)
    lines = describe(prediction, names, top_k or cfg.DEMO.TOP_K)
    info = prediction.info
    print(f"model: {predictor.checkpoint or 'random weights (TEST.ALLOW_RANDOM_INIT)'}")
    print(
        f"{video}: {info.duration:.1f} s, {info.num_frames} frames at {info.fps:g} fps; "
        f"{len(prediction.frame_idx)} frames in one pass"
    )
    for line in lines:
        print("  " + line)
    if output:
        write_prediction(video, output, lines[:3])
        print(f"wrote {output}")
    return prediction
