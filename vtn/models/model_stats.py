"""Parameter counts and fvcore GFLOPs of a VTN, in the paper's way of counting (Tables 3 and 4).

fvcore counts one multiply-add as one flop and skips ops it has no handle for (e.g. timm's fused
scaled-dot-product attention); that is how the paper's ViT-B figure of 16.87 GFLOPs per frame comes about.
The backbone is counted on one frame and multiplied by the number of frames (frames are independent), then
the temporal encoder and head are counted on that many frame embeddings.
"""

import logging
import warnings

import torch
import torch.nn as nn

logger = logging.getLogger(__name__)


def _numel(module) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def parameter_counts(model: nn.Module) -> dict[str, int]:
    m = model  # the bare VTN (the engine unwraps DistributedDataParallel)
    parts = {
        "backbone": _numel(m.backbone),
        "temporal_encoder": _numel(m.temporal_encoder) + m.cls_token.numel() + _numel(m.feature_proj),
        "head": _numel(m.mlp_head),
    }
    parts["total"] = _numel(m)
    parts["trainable"] = sum(p.numel() for p in m.parameters() if p.requires_grad)
    return parts


class _EmbeddingsToLogits(nn.Module):
    def __init__(self, vtn):
        super().__init__()
        self.vtn = vtn

    def forward(self, emb):
        return self.vtn.forward_embeddings(emb)


def _fvcore_gflops(module: nn.Module, inputs) -> float:
    with warnings.catch_warnings():
        # fvcore.nn scripts a helper at import, which torch >= 2.10 answers with a FutureWarning in every tool
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
        from fvcore.nn import FlopCountAnalysis  # optional: imported only when FLOPs are counted

    analysis = FlopCountAnalysis(module, inputs)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis.total() / 1e9


@torch.no_grad()
def view_gflops(model: nn.Module, num_frames: int, crop_size: int) -> dict[str, float]:
    """GFLOPs of one view of `num_frames` frames of `crop_size` x `crop_size`, split by part."""
    m = model  # the bare VTN (the engine unwraps DistributedDataParallel)
    was_training = m.training
    m.eval()
    try:
        device = next(m.parameters()).device
        frame = torch.zeros(1, 3, crop_size, crop_size, device=device)
        backbone = _fvcore_gflops(m.backbone, (frame,)) * num_frames
        feat_dim = m.backbone.feature_dim
        emb = torch.zeros(1, num_frames, feat_dim, device=device)
        temporal = _fvcore_gflops(_EmbeddingsToLogits(m), (emb,))
    finally:
        m.train(was_training)
    return {"backbone": backbone, "temporal_and_head": temporal, "total": backbone + temporal}


def _gflops(value: float) -> str:
    """One decimal for the paper's sizes, three significant digits for tiny models."""
    return f"{value:.1f}" if value >= 10 else f"{value:.3g}"


def model_report(model: nn.Module, cfg, num_frames: int, full_video_frames: int) -> str:
    """A printable table of parameters and GFLOPs (one view, multi-view total, full video)."""
    params = parameter_counts(model)
    crop = cfg.DATA.TEST_CROP_SIZE
    view = view_gflops(model, num_frames, crop)
    views = cfg.TEST.NUM_ENSEMBLE_VIEWS * cfg.TEST.NUM_SPATIAL_CROPS
    full = view_gflops(model, full_video_frames, crop)
    rows = [
        (f"one view, {num_frames} frames", view["total"]),
        (f"multi-view, {views} views", view["total"] * views),
        (f"full video, {full_video_frames} frames", full["total"]),
    ]
    lines = [
        f"model: {cfg.MODEL.MODEL_NAME} backbone={cfg.VTN.BACKBONE} layers={cfg.VTN.NUM_LAYERS} "
        f"encoder={cfg.VTN.TEMPORAL_ENCODER} classes={cfg.MODEL.NUM_CLASSES}",
        "parameters (M):",
        *(f"  {k:<17}{v / 1e6:10.2f}" for k, v in params.items()),
        f"GFLOPs (fvcore, {crop}x{crop}):",
        *(f"  {name:<28}{_gflops(value):>10}" for name, value in rows),
        f"  of one view: backbone {_gflops(view['backbone'])}, temporal encoder + head "
        f"{_gflops(view['temporal_and_head'])}",
    ]
    return "\n".join(lines)
