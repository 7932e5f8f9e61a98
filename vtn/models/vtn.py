"""Video Transformer Network (paper sec. 3, Fig. 1): backbone per frame -> Longformer over time -> MLP head.

State-dict keys: `backbone.*` (the timm model), `cls_token`, `feature_proj.*` (only when VTN.HIDDEN_DIM
differs from the backbone's feature size), `temporal_encoder.*` (see temporal_encoders/base.py) and
`mlp_head.*`, which is also the layout of the authors' released checkpoint.
"""

from typing import Optional

import torch
import torch.nn as nn

from vtn.models.backbones import build_backbone, set_backbone_grad_checkpointing
from vtn.models.build import MODEL_REGISTRY
from vtn.models.heads import build_head
from vtn.models.temporal_encoders import GLOBAL, LOCAL, PAD, build_temporal_encoder


def init_normal_(module: nn.Module, std: float) -> None:
    """Sec. 4.1: Longformer and head from N(0, std); biases 0; norms 1 and 0."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def shuffled_frame_order(num_frames: int, seeds, valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(B, T) random permutations of the frames, one per seed, for `frame_order`: the same seed gives the same
    order, whatever the batch or the process. Padded positions (`valid` False) stay at the end."""
    keys = torch.stack([torch.rand(num_frames, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
    if valid is not None:
        keys = keys.masked_fill(~valid.cpu().bool(), 2.0)
    return keys.argsort(dim=1)


def derived_intermediate_size(hidden: int, family: str) -> int:
    """The paper's FFN sizes: 3072 for ViT-B (4 x 768, as in ViT itself), 4096 for ResNets (2 x 2048)."""
    return 4 * hidden if family == "transformer" else 2 * hidden


@MODEL_REGISTRY.register_as("VTN")
class VTN(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.backbone = build_backbone(cfg)
        feat_dim = self.backbone.feature_dim
        dim = cfg.VTN.HIDDEN_DIM or feat_dim
        self.feature_proj = nn.Linear(feat_dim, dim) if dim != feat_dim else None
        intermediate = cfg.VTN.INTERMEDIATE_SIZE or derived_intermediate_size(dim, self.backbone.family)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.temporal_encoder = build_temporal_encoder(cfg, dim, intermediate)
        self.mlp_head = build_head(cfg, dim)

        self.hidden_size = dim
        self.chunk_size = cfg.VTN.BACKBONE_CHUNK_SIZE
        self.backbone_frozen = cfg.VTN.FREEZE_BACKBONE
        self.channels_last = cfg.VTN.CHANNELS_LAST
        if self.channels_last:  # the 4-d (convolution) weights; the frames follow in embed_frames
            self.backbone.to(memory_format=torch.channels_last)

        std = cfg.VTN.INIT_STD
        nn.init.normal_(self.cls_token, std=std)
        for part in (self.feature_proj, self.temporal_encoder, self.mlp_head):
            if part is not None:
                init_normal_(part, std)
        if self.backbone_frozen:
            self.backbone.requires_grad_(False)
            self.backbone.eval()
        if cfg.VTN.GRAD_CHECKPOINTING:
            self.set_grad_checkpointing(True)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing (VTN.GRAD_CHECKPOINTING): the backbone's blocks and the temporal encoder's
        layers keep only their inputs and are recomputed in the backward pass (about one more forward, same
        gradients, dropout included). Only a forward that autograd records is affected: under `torch.no_grad()`
        (evaluation, testing) every part runs its plain forward."""
        # A frozen backbone runs under no_grad (embed_frames): it keeps no activations, there is nothing to save.
        if not self.backbone_frozen:
            set_backbone_grad_checkpointing(self.backbone, enable)
        self.temporal_encoder.set_grad_checkpointing(enable)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()  # Table 2d: a frozen backbone is a fixed feature extractor (BN stats too)
        return self

    # ------------------------------------------------------------------ frames -> embeddings
    def embed_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, D). At inference, VTN.BACKBONE_CHUNK_SIZE frames per pass bound the memory."""
        chunk = self.chunk_size if (self.chunk_size and not self.training) else frames.shape[0]
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.backbone_frozen):
            parts = [self.backbone(frames[i : i + chunk]) for i in range(0, frames.shape[0], chunk)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def forward(
        self,
        frames: Optional[torch.Tensor] = None,
        frame_idx: Optional[torch.Tensor] = None,
        valid: Optional[torch.Tensor] = None,
        return_attention: bool = False,
        embeddings: Optional[torch.Tensor] = None,
        frame_order: Optional[torch.Tensor] = None,
    ):
        """frames: (B, C, T, H, W) normalised frames, or embeddings: (B, T, D) cached backbone features (then only
        `forward_embeddings` runs); frame_idx: (B, T) frame indices in the original video; frame_order: see
        `forward_embeddings`.

        Returns logits (B, NUM_CLASSES) (and the [CLS] attention per layer when `return_attention`).
        """
        if (frames is None) == (embeddings is None):
            raise ValueError("VTN takes either frames (B, C, T, H, W) or embeddings (B, T, D), exactly one of them")
        if embeddings is not None:
            dim = self.backbone.feature_dim
            if embeddings.dim() != 3 or embeddings.shape[-1] != dim:
                raise ValueError(
                    f"VTN expects (B, T, {dim}) frame embeddings of its backbone, got shape {tuple(embeddings.shape)}"
                )
            return self.forward_embeddings(embeddings, frame_idx, valid, return_attention, frame_order)
        if frames.dim() != 5:
            raise ValueError(f"VTN expects a (B, C, T, H, W) clip tensor, got shape {tuple(frames.shape)}")
        return self.forward_embeddings(self.frame_embeddings(frames), frame_idx, valid, return_attention, frame_order)

    def frame_embeddings(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) clips -> (B, T, D) frame embeddings: the backbone on every frame, as forward runs it
        (the input of `forward(embeddings=...)`, e.g. to run the temporal encoder several times on one embedding)."""
        b, c, t, h, w = frames.shape
        return self.embed_frames(frames.transpose(1, 2).reshape(b * t, c, h, w)).view(b, t, -1)

    # ------------------------------------------------------------------ embeddings -> logits
    def forward_embeddings(
        self,
        emb: torch.Tensor,
        frame_idx: Optional[torch.Tensor] = None,
        valid: Optional[torch.Tensor] = None,
        return_attention: bool = False,
        frame_order: Optional[torch.Tensor] = None,
    ):
        """Temporal encoder and head on precomputed frame embeddings `emb (B, T, D_backbone)`.

        `valid (B, T)` bool marks real frames when videos of different lengths share a batch. `frame_order (B, T)`
        long, when given, reorders each video's frame embeddings (`emb[b, frame_order[b]]`) while the position
        embedding stays in the original order: the test-time shuffle of sec. 5.1 (see `shuffled_frame_order`).
        """
        b, t, _ = emb.shape
        if self.feature_proj is not None:
            emb = self.feature_proj(emb)
        if frame_idx is None:
            frame_idx = torch.arange(t, device=emb.device).expand(b, t)
        frame_idx = frame_idx.to(emb.device)
        if frame_order is not None:
            emb = torch.gather(emb, 1, frame_order.to(emb.device)[..., None].expand_as(emb))
        tokens = torch.cat([self.cls_token.expand(b, -1, -1).to(emb.dtype), emb], dim=1)
        mask = torch.full((b, t + 1), LOCAL, dtype=torch.long, device=emb.device)
        mask[:, 0] = GLOBAL
        if valid is not None:
            mask[:, 1:] = mask[:, 1:].masked_fill(~valid.to(emb.device), PAD)
        out = self.temporal_encoder(tokens, frame_idx, mask, return_attention=return_attention)
        hidden, attention = out if return_attention else (out, None)
        logits = self.mlp_head(hidden[:, 0])
        return (logits, attention) if return_attention else logits
