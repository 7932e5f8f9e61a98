"""The temporal encoder of the paper: transformers' Longformer layers over the frame tokens.

Only `LongformerEncoder` (the stack of `LongformerLayer`s) is taken from transformers; the embedding stage
is ours (`base.TokenEmbeddings`), so no word-embedding table is built and frame features go straight in.
The sequence is padded here to a multiple of the attention window, as transformers' sliding-chunk
attention requires; padded tokens carry mask 0, so real tokens never attend to them.
"""

from typing import Optional

import torch
import torch.nn.functional as F
from transformers import LongformerConfig
from transformers.models.longformer.modeling_longformer import LongformerEncoder

from vtn.models.checkpointing import checkpointed
from vtn.models.temporal_encoders.base import (
    GLOBAL,
    PAD,
    TEMPORAL_ENCODER_REGISTRY,
    EncoderSpec,
    TemporalEncoder,
)


def longformer_config(spec: EncoderSpec) -> LongformerConfig:
    return LongformerConfig(
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        attention_window=[spec.attention_window] * spec.num_layers,
        attention_probs_dropout_prob=spec.attention_dropout,
        hidden_dropout_prob=spec.hidden_dropout,
        layer_norm_eps=spec.layer_norm_eps,
        hidden_act="gelu",
        # No word embeddings are built from these; transformers only insists that they be consistent.
        vocab_size=4,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        sep_token_id=2,
        type_vocab_size=2,
    )


def _zero_output(_module, _inputs, output):
    return torch.zeros_like(output)


@TEMPORAL_ENCODER_REGISTRY.register_as("longformer_hf")
class HFLongformerEncoder(TemporalEncoder):
    def __init__(self, cfg, spec: EncoderSpec):
        super().__init__(cfg, spec)
        if spec.attention_window < 4:
            raise ValueError(
                f"VTN.ATTENTION_WINDOW = {spec.attention_window}: transformers' Longformer (longformer_hf) needs a "
                "window of at least 4 (its sliding-chunk attention fails for one token on each side)."
            )
        self.encoder = LongformerEncoder(longformer_config(spec))
        if spec.uniform_attention:
            self._make_attention_uniform()

    def _make_attention_uniform(self) -> None:
        """Zero queries make every attention score 0, so the softmax over the allowed keys (window, global
        tokens, minus padding) is uniform. The query and key projections then have no effect and are frozen."""
        for layer in self.encoder.layer:
            attn = layer.attention.self
            for proj in (attn.query, attn.query_global):
                proj.register_forward_hook(_zero_output)
            for proj in (attn.query, attn.key, attn.query_global, attn.key_global):
                proj.requires_grad_(False)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """transformers' own per-layer switch (what `PreTrainedModel.gradient_checkpointing_enable` sets; this is
        a bare LongformerEncoder, not a PreTrainedModel). Its layers checkpoint only in training with gradients on,
        through our non-reentrant, RNG-preserving `checkpointed`."""
        super().set_grad_checkpointing(enable)
        self.encoder.gradient_checkpointing = enable
        for layer in self.encoder.layer:
            layer.gradient_checkpointing = enable
            layer._gradient_checkpointing_func = checkpointed

    def encode(
        self, hidden: torch.Tensor, mask: torch.Tensor, return_attention: bool
    ) -> tuple[torch.Tensor, Optional[list[torch.Tensor]]]:
        length = hidden.shape[1]
        window = self.spec.attention_window
        pad = (window - length % window) % window
        if pad:
            hidden = F.pad(hidden, (0, 0, 0, pad))
            mask = F.pad(mask, (0, pad), value=PAD)
        # transformers' internal convention: large negative = padding, 0 = local, large positive = global.
        info = torch.finfo(hidden.dtype)
        extended = torch.zeros(mask.shape, dtype=hidden.dtype, device=hidden.device)
        extended = extended.masked_fill(mask == PAD, info.min).masked_fill(mask == GLOBAL, info.max)
        out = self.encoder(hidden, attention_mask=extended, output_attentions=return_attention, return_dict=True)
        hidden = out.last_hidden_state[:, :length]
        if not return_attention:
            return hidden, None
        # global_attentions[i]: (B, heads, padded L, num_global); [CLS] is the first global token.
        attention = [a[..., :length, 0] for a in out.global_attentions]
        return hidden, attention
