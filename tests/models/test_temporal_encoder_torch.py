"""The pure-PyTorch Longformer ("longformer") against transformers' ("longformer_hf"): same weights, same
outputs and gradients, at tiny sizes; plus what only the PyTorch one can do (export, window 2).

The shared properties (padding invariance, locality, global [CLS], uniform attention) are checked for both
in test_temporal_encoder.py.
"""

import pytest
import torch

from tests.helpers import tiny_cfg
from vtn.models.temporal_encoders import GLOBAL, LOCAL, PAD, build_temporal_encoder
from vtn.models.temporal_encoders import longformer as torch_longformer

DIM, FFN = 24, 40  # 3 heads of 8


def encoder(name, *opts, seed=0):
    cfg = tiny_cfg("VTN.TEMPORAL_ENCODER", name, "VTN.NUM_LAYERS", 2, "VTN.POS_EMBED", "fixed", *opts)
    torch.manual_seed(seed)
    return build_temporal_encoder(cfg, DIM, FFN).eval()


def pair(*opts):
    hf = encoder("longformer_hf", *opts)
    with torch.no_grad():  # large weights: sharp attention, so a wrong key or a missed mask shows
        for p in hf.parameters():
            p.normal_(0, 0.4)
    ours = encoder("longformer", *opts, seed=1)
    ours.load_state_dict(hf.state_dict(), strict=True)
    return hf, ours


def batch(length, b=3, seed=0):
    """Row 0 full; row 1 ends in padding; row 2 is half padding (padding filled with large values)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, DIM, generator=g)
    mask = torch.full((b, length), LOCAL)
    mask[:, 0] = GLOBAL
    if length > 3 and b > 1:
        mask[1, -2:] = PAD
    if length > 5 and b > 2:
        mask[2, length // 2 :] = PAD
    x = x.masked_fill((mask == PAD)[..., None], 1e3)
    idx = torch.arange(length - 1).expand(b, -1)
    return x, idx, mask


def run(model, x, idx, mask, with_attention=True):
    """Outputs on real tokens, [CLS] attention, and the gradients of a loss that uses both."""
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    hidden, attention = model(x, idx, mask, return_attention=True)
    if not with_attention:
        attention = []
    real = (mask != PAD)[..., None]
    weights = torch.randn(hidden.shape, generator=torch.Generator().manual_seed(3))
    loss = (hidden * weights * real).sum() + sum(
        (a * torch.linspace(-1, 1, a.numel()).view_as(a)).sum() for a in attention
    )
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return hidden * real, attention, x.grad, grads


def assert_same(a, b, atol=1e-4):
    (h1, att1, gx1, gp1), (h2, att2, gx2, gp2) = a, b
    assert (h1 - h2).abs().max() <= atol
    assert len(att1) == len(att2)
    for u, v in zip(att1, att2):
        assert u.shape == v.shape and (u - v).abs().max() <= atol
    assert (gx1 - gx2).abs().max() <= atol
    assert set(gp1) == set(gp2)
    for name in gp1:
        assert (gp1[name] - gp2[name]).abs().max() <= atol, name


def test_state_dicts_are_the_same_layout_and_load_both_ways():
    hf, ours = pair()
    a, b = hf.state_dict(), ours.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    fresh_hf = encoder("longformer_hf", seed=5)
    fresh_hf.load_state_dict(ours.state_dict(), strict=True)
    assert all(torch.equal(v, fresh_hf.state_dict()[k]) for k, v in b.items())


LENGTHS = [1, 2, 5, 9, 17, 40, 101]


@pytest.mark.parametrize("window, uniform", [(4, False), (6, True), (18, False)], ids=["w4", "w6-uniform", "w18"])
@pytest.mark.parametrize("path", ["auto", "blocked", "chunked"])
def test_forward_and_gradients_equal_transformers(window, uniform, path, monkeypatch):
    """Lengths below, at and above the window and not multiples of it; padding; the global [CLS]; uniform
    attention; return_attention. `blocked` forces the blocked path even for short sequences; `chunked` also
    cuts them into near-equal chunks of at most 2 blocks, as long sequences are cut on the CPU."""
    if path != "auto":
        monkeypatch.setattr(torch_longformer, "DENSE_MAX_TOKENS", 0)
    hf, ours = pair("VTN.ATTENTION_WINDOW", window, "VTN.UNIFORM_ATTENTION", uniform)
    if path == "chunked":
        ours.chunk_bytes = 1
    for length in LENGTHS:
        inputs = batch(length, seed=length)
        assert_same(run(hf, *inputs), run(ours, *inputs))


def test_rows_without_a_global_token_and_no_global_at_all():
    hf, ours = pair()
    x, idx, mask = batch(40)
    mask[1, 0] = LOCAL  # this row's first token is an ordinary frame (its "[CLS] attention" means nothing)
    assert_same(run(hf, x, idx, mask, False), run(ours, x, idx, mask, False))
    mask[:, 0] = LOCAL  # no global token anywhere (transformers then takes its local-only path)
    h1, h2 = hf(x, idx, mask), ours(x, idx, mask)
    real = (mask != PAD)[..., None]
    assert ((h1 - h2) * real).abs().max() <= 1e-4


def test_two_leading_global_tokens():
    hf, ours = pair()
    ours = torch_longformer.TorchLongformerEncoder(
        tiny_cfg("VTN.NUM_LAYERS", 2, "VTN.POS_EMBED", "fixed"), ours.spec, num_global=2
    ).eval()
    ours.load_state_dict(hf.state_dict(), strict=True)
    for length in (9, 130):
        x, idx, mask = batch(length)
        mask[:, 1] = GLOBAL
        mask[2, 1] = LOCAL  # a leading slot may also be an ordinary token
        assert_same(run(hf, x, idx, mask), run(ours, x, idx, mask))


def test_global_tokens_further_on_are_refused():
    ours = encoder("longformer")
    x, idx, mask = batch(9)
    mask[0, 4] = GLOBAL
    with pytest.raises(ValueError, match="only on the first 1 token"):
        ours(x, idx, mask)


@pytest.mark.parametrize("length", [5, 130])
def test_padding_never_changes_real_outputs(length):
    ours = encoder("longformer", "VTN.ATTENTION_WINDOW", 6)
    x, idx, mask = batch(length, b=1)
    ref = ours(x, idx, mask)
    for extra in (3, 150):  # also moves a short sequence from the dense to the blocked path
        padded = torch.cat([x, torch.full((1, extra, DIM), -7e2)], dim=1)
        pmask = torch.cat([mask, torch.full((1, extra), PAD)], dim=1)
        pidx = torch.arange(length + extra - 1)[None]
        out = ours(padded, pidx, pmask)[:, :length]
        assert (out - ref).abs().max() <= 1e-5


def test_window_of_two_sees_one_token_on_each_side():
    ours = encoder("longformer", "VTN.ATTENTION_WINDOW", 2, "VTN.NUM_LAYERS", 1)
    x, idx, mask = batch(120, b=1)
    ref = ours(x, idx, mask)
    i = 60
    for j in (57, 58, 59, 60, 61, 62, 63):
        changed = x.clone()
        changed[0, j] += torch.randn(DIM)
        moved = not torch.allclose(ours(changed, idx, mask)[0, i], ref[0, i], atol=1e-6)
        assert moved == (abs(i - j) <= 1), j


def test_dropout_only_in_training():
    ours = encoder("longformer", "VTN.ATTENTION_DROPOUT", 0.5)
    x, idx, mask = batch(130)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, idx, mask), ours(x, idx, mask), rtol=0, atol=0)
        ours.train()
        assert not torch.allclose(ours(x, idx, mask), ours(x, idx, mask))


@pytest.mark.parametrize("length, chunk_bytes", [(9, None), (130, None), (130, 1)], ids=["9", "130", "130-chunked"])
def test_torch_export(length, chunk_bytes):
    """transformers' Longformer does not export (data-dependent control flow); ours does."""
    ours = encoder("longformer")
    ours.chunk_bytes = chunk_bytes or ours.chunk_bytes
    x, idx, mask = batch(length)
    program = torch.export.export(ours, (x, idx, mask))
    other = batch(length, seed=7)[0], idx, mask.roll(1, dims=0)  # other values, other padding per row
    for inputs in ((x, idx, mask), other):
        torch.testing.assert_close(program.module()(*inputs), ours(*inputs), rtol=0, atol=1e-5)


def test_long_sequences_on_the_cpu_are_cut_into_chunks_below_the_mmap_threshold():
    """ViT-B sizes, 16,001 tokens: near-equal chunks, each activation at most chunk_bytes (< 32 MB)."""
    ours = encoder("longformer", "VTN.ATTENTION_WINDOW", 32)
    ours.spec.intermediate_size, ours.spec.hidden_size, ours.spec.num_heads = 3072, 768, 12
    hidden = torch.empty(1, 16001, 768)
    sizes = ours.chunk_sizes(hidden)
    assert sum(sizes) == 16001 and len(sizes) > 1 and max(sizes) - min(sizes) <= 1
    assert max(sizes) * 3072 * 4 <= ours.chunk_bytes < 32 * 2**20
    assert ours.chunk_sizes(torch.empty(1, 1001, 768)) == [1001]
    assert ours.chunk_sizes(torch.empty(2, 40, 768)) == [40]  # short: dense, one piece
