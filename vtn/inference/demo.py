"""Classify one video with a trained VTN: whole-video prediction, top-k class names, optional overlay."""

import logging
import os
from typing import Optional

from vtn.datasets.annotations import find_class_names
from vtn.engine import distributed as du
from vtn.engine.tester import find_test_checkpoint, load_for_test
from vtn.inference.streaming import VideoPrediction, VideoPredictor
from vtn.inference.timeline import check_seconds, compute_timeline, describe_windows, write_csv
from vtn.models import build_model
from vtn.utils.files import check_writable
from vtn.video.decoder import VideoDecodeError
from vtn.visualization.overlay import check_prediction_output, write_prediction

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
    if output:
        check_prediction_output(output)  # before the model loads
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


def timeline_csv_path(csv_path: str, plot: str, output: str) -> str:
    """Where the timeline's CSV goes: `--timeline-csv`, else beside the plot with its name (`timeline.png` ->
    `timeline.csv`), else beside `--output` (`out.mp4` -> `out.timeline.csv`); '' for none."""
    if csv_path:
        return csv_path
    if plot:
        return os.path.splitext(plot)[0] + ".csv"
    return os.path.splitext(output)[0] + ".timeline.csv" if output else ""


def run_timeline(cfg, video: str, seconds: float, csv_path: str = "", plot: str = "", top_k=None, output: str = ""):
    """demo_net --timeline: the windows' top classes printed, written to a CSV and optionally plotted."""
    seconds = check_seconds(seconds)
    if not video:
        raise VideoDecodeError("no video given: pass --video PATH (or set DEMO.INPUT_VIDEO)")
    k = top_k or cfg.DEMO.TOP_K
    csv_path = timeline_csv_path(csv_path, plot, output)
    for path, what in ((csv_path, "--timeline-csv"), (plot, "--plot")):
        if path:
            check_writable(path, what)  # before the model loads
    if output:
        check_prediction_output(output)
    predictor = load_predictor(cfg)
    names = find_class_names(cfg)

    def label(c):
        return str(names[c]) if names and c < len(names) else f"class {c}"

    timeline = compute_timeline(predictor, video, seconds)
    info = timeline.info
    print(f"model: {predictor.checkpoint or 'random weights (TEST.ALLOW_RANDOM_INIT)'}")
    print(
        f"{video}: {info.duration:.1f} s, {info.num_frames} frames at {info.fps:g} fps; {len(timeline.windows)} "
        f"windows of {seconds:g} s, {timeline.frames_per_window} frames each"
    )
    for line in describe_windows(timeline, label, min(k, 3)):
        print("  " + line)
    if csv_path:
        write_csv(timeline, csv_path, label, k)
        print(f"wrote {csv_path}")
    if plot:
        from vtn.visualization.timeline_plot import plot_timeline

        plot_timeline(timeline, plot, label)
        print(f"wrote {plot}")
    if output:  # the video or its frame strip, captioned with the classes of highest mean score over the windows
        mean = timeline.scores().mean(0)
        values, ids = mean.topk(min(3, mean.numel()))
        lines = [
            f"{r}. {label(c)} ({s:.3f}, mean of windows)"
            for r, (c, s) in enumerate(zip(ids.tolist(), values.tolist()), 1)
        ]
        write_prediction(video, output, lines)
        print(f"wrote {output}")
    return timeline
