"""A Longformer in plain PyTorch: sliding-window attention in O(L x window), a global-attention [CLS].

Same parameters, state-dict layout and outputs as `longformer_hf` (transformers' LongformerEncoder), so
weights move freely between the two; it is faster, never pads the sequence for its linear layers, and
works with `torch.export` and `torch.compile(fullgraph=True)`.

Semantics (those of transformers' Longformer, window w = VTN.ATTENTION_WINDOW, h = w / 2):

- a local token (mask 1) attends, with the `query`/`key`/`value` projections, to the local tokens j with
  |i - j| <= h and to every global token (each key counted once: global tokens are left out of the window
  and come in through the global-key part of the same softmax);
- a global token (mask 2) attends to every non-padding token with `query_global`/`key_global`/
  `value_global`; its output is that of the global attention;
- padding tokens (mask 0) are never attended to; their own outputs are meaningless.

Global tokens must be among the first `num_global` tokens (1: the [CLS] token, which VTN puts first); a
token there may also be local or padding in some rows. This keeps every shape static (no data-dependent
gather of global positions), which is what makes the module exportable.

How the work is kept small:

- local attention runs over blocks of `block` queries, each against the `block + 2h` keys around it
  (an unfolded view of the keys), or as one dense masked product when the sequence is short;
- the global attention of the few global queries is computed without projecting every token through
  `key_global` and `value_global`: by associativity, q . (W_k x + b_k) = (W_k^T q) . x + q . b_k, and
  sum_j p_j (W_v x_j + b_v) = W_v (sum_j p_j x_j) + (sum_j p_j) b_v, per head. That takes two of the
  seven (D x D) projections per token out of the layer;
- with VTN.UNIFORM_ATTENTION the scores are all zero, so queries and keys are not computed at all.
"""
import math
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from vtn.models.temporal_encoders.base import (
    GLOBAL,
    LOCAL,
    PAD,
    TEMPORAL_ENCODER_REGISTRY,
    EncoderSpec,
    TemporalEncoder,
)

# Sequences up to this many tokens use one dense (L x L) masked attention; longer ones are blocked.
DENSE_MAX_TOKENS = 96


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, L, D) -> (B, H, L, D / H)."""
    b, length, dim = x.shape
    return x.view(b, length, heads, dim // heads).transpose(1, 2)


def _head_weights(linear: nn.Linear, heads: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """A (D_out x D_in) projection as per-head weights (H, d, D_in) and biases (H, d)."""
    out_dim, in_dim = linear.weight.shape
    return linear.weight.view(heads, out_dim // heads, in_dim), linear.bias.view(heads, out_dim // heads)


class LocalGlobalSelfAttention(nn.Module):
    """The attention proper; parameter names are transformers' `LongformerSelfAttention`'s."""

    def __init__(self, spec: EncoderSpec, num_global: int = 1):
        super().__init__()
        dim = spec.hidden_size
        self.num_heads = spec.num_heads
        self.head_dim = dim // spec.num_heads
        self.one_sided = spec.attention_window // 2
        self.num_global = num_global
        self.uniform = spec.uniform_attention
        self.dropout = spec.attention_dropout
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.query_global = nn.Linear(dim, dim)
        self.key_global = nn.Linear(dim, dim)
        self.value_global = nn.Linear(dim, dim)
        # Block size of the blocked local attention: each block of queries meets block + 2h keys.
        self.block = max(self.one_sided, 16)
        if self.uniform:
            # Scores are 0 everywhere: queries and keys have no effect, so they are frozen (and unused).
            for proj in (self.query, self.key, self.query_global, self.key_global):
                proj.requires_grad_(False)

    # ------------------------------------------------------------------ local attention
    def _dense_local(self, q, k, v, mask, glob_slot):
        """All L keys at once, for short sequences. q, k, v: (B, H, L, d) (q scaled, or None if uniform)."""
        b, length = mask.shape
        pos = torch.arange(length, device=mask.device)
        band = (pos[:, None] - pos[None, :]).abs() <= self.one_sided  # (L, L)
        # keys: local tokens in the band, and every global slot (each key once)
        glob_key = F.pad(glob_slot, (0, length - glob_slot.shape[1]), value=False)
        allowed = (band[None] & (mask == LOCAL)[:, None, :]) | glob_key[:, None, :]
        allowed = allowed[:, None]  # (B, 1, L, L)
        if q is None:
            scores = torch.zeros(b, self.num_heads, length, length, dtype=v.dtype, device=v.device)
        else:
            scores = q @ k.transpose(-1, -2)
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        probs = torch.softmax(scores, dim=-1)
        probs = F.dropout(probs, p=self.dropout, training=self.training)
        return probs @ v

    def _blocked_local(self, q, k, v, mask, glob_slot):
        """Blocks of `c` queries, each against the global slots and the c + 2h tokens around it:
        O(L (c + 2h + G)) time and memory. q, k, v: (B, H, L, d) (q scaled, or None if uniform)."""
        b, heads, length, d = v.shape
        h, c, g = self.one_sided, self.block, glob_slot.shape[1]
        nb = -(-length // c)
        tail = nb * c - length
        span = c + 2 * h

        def windows(t):  # (B, H, L, d) -> (B, H, nb, G + span, d): the global slots, then block n's window
            win = F.pad(t, (0, 0, h, h + tail)).unfold(2, span, c).transpose(-1, -2)  # starts at n * c - h
            return torch.cat([t[:, :, None, :g].expand(b, heads, nb, g, d), win], dim=3)

        key_ok = F.pad(mask == LOCAL, (h, h + tail), value=False).unfold(1, span, c)  # (B, nb, span)
        offs = torch.arange(span, device=mask.device)[None, :] - torch.arange(c, device=mask.device)[:, None]
        band = (offs >= 0) & (offs <= 2 * h)  # (c, span): query r of a block sees slot s iff 0 <= s - r <= 2h
        allowed = torch.cat([glob_slot[:, None, None, :].expand(b, nb, c, g), band & key_ok[:, :, None, :]], dim=-1)
        if q is None:
            scores = torch.zeros(b, heads, nb, c, g + span, dtype=v.dtype, device=v.device)
        else:
            scores = F.pad(q, (0, 0, 0, tail)).view(b, heads, nb, c, d) @ windows(k).transpose(-1, -2)
        scores = scores.masked_fill(~allowed[:, None], torch.finfo(scores.dtype).min)
        probs = F.dropout(torch.softmax(scores, dim=-1), p=self.dropout, training=self.training)
        return (probs @ windows(v)).view(b, heads, nb * c, d)[:, :, :length]

    # ------------------------------------------------------------------ global attention
    def _global(self, x, mask, glob_slot):
        """Outputs (B, H, G, d) and probabilities (B, H, G, L) of the global slots over all tokens, without
        computing key_global / value_global of every token (see the module docstring)."""
        heads, d = self.num_heads, self.head_dim
        g = glob_slot.shape[1]
        pad = (mask == PAD)[:, None, None, :]  # (B, 1, 1, L)
        bsz, length, dim = x.shape
        x_t = x.transpose(1, 2)  # (B, D, L)
        if self.uniform:
            scores = x.new_zeros(bsz, heads, g, length)
        else:
            qg = _split_heads(self.query_global(x[:, :g]), heads) * (1.0 / math.sqrt(d))  # (B, H, G, d)
            wk, bk = _head_weights(self.key_global, heads)
            q_in = torch.einsum("bhgd,hde->bhge", qg, wk)  # (B, H, G, D): the queries in input space
            scores = (q_in.reshape(bsz, heads * g, dim) @ x_t).view(bsz, heads, g, length)
            scores = scores + (qg * bk[None, :, None, :]).sum(-1, keepdim=True)
        scores = scores.masked_fill(pad, torch.finfo(scores.dtype).min)
        probs = torch.softmax(scores, dim=-1)
        dropped = F.dropout(probs, p=self.dropout, training=self.training)
        wv, bv = _head_weights(self.value_global, heads)
        mixed = (dropped.reshape(bsz, heads * g, length) @ x).view(bsz, heads, g, dim)  # (B, H, G, D)
        out = torch.einsum("bhge,hde->bhgd", mixed, wv) + dropped.sum(-1, keepdim=True) * bv[None, :, None, :]
        return out, probs

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, D), mask (B, L) -> context (B, L, D) and the global slots' probabilities (B, H, G, L)."""
        b, length, dim = x.shape
        heads = self.num_heads
        g = min(self.num_global, length)
        glob_slot = mask[:, :g] == GLOBAL  # (B, G)
        v = _split_heads(self.value(x), heads)
        if self.uniform:
            q = k = None
        else:
            q = _split_heads(self.query(x), heads) * (1.0 / math.sqrt(self.head_dim))
            k = _split_heads(self.key(x), heads)
        if length <= DENSE_MAX_TOKENS:
            local = self._dense_local(q, k, v, mask, glob_slot)
        else:
            local = self._blocked_local(q, k, v, mask, glob_slot)
        glob_out, glob_probs = self._global(x, mask, glob_slot)
        head_ctx = torch.where(glob_slot[:, None, :, None], glob_out, local[:, :, :g])
        ctx = torch.cat([head_ctx, local[:, :, g:]], dim=2)
        return ctx.transpose(1, 2).reshape(b, length, dim), glob_probs


class ResidualOutput(nn.Module):
    """dense -> dropout -> + residual -> LayerNorm: the output stage of the attention and of the FFN."""

    def __init__(self, spec: EncoderSpec, in_features: int):
        super().__init__()
        self.dense = nn.Linear(in_features, spec.hidden_size)
        self.LayerNorm = nn.LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps)
        self.dropout = nn.Dropout(spec.hidden_dropout)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class Attention(nn.Module):
    def __init__(self, spec: EncoderSpec, num_global: int):
        super().__init__()
        self.self = LocalGlobalSelfAttention(spec, num_global)
        self.output = ResidualOutput(spec, spec.hidden_size)

    def forward(self, x, mask):
        ctx, probs = self.self(x, mask)
        return self.output(ctx, x), probs


class Intermediate(nn.Module):
    def __init__(self, spec: EncoderSpec):
        super().__init__()
        self.dense = nn.Linear(spec.hidden_size, spec.intermediate_size)

    def forward(self, x):
        return F.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self, spec: EncoderSpec, num_global: int):
        super().__init__()
        self.attention = Attention(spec, num_global)
        self.intermediate = Intermediate(spec)
        self.output = ResidualOutput(spec, spec.intermediate_size)

    def forward(self, x, mask):
        x, probs = self.attention(x, mask)
        return self.output(self.intermediate(x), x), probs


class LayerStack(nn.Module):
    def __init__(self, spec: EncoderSpec, num_global: int):
        super().__init__()
        self.layer = nn.ModuleList([Layer(spec, num_global) for _ in range(spec.num_layers)])


@TEMPORAL_ENCODER_REGISTRY.register_as("longformer")
class TorchLongformerEncoder(TemporalEncoder):
    """`num_global`: how many leading tokens may carry global attention (1 for VTN's [CLS])."""

    def __init__(self, cfg, spec: EncoderSpec, num_global: int = 1):
        super().__init__(cfg, spec)
        if spec.attention_window < 2 or spec.attention_window % 2:
            raise ValueError(f"VTN.ATTENTION_WINDOW = {spec.attention_window}: must be even and at least 2.")
        self.num_global = num_global
        self.encoder = LayerStack(spec, num_global)

    def _check_mask(self, mask: torch.Tensor) -> None:
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return
        if bool((mask[:, self.num_global :] == GLOBAL).any()):
            raise ValueError(
                f"The 'longformer' temporal encoder takes global attention (mask 2) only on the first "
                f"{self.num_global} token(s) (the [CLS] token); got it further on. Put global tokens first, "
                "or use VTN.TEMPORAL_ENCODER longformer_hf, which takes them anywhere."
            )

    def encode(
        self, hidden: torch.Tensor, mask: torch.Tensor, return_attention: bool
    ) -> Tuple[torch.Tensor, Optional[List[torch.Tensor]]]:
        self._check_mask(mask)
        attention = []
        for layer in self.encoder.layer:
            hidden, probs = layer(hidden, mask)
            if return_attention:
                attention.append(probs[:, :, 0])  # the [CLS] (first global slot) over all tokens
        return hidden, (attention if return_attention else None)
