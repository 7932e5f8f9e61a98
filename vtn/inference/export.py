"""Export a trained VTN as one `torch.export` program (`.pt2`) or an ONNX file, with its input contract beside it
(`model.pt2` -> `model.pt2.json`, `model.onnx` -> `model.onnx.json`), so that it runs without vtn:
`torch.export.load(path).module()(frames, frame_idx)`.

The program takes `frames (B, C, T, H, W)` float, normalised with the contract's mean and std, and `frame_idx (B, T)`
long, each frame's index in the original video (for the position embedding); B and T are dynamic (1 .. max). It is
the model in eval mode with two things fixed for tracing, neither of which changes the logits: the backbone sees all
B * T frames in one pass (no VTN.BACKBONE_CHUNK_SIZE loop), and the temporal encoder is traced in its traceable form,
`with model.temporal_encoder.traceable():` (TemporalEncoder.traceable), which is all that export asks of it: the
'longformer' encoder then uses its dense banded attention, in one piece, at every length (one code path for every T;
its blocked and chunked paths have shape-dependent branches). That switch belongs to the encoder instance and is
undone after the trace; export itself sets no module global and no attribute of the encoder.
"""

import contextlib
import io
import logging
import os
import warnings
from typing import Optional

import torch
import torch.nn as nn

from vtn.datasets.annotations import find_class_names
from vtn.engine.tester import find_test_checkpoint, load_for_test
from vtn.models import build_model
from vtn.utils.errors import UserError
from vtn.utils.files import atomic_write, check_writable, write_json_atomic

MAX_BATCH = 1024
FORMATS = ("export", "onnx")


class ExportError(UserError, ValueError):
    """A model or an option that cannot be exported."""


class FramesToLogits(nn.Module):
    """VTN.forward on frames, without the backbone chunk loop: (B, C, T, H, W), (B, T) -> logits (B, classes)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor, frame_idx: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = frames.shape
        flat = frames.transpose(1, 2).reshape(b * t, c, h, w)
        if self.model.channels_last:
            flat = flat.contiguous(memory_format=torch.channels_last)
        emb = self.model.backbone(flat).reshape(b, t, -1)
        return self.model.forward_embeddings(emb, frame_idx)


def checkpoint_opts(checkpoint: str) -> list:
    """Config overrides for `--checkpoint`: a .pyth file is TEST.CHECKPOINT_FILE_PATH; a folder is an OUTPUT_DIR (or
    its checkpoints/ folder), whose checkpoint the test phase would take."""
    if not checkpoint:
        return []
    if os.path.isfile(checkpoint):
        return ["TEST.CHECKPOINT_FILE_PATH", checkpoint]
    if os.path.isdir(checkpoint):
        folder = os.path.normpath(checkpoint)
        if os.path.basename(folder) == "checkpoints":
            folder = os.path.dirname(folder)
        return ["TEST.CHECKPOINT_FILE_PATH", "", "OUTPUT_DIR", folder]
    raise ExportError(f"--checkpoint {checkpoint}: no such file or folder; give a .pyth file or an OUTPUT_DIR")


@contextlib.contextmanager
def quiet_torch():
    """No graph dumps of a failed trace on the terminal (torch logs them): the error says what failed."""
    torch_logger = logging.getLogger("torch")
    level = torch_logger.level
    torch_logger.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about branches fixed for the trace
            yield
    finally:
        torch_logger.setLevel(level)


def default_max_frames(cfg) -> int:
    return max(cfg.VTN.MAX_POSITION_EMBEDDINGS, cfg.TEST.FULL_VIDEO_FRAMES, cfg.DATA.NUM_FRAMES)


def example_inputs(cfg, device, batch: int = 2, frames: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    size = cfg.DATA.TEST_CROP_SIZE
    x = torch.randn(batch, len(cfg.DATA.MEAN), frames, size, size, device=device)
    idx = torch.arange(frames, device=device).expand(batch, frames).contiguous()
    return x, idx


def load_export_model(cfg) -> tuple[nn.Module, Optional[str]]:
    """The model of the config in eval mode with the checkpoint the test phase would take (None: random weights,
    TEST.ALLOW_RANDOM_INIT)."""
    model = build_model(cfg)
    path = find_test_checkpoint(cfg)
    if path is not None:
        load_for_test(model, path, cfg)
    return model.eval(), path


def export_program(cfg, model: nn.Module, max_frames: int):
    """The `torch.export` program of `model` with dynamic batch (1 .. MAX_BATCH) and frames (1 .. max_frames)."""
    net = FramesToLogits(model).eval()
    device = next(model.parameters()).device
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    frames = torch.export.Dim("frames", min=1, max=max_frames)
    shapes = {"frames": {0: batch, 2: frames}, "frame_idx": {0: batch, 1: frames}}
    try:
        with torch.no_grad(), model.temporal_encoder.traceable(), quiet_torch():
            return torch.export.export(net, example_inputs(cfg, device), dynamic_shapes=shapes)
    except Exception as e:  # noqa: BLE001  (any tracing failure becomes one line naming the component)
        raise ExportError(unexportable_message(cfg, e)) from e


def unexportable_message(cfg, error: Exception) -> str:
    first = (str(error).strip().splitlines() or [error.__class__.__name__])[0][:200]
    if cfg.VTN.TEMPORAL_ENCODER == "longformer_hf":
        return (
            "VTN.TEMPORAL_ENCODER longformer_hf (transformers' Longformer) cannot be exported with torch.export "
            f"({error.__class__.__name__}: {first}); export with VTN.TEMPORAL_ENCODER longformer, which takes the "
            "same weights and gives the same outputs"
        )
    return (
        f"torch.export failed for VTN.BACKBONE {cfg.VTN.BACKBONE} with VTN.TEMPORAL_ENCODER "
        f"{cfg.VTN.TEMPORAL_ENCODER} ({error.__class__.__name__}: {first})"
    )


def contract(cfg, model_file: str, checkpoint: Optional[str], max_frames: int, fmt: str, config_name: str = "") -> dict:
    """What a user needs to feed the exported model without vtn."""
    d = cfg.DATA
    channels = len(d.MEAN)
    return {
        "format": "torch.export" if fmt == "export" else "onnx",
        "model_file": os.path.basename(model_file),
        "inputs": [
            {
                "name": "frames",
                "shape": ["batch", channels, "frames", d.TEST_CROP_SIZE, d.TEST_CROP_SIZE],
                "layout": "B, C, T, H, W",
                "dtype": "float32",
                "description": "RGB frames scaled to [0, 1], then (x - mean) / std per channel",
            },
            {
                "name": "frame_idx",
                "shape": ["batch", "frames"],
                "dtype": "int64",
                "description": "each frame's index in the original video (position embedding); 0..T-1 for a clip "
                "of consecutive frames",
            },
        ],
        "outputs": [{"name": "logits", "shape": ["batch", cfg.MODEL.NUM_CLASSES], "dtype": "float32"}],
        "dynamic_dims": {"batch": {"min": 1, "max": MAX_BATCH}, "frames": {"min": 1, "max": max_frames}},
        "mean": list(d.MEAN),
        "std": list(d.STD),
        "crop_size": d.TEST_CROP_SIZE,
        "test_scale": d.TEST_SCALE,
        "num_frames": d.NUM_FRAMES,
        "full_video_frames": cfg.TEST.FULL_VIDEO_FRAMES,
        "frame_indices": (
            "whole video: TEST.FULL_VIDEO_FRAMES (full_video_frames) frame indices spread evenly over the video "
            "(every frame when 0), given as frame_idx; a clip: DATA.NUM_FRAMES (num_frames) frames. Resize the "
            "short side to test_scale, center-crop crop_size x crop_size."
        ),
        "position_embedding": {
            "type": cfg.VTN.POS_EMBED,
            "max_positions": cfg.VTN.MAX_POSITION_EMBEDDINGS,
            "index_mode": cfg.VTN.POS_INDEX_MODE,
        },
        "num_classes": cfg.MODEL.NUM_CLASSES,
        "class_names": find_class_names(cfg),
        "checkpoint": checkpoint,
        "config": config_name,
        "backbone": cfg.VTN.BACKBONE,
        "temporal_encoder": cfg.VTN.TEMPORAL_ENCODER,
        "torch_version": torch.__version__,
        "usage": "program = torch.export.load(model_file).module(); logits = program(frames, frame_idx)"
        if fmt == "export"
        else "onnxruntime.InferenceSession(model_file).run(None, {'frames': ..., 'frame_idx': ...})[0]",
    }


def contract_path(output: str) -> str:
    """The contract of `output` is named after the whole file name, so that the .pt2 and .onnx exports of one model
    can share a folder."""
    return output + ".json"


def export_onnx(cfg, model: nn.Module, output: str) -> None:
    """`model` as an ONNX file (the TorchScript-based exporter, dynamic batch and frames), checked with onnx and, when
    installed, against onnxruntime."""
    try:
        import onnx
    except ImportError:
        raise ExportError("--format onnx needs the onnx package: pip install onnx onnxruntime") from None
    net = FramesToLogits(model).eval()
    device = next(model.parameters()).device
    inputs = example_inputs(cfg, device)
    buffer = io.BytesIO()
    try:  # the TorchScript-based exporter: the dynamo one needs onnxscript too
        with torch.no_grad(), model.temporal_encoder.traceable(), quiet_torch():
            torch.onnx.export(
                net,
                inputs,
                buffer,
                input_names=["frames", "frame_idx"],
                output_names=["logits"],
                dynamic_axes={"frames": {0: "batch", 2: "frames"}, "frame_idx": {0: "batch", 1: "frames"}},
                dynamo=False,
            )
    except Exception as e:  # noqa: BLE001
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ExportError(f"torch.onnx.export failed for {output} ({e.__class__.__name__}: {first})") from e
    atomic_write(output, lambda f: f.write(buffer.getvalue()))
    onnx.checker.check_model(output)
    try:
        import onnxruntime
    except ImportError:
        return
    session = onnxruntime.InferenceSession(output, providers=["CPUExecutionProvider"])
    x, idx = example_inputs(cfg, "cpu", batch=1, frames=4)
    got = session.run(None, {"frames": x.numpy(), "frame_idx": idx.numpy()})[0]
    with torch.no_grad():
        want = net.to("cpu")(x, idx).numpy()
    if abs(got - want).max() > 1e-3:
        raise ExportError(f"{output}: onnxruntime's logits differ from PyTorch's by {abs(got - want).max():.2e}")


def export_model(cfg, output: str, fmt: str = "export", max_frames: int = 0, config_name: str = "") -> dict:
    """Export the config's model with the test phase's checkpoint to `output`, and its contract beside it.
    Returns the contract."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    if not output:
        raise ExportError("no output file: pass --output model.pt2")
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise ExportError("--format onnx needs the onnx package: pip install onnx onnxruntime") from None
    if max_frames < 0:
        raise ExportError(f"--max-frames {max_frames}: give a positive number of frames (0: the config's default)")
    check_writable(output, "--output")  # before the model is built and traced
    max_frames = max_frames or default_max_frames(cfg)
    model, checkpoint = load_export_model(cfg)
    if fmt == "export":
        program = export_program(cfg, model, max_frames)
        atomic_write(output, lambda f: torch.export.save(program, f))
    else:
        export_onnx(cfg, model, output)
    info = contract(cfg, output, checkpoint, max_frames, fmt, config_name)
    write_json_atomic(info, contract_path(output))
    return info
