"""Whole-video inference at bounded memory (paper sec. 3, inference methods 1-2).

The video is decoded in chunks of VTN.BACKBONE_CHUNK_SIZE frames (64 when 0); each chunk is resized,
center-cropped, normalised and embedded by the backbone without gradients; only the `(T, D)` frame
embeddings are kept, and the temporal encoder runs once over all of them. Peak memory is one chunk of
frames and activations plus T x D embeddings, whatever the length of the video.

Which frames: TEST.FULL_VIDEO_FRAMES spread over the whole video (250, the paper's full-video protocol), or
every frame when it is 0, or `fps` frames per second when given (e.g. 1 fps over an hour is 3,600 tokens;
with a learned position table, frame indices past VTN.MAX_POSITION_EMBEDDINGS wrap or saturate, see
VTN.POS_INDEX_MODE, so long videos are better served by VTN.POS_EMBED fixed).
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from vtn.datasets import transforms
from vtn.datasets.sampling import full_video_indices, rate_indices
from vtn.engine.distributed import unwrap
from vtn.video.decoder import VideoDecodeError, VideoInfo, build_decoder

DEFAULT_CHUNK = 64


@dataclass
class VideoPrediction:
    path: str
    info: VideoInfo
    frame_idx: torch.Tensor  # (T,) frame indices in the video
    embeddings: torch.Tensor  # (T, D) backbone features
    scores: torch.Tensor  # (NUM_CLASSES,) softmax scores
    attention: Optional[list[torch.Tensor]] = None  # per layer, (heads, 1 + T): [CLS] over [CLS] and the frames
    cls_feature: Optional[torch.Tensor] = None  # (D,) the final [CLS] feature, the input of the model's mlp_head

    def topk(self, k: int = 5):
        values, ids = self.scores.topk(min(k, self.scores.numel()))
        return list(zip(ids.tolist(), values.tolist()))


def frame_indices(info: VideoInfo, num_frames: int, fps: float = 0.0) -> np.ndarray:
    """Sorted frame indices: `num_frames` spread over the video's duration, every frame (0), or the frames shown
    at `fps` instants per second (the sampling rule of sampling.py, on the video's real timeline)."""
    if fps and fps > 0:
        return rate_indices(info.num_frames, info.fps, fps, info.times)
    if num_frames <= 0:
        return np.arange(info.num_frames, dtype=np.int64)
    return full_video_indices(info.num_frames, num_frames, info.fps, info.times)


class VideoPredictor:
    """Classifies whole videos with a VTN, streaming the frames through the backbone."""

    def __init__(self, cfg, model, device: Optional[torch.device] = None):
        self.cfg = cfg
        self.model = unwrap(model).eval()
        self.device = device or next(self.model.parameters()).device
        self.decoder = build_decoder(cfg)
        self.chunk = cfg.VTN.BACKBONE_CHUNK_SIZE or DEFAULT_CHUNK

    @torch.no_grad()
    def embed(self, path: str, indices: np.ndarray, info: VideoInfo):
        d = self.cfg.DATA
        params = transforms.test_params(info.width, info.height, d.TEST_SCALE, d.TEST_CROP_SIZE, 0, 1)
        parts, idx = [], []
        for frames, got in self.decoder.iter_frames(
            path, indices, size=(params.width, params.height), chunk=self.chunk, info=info
        ):
            clip = transforms.to_normalized_tensor(transforms.apply_crop_flip(frames, params), d.MEAN, d.STD)
            clip = clip.transpose(0, 1).to(self.device, non_blocking=True)  # (t, C, H, W)
            parts.append(self.model.embed_frames(clip))
            idx.append(torch.from_numpy(got))
        if not parts:
            raise VideoDecodeError(f"{path}: no frame could be decoded")
        return torch.cat(parts), torch.cat(idx)

    @torch.no_grad()
    def predict(
        self,
        path: str,
        num_frames: Optional[int] = None,
        fps: float = 0.0,
        return_attention: bool = False,
        return_cls: bool = False,
    ) -> VideoPrediction:
        info = self.decoder.probe(path)
        n = self.cfg.TEST.FULL_VIDEO_FRAMES if num_frames is None else num_frames
        indices = frame_indices(info, n, fps)
        emb, idx = self.embed(path, indices, info)
        captured = []  # return_cls: the input of the head, caught on its way in
        head = self.model.mlp_head
        hook = head.register_forward_pre_hook(lambda _, args: captured.append(args[0])) if return_cls else None
        try:
            out = self.model.forward_embeddings(emb[None], idx[None].to(self.device), return_attention=return_attention)
        finally:
            if hook is not None:
                hook.remove()
        logits, attention = out if return_attention else (out, None)
        attention = [a[0].float().cpu() for a in attention] if attention is not None else None
        cls = captured[-1][0].float().cpu() if captured else None
        return VideoPrediction(path, info, idx, emb.cpu(), logits[0].float().softmax(-1).cpu(), attention, cls)
