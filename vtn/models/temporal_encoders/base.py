"""What every temporal encoder shares: the token-embedding stage and the call convention.

State-dict layout (the same for every backend, so weights move between them, and the same as the authors'
released `temporal_encoder`, a transformers LongformerModel without word embeddings and pooler):

    embeddings.position_embeddings.weight     (learned PE only)
    embeddings.token_type_embeddings.weight   (2 rows: 0 frames, 1 [CLS])
    embeddings.LayerNorm.{weight,bias}
    encoder.layer.{i}.attention.self.{query,key,value,query_global,key_global,value_global}.{weight,bias}
    encoder.layer.{i}.attention.output.{dense,LayerNorm}.{weight,bias}
    encoder.layer.{i}.intermediate.dense.{weight,bias}
    encoder.layer.{i}.output.{dense,LayerNorm}.{weight,bias}

Call: `encoder(tokens, frame_idx, mask)` with `tokens (B, 1+T, D)` ([CLS] first), `frame_idx (B, T)` and
`mask (B, 1+T)` long: 0 = padding (never attended to; its output is meaningless), 1 = local (sliding
window) attention, 2 = global attention (the [CLS] token).
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn

from vtn.config import register_choices
from vtn.models.checkpointing import checkpointed, use_checkpointing
from vtn.models.position_embeddings import build_position_embedding
from vtn.utils.registry import Registry

TEMPORAL_ENCODER_REGISTRY = Registry("temporal encoder")
register_choices("VTN.TEMPORAL_ENCODER", TEMPORAL_ENCODER_REGISTRY.names)

PAD, LOCAL, GLOBAL = 0, 1, 2


@dataclass
class EncoderSpec:
    """Sizes and options of a temporal encoder, resolved from the config and the backbone."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    attention_window: int
    attention_dropout: float
    hidden_dropout: float
    layer_norm_eps: float
    uniform_attention: bool

    @classmethod
    def from_cfg(cls, cfg, hidden_size: int, intermediate_size: int) -> "EncoderSpec":
        v = cfg.VTN
        if hidden_size % v.NUM_HEADS:
            raise ValueError(
                f"The Longformer hidden size {hidden_size} (VTN.HIDDEN_DIM, or the backbone's feature size when 0) "
                f"must be a multiple of VTN.NUM_HEADS = {v.NUM_HEADS}."
            )
        return cls(
            hidden_size=hidden_size,
            intermediate_size=intermediate_size,
            num_layers=v.NUM_LAYERS,
            num_heads=v.NUM_HEADS,
            attention_window=v.ATTENTION_WINDOW,
            attention_dropout=v.ATTENTION_DROPOUT,
            hidden_dropout=v.HIDDEN_DROPOUT,
            layer_norm_eps=v.LAYER_NORM_EPS,
            uniform_attention=v.UNIFORM_ATTENTION,
        )


class TokenEmbeddings(nn.Module):
    """tokens + position embedding + token-type embedding -> LayerNorm -> dropout."""

    def __init__(self, cfg, spec: EncoderSpec):
        super().__init__()
        self.position_embeddings = build_position_embedding(cfg, spec.hidden_size)
        self.token_type_embeddings = nn.Embedding(2, spec.hidden_size)
        self.LayerNorm = nn.LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps)
        self.dropout = nn.Dropout(spec.hidden_dropout)

    def forward(self, tokens: torch.Tensor, frame_idx: torch.Tensor) -> torch.Tensor:
        token_type = torch.zeros(tokens.shape[:2], dtype=torch.long, device=tokens.device)
        token_type[:, 0] = 1
        x = tokens + self.position_embeddings(frame_idx).to(tokens.dtype) + self.token_type_embeddings(token_type)
        return self.dropout(self.LayerNorm(x))


class TemporalEncoder(nn.Module):
    """Base class: subclasses build `self.encoder` and implement `encode`.

    Activation checkpointing (VTN.GRAD_CHECKPOINTING): `set_grad_checkpointing(True)` sets
    `self.grad_checkpointing`; an encoder that runs its own layers calls them through `run_layer`, which
    checkpoints them in training with gradients enabled only. An encoder whose layers come from elsewhere
    overrides `set_grad_checkpointing`.

    Tracing (vtn/inference/export.py): `with encoder.traceable():` puts this encoder, for the block, in a form
    that traces into one program for every sequence length, with unchanged outputs, and restores the previous
    state on exit (also on an exception). It changes only this instance, never a module global. Here it is a
    no-op, for encoders that are traceable as they are (or not at all: transformers' Longformer); an encoder
    whose path depends on the length (the 'longformer' one) overrides it."""

    def __init__(self, cfg, spec: EncoderSpec):
        super().__init__()
        self.spec = spec
        self.embeddings = TokenEmbeddings(cfg, spec)
        self.grad_checkpointing = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @contextlib.contextmanager
    def traceable(self) -> Iterator["TemporalEncoder"]:
        """This encoder in its traceable form while the block runs (see the class docstring); here, as it is."""
        yield self

    def run_layer(self, layer: nn.Module, *args):
        """`layer(*args)`, checkpointed when enabled and useful (training, gradients on)."""
        if self.grad_checkpointing and use_checkpointing(self):
            return checkpointed(layer, *args)
        return layer(*args)

    def encode(
        self, hidden: torch.Tensor, mask: torch.Tensor, return_attention: bool
    ) -> tuple[torch.Tensor, Optional[list[torch.Tensor]]]:
        """Run the layers. Returns hidden states and, when asked, the [CLS] attention per layer
        `(B, heads, L)` over all tokens."""
        raise NotImplementedError

    def forward(
        self,
        tokens: torch.Tensor,
        frame_idx: torch.Tensor,
        mask: torch.Tensor,
        return_attention: bool = False,
    ):
        hidden, attention = self.encode(self.embeddings(tokens, frame_idx), mask, return_attention)
        return (hidden, attention) if return_attention else hidden


def build_temporal_encoder(cfg, hidden_size: int, intermediate_size: int) -> TemporalEncoder:
    spec = EncoderSpec.from_cfg(cfg, hidden_size, intermediate_size)
    return TEMPORAL_ENCODER_REGISTRY.get(cfg.VTN.TEMPORAL_ENCODER)(cfg, spec)
