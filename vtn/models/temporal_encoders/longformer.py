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

How the work is kept small (the measurements: benchmarks/README.md, "Temporal encoder"):

- local attention runs over blocks of `block` (c >= h) queries, each against the three key blocks around
  it, in a block-major layout where those are strided views, or as one dense masked product when the
  sequence is short (and at every length inside `encoder.traceable()`, the one path that export traces);
- the global attention of the few global queries does not project every token through `key_global` and
  `value_global`: by associativity, q . (W_k x + b_k) = (W_k^T q) . x + q . b_k, and
  sum_j p_j (W_v x_j + b_v) = W_v (sum_j p_j x_j) + (sum_j p_j) b_v, per head;
- with VTN.UNIFORM_ATTENTION the scores are all zero, so queries and keys are not computed at all;
- on the CPU a long sequence goes through each layer in near-equal chunks of tokens (each chunk's local
  attention also sees h tokens of its neighbours) so that no activation exceeds CHUNK_BYTES; on other devices
  (caching allocators) it stays in one piece.
"""

import contextlib
import math
from collections.abc import Iterator
from typing import Optional

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
# On the CPU a long sequence goes through each layer in chunks whose activations stay under this many bytes.
CHUNK_BYTES = 16 * 2**20


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, L, D) -> (B, H, L, D / H)."""
    b, length, dim = x.shape
    return x.view(b, length, heads, dim // heads).transpose(1, 2)


def _head_weights(linear: nn.Linear, heads: int) -> tuple[torch.Tensor, torch.Tensor]:
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

    def _to_blocks(self, t: torch.Tensor, num_blocks: int, front: int) -> torch.Tensor:
        """(B, L, D) -> (num_blocks, B * H, c, d), contiguous, with `front` zero tokens before the first and
        zeros after the last: block-major, so that a run of consecutive blocks is one strided batch."""
        b, length, _ = t.shape
        c, heads, d = self.block, self.num_heads, self.head_dim
        t = F.pad(t, (0, 0, front, num_blocks * c - length - front))
        blocks = t.view(b, num_blocks, c, heads, d).permute(1, 0, 3, 2, 4)
        return blocks.reshape(num_blocks, b * heads, c, d).contiguous()  # (reshape may give a view)

    def _blocked_local(self, q, k, v, key_ok, lead, lq, kg, vg, glob_slot):
        """Local attention of Lq queries in blocks of c (c >= h), each block against the global slots and the
        three key blocks around it: O(Lq (3c + G)) time and memory, with no per-block copy of a key window.

        q (B, Lq, D) unscaled (None if uniform); k, v (B, Lk, D): key j is at query position j - lead
        (0 <= lead <= h); key_ok (B, Lk) bool: the keys that are local tokens; kg, vg (B, G, D): the global
        slots' local keys and values. Returns the context (B, Lq, D)."""
        b, lk, dim = v.shape
        heads, d, h, c, g = self.num_heads, self.head_dim, self.one_sided, self.block, glob_slot.shape[1]
        nb = -(-lq // c)
        bh = b * heads

        def per_head(t):  # (B, G, D) -> (1, B * H, G, d)
            return t.view(b, g, heads, d).transpose(1, 2).reshape(1, bh, g, d)

        # key block j of query block n is padded block n + j: tokens (n - 1) c .. (n + 2) c - 1 (query positions)
        front = c - lead
        vb = self._to_blocks(v, nb + 2, front)
        ok = F.pad(key_ok, (front, (nb + 2) * c - lk - front), value=False).view(b, nb + 2, c)
        ok = torch.cat([ok[:, j : j + nb] for j in range(3)], dim=-1).transpose(0, 1)  # (nb, B, 3c)
        offs = torch.arange(3 * c, device=v.device)[None, :] - torch.arange(c, device=v.device)[:, None]
        band = (offs >= c - h) & (offs <= c + h)  # (c, 3c): query r sees slot s iff |s - c - r| <= h
        allowed = torch.cat([glob_slot[None, :, None, :].expand(nb, b, c, g), band & ok[:, :, None, :]], dim=-1)
        if q is None:
            scores = v.new_zeros(nb, bh, c, g + 3 * c)
        else:
            qb = self._to_blocks(q, nb, 0).mul_(1.0 / math.sqrt(d))
            kb = self._to_blocks(k, nb + 2, front)
            parts = [qb @ per_head(kg).transpose(-1, -2)] + [qb @ kb[j : j + nb].transpose(-1, -2) for j in range(3)]
            scores = torch.cat(parts, dim=-1)
        scores = scores.view(nb, b, heads, c, g + 3 * c).masked_fill(~allowed[:, :, None], torch.finfo(v.dtype).min)
        probs = F.dropout(torch.softmax(scores, dim=-1), p=self.dropout, training=self.training)
        probs = probs.view(nb * bh, c, g + 3 * c)
        out = (probs[:, :, :g].view(nb, bh, c, g) @ per_head(vg)).view(nb * bh, c, d)
        for j in range(3):
            out = out.baddbmm_(probs[:, :, g + j * c : g + (j + 1) * c], vb[j : j + nb].view(nb * bh, c, d))
        out = out.view(nb, b, heads, c, d).permute(1, 0, 3, 2, 4).reshape(b, nb * c, dim)
        return out[:, :lq]

    # ------------------------------------------------------------------ global attention
    def _global(self, chunks, mask, glob_slot):
        """Outputs (B, G, D) and probabilities (B, H, G, L) of the global slots over all tokens, without
        computing key_global / value_global of every token (see the module docstring)."""
        heads, d = self.num_heads, self.head_dim
        g = glob_slot.shape[1]
        pad = (mask == PAD)[:, None, None, :]  # (B, 1, 1, L)
        bsz, length = mask.shape
        dim = chunks[0].shape[-1]
        if self.uniform:
            scores = chunks[0].new_zeros(bsz, heads, g, length)
        else:
            qg = _split_heads(self.query_global(chunks[0][:, :g]), heads) * (1.0 / math.sqrt(d))  # (B, H, G, d)
            wk, bk = _head_weights(self.key_global, heads)
            q_in = torch.einsum("bhgd,hde->bhge", qg, wk).reshape(bsz, heads * g, dim)  # queries in input space
            scores = torch.cat([q_in @ x.transpose(1, 2) for x in chunks], dim=-1).view(bsz, heads, g, length)
            scores = scores + (qg * bk[None, :, None, :]).sum(-1, keepdim=True)
        scores = scores.masked_fill(pad, torch.finfo(scores.dtype).min)
        probs = torch.softmax(scores, dim=-1)
        dropped = F.dropout(probs, p=self.dropout, training=self.training)
        flat = dropped.reshape(bsz, heads * g, length)
        mixed, start = None, 0
        for x in chunks:  # sum_j p_j x_j, chunk by chunk
            part = flat[:, :, start : start + x.shape[1]] @ x
            mixed = part if mixed is None else mixed + part
            start += x.shape[1]
        wv, bv = _head_weights(self.value_global, heads)
        mixed = mixed.view(bsz, heads, g, dim)
        out = torch.einsum("bhge,hde->bhgd", mixed, wv) + dropped.sum(-1, keepdim=True) * bv[None, :, None, :]
        return out.transpose(1, 2).reshape(bsz, g, dim), probs

    # ------------------------------------------------------------------ both
    def _local_chunk(self, chunks, i, start, local_ok, kg, vg, glob_slot):
        """The local attention of chunk i (tokens start ..), with h tokens of each neighbour as extra keys."""
        x, h = chunks[i], self.one_sided
        left = chunks[i - 1][:, -h:] if i > 0 else x[:, :0]
        right = chunks[i + 1][:, :h] if i + 1 < len(chunks) else x[:, :0]
        ext = torch.cat([left, x, right], dim=1) if len(chunks) > 1 else x
        key_ok = local_ok[:, start - left.shape[1] : start + x.shape[1] + right.shape[1]]
        q = k = None
        if not self.uniform:
            q, k = self.query(x), self.key(ext)
        return self._blocked_local(q, k, self.value(ext), key_ok, left.shape[1], x.shape[1], kg, vg, glob_slot)

    def forward(
        self, chunks: list[torch.Tensor], mask: torch.Tensor, dense: bool
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """chunks: consecutive pieces (B, L_i, D) of the sequence, mask (B, L) -> the context, in the same
        pieces, and the global slots' probabilities (B, H, G, L). `dense`: one dense (L x L) masked attention
        (then `chunks` is one piece) rather than the blocked one."""
        b, length = mask.shape
        heads = self.num_heads
        g = min(self.num_global, length)
        glob_slot = mask[:, :g] == GLOBAL  # (B, G)
        x0 = chunks[0]
        if dense:  # one chunk
            dim = x0.shape[-1]
            v = _split_heads(self.value(x0), heads)
            q = k = None
            if not self.uniform:
                q = _split_heads(self.query(x0), heads) * (1.0 / math.sqrt(self.head_dim))
                k = _split_heads(self.key(x0), heads)
            ctx = [self._dense_local(q, k, v, mask, glob_slot).transpose(1, 2).reshape(b, length, dim)]
        else:
            kg = None if self.uniform else self.key(x0[:, :g])
            vg = self.value(x0[:, :g])
            local_ok = mask == LOCAL
            ctx, start = [], 0
            for i, x in enumerate(chunks):
                ctx.append(self._local_chunk(chunks, i, start, local_ok, kg, vg, glob_slot))
                start += x.shape[1]
        glob_out, glob_probs = self._global(chunks, mask, glob_slot)
        head = torch.where(glob_slot[:, :, None], glob_out, ctx[0][:, :g])
        ctx[0] = torch.cat([head, ctx[0][:, g:]], dim=1)
        return ctx, glob_probs


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

    def forward(self, chunks: list[torch.Tensor], mask: torch.Tensor, dense: bool):
        ctx, probs = self.attention.self(chunks, mask, dense)
        out = []
        for c, x in zip(ctx, chunks):  # everything after the attention is per token: chunk by chunk
            a = self.attention.output(c, x)
            out.append(self.output(self.intermediate(a), a))
        return out, probs


class LayerStack(nn.Module):
    def __init__(self, spec: EncoderSpec, num_global: int):
        super().__init__()
        self.layer = nn.ModuleList([Layer(spec, num_global) for _ in range(spec.num_layers)])


@TEMPORAL_ENCODER_REGISTRY.register_as("longformer")
class TorchLongformerEncoder(TemporalEncoder):
    """`num_global`: how many leading tokens may carry global attention (1 for VTN's [CLS]).

    Which path a sequence takes depends on its length: up to DENSE_MAX_TOKENS tokens one dense banded attention,
    beyond the blocked one, on the CPU cut into chunks of at most `chunk_bytes` (see the module docstring). For
    tracing with a dynamic length (torch.export, the TorchScript ONNX exporter), `with encoder.traceable():`
    makes this instance take the dense path, in one piece, at every length, whatever DENSE_MAX_TOKENS and
    `chunk_bytes` say: one code path without shape-dependent branches, and the same outputs (it is the same
    attention, computed densely, so O(L^2) memory). It sets this instance's `dense_only` flag and restores the
    previous value on exit, also on an exception; no module global changes, so other encoders (other models,
    other threads) are not affected."""

    def __init__(self, cfg, spec: EncoderSpec, num_global: int = 1):
        super().__init__(cfg, spec)
        if spec.attention_window < 2 or spec.attention_window % 2:
            raise ValueError(f"VTN.ATTENTION_WINDOW = {spec.attention_window}: must be even and at least 2.")
        self.num_global = num_global
        self.chunk_bytes = CHUNK_BYTES
        self.dense_only = False  # set by traceable(): the dense path at every length
        self.encoder = LayerStack(spec, num_global)

    @contextlib.contextmanager
    def traceable(self) -> Iterator["TorchLongformerEncoder"]:
        """This encoder on its dense path, in one piece, at every length while the block runs (see the class
        docstring); `dense_only` is restored on exit."""
        saved = self.dense_only
        self.dense_only = True
        try:
            yield self
        finally:
            self.dense_only = saved

    def uses_dense(self, length: int) -> bool:
        """Whether a sequence of `length` tokens takes the dense (L x L) attention rather than the blocked one."""
        return self.dense_only or length <= DENSE_MAX_TOKENS

    def _check_mask(self, mask: torch.Tensor) -> None:
        """Global tokens only where this encoder takes them; without a host sync (on a GPU the assertion runs on
        the device, asynchronously)."""
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return
        message = (
            f"The 'longformer' temporal encoder takes global attention (mask 2) only on the first "
            f"{self.num_global} token(s) (the [CLS] token); got it further on. Put global tokens first, "
            "or use VTN.TEMPORAL_ENCODER longformer_hf, which takes them anywhere."
        )
        try:
            torch._assert_async((mask[:, self.num_global :] != GLOBAL).all(), message)
        except RuntimeError:  # raised at once on the CPU
            raise ValueError(message) from None

    def chunk_sizes(self, hidden: torch.Tensor) -> list[int]:
        """How the sequence is cut for the layers: on the CPU into near-equal chunks of at most
        `chunk_bytes` per activation; elsewhere (a caching allocator), or on the dense path, one piece."""
        b, length, _ = hidden.shape
        spec = self.spec
        c = self.encoder.layer[0].attention.self.block
        if self.uses_dense(length) or hidden.device.type != "cpu":
            return [length]
        per_token = (
            b
            * hidden.element_size()
            * max(spec.intermediate_size, spec.hidden_size, spec.num_heads * (3 * c + self.num_global))
        )
        most = max(self.chunk_bytes // per_token, 2 * c)
        n = -(-length // most)
        return [length // n + (1 if i < length % n else 0) for i in range(n)]

    def encode(
        self, hidden: torch.Tensor, mask: torch.Tensor, return_attention: bool
    ) -> tuple[torch.Tensor, Optional[list[torch.Tensor]]]:
        self._check_mask(mask)
        attention = []
        dense = self.uses_dense(hidden.shape[1])
        sizes = self.chunk_sizes(hidden)  # one piece when dense
        chunks = list(torch.split(hidden, sizes, dim=1)) if len(sizes) > 1 else [hidden]
        for layer in self.encoder.layer:
            chunks, probs = self.run_layer(layer, chunks, mask, dense)
            if return_attention:
                attention.append(probs[:, :, 0])  # the [CLS] (first global slot) over all tokens
        hidden = torch.cat(chunks, dim=1) if len(chunks) > 1 else chunks[0]
        return hidden, (attention if return_attention else None)
