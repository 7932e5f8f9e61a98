"""The Longformer encoder: padding invariance, windowed locality, global [CLS], uniform attention.

Parametrised over every registered encoder so that a new backend is held to the same properties.
"""

import pytest
import torch

from tests.helpers import tiny_model
from vtn.models.temporal_encoders import GLOBAL, LOCAL, PAD, TEMPORAL_ENCODER_REGISTRY

ENCODERS = TEMPORAL_ENCODER_REGISTRY.names()


def tokens_and_mask(b, length):
    tokens = torch.randn(b, length, 192)
    mask = torch.full((b, length), LOCAL)
    mask[:, 0] = GLOBAL
    return tokens, mask


@pytest.mark.parametrize("encoder", ENCODERS)
def test_padded_frames_do_not_change_real_outputs(encoder):
    model = tiny_model("VTN.TEMPORAL_ENCODER", encoder, "VTN.NUM_LAYERS", 2)
    emb = torch.randn(1, 5, 192)
    idx = torch.arange(5)[None]
    ref = model.forward_embeddings(emb, idx)
    for pad_value in (0.0, -1.0, 1e3):
        padded = torch.cat([emb, torch.full((1, 4, 192), pad_value)], dim=1)
        valid = torch.tensor([[True] * 5 + [False] * 4])
        out = model.forward_embeddings(padded, torch.arange(9)[None], valid)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_batch_of_different_lengths_matches_one_by_one(encoder):
    model = tiny_model("VTN.TEMPORAL_ENCODER", encoder, "VTN.NUM_LAYERS", 2)
    a, b = torch.randn(1, 7, 192), torch.randn(1, 3, 192)
    batch = torch.cat([a, torch.cat([b, torch.zeros(1, 4, 192)], 1)])
    valid = torch.tensor([[True] * 7, [True] * 3 + [False] * 4])
    out = model.forward_embeddings(batch, None, valid)
    torch.testing.assert_close(out[0], model.forward_embeddings(a)[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(out[1], model.forward_embeddings(b)[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_one_layer_frame_tokens_see_only_their_window(encoder):
    window = 4  # two tokens on each side
    model = tiny_model("VTN.TEMPORAL_ENCODER", encoder, "VTN.ATTENTION_WINDOW", window)
    enc = model.temporal_encoder
    tokens, mask = tokens_and_mask(1, 13)
    idx = torch.arange(12)[None]
    ref = enc(tokens, idx, mask)
    i = 6
    for j in range(1, 13):
        changed = tokens.clone()
        changed[0, j] += torch.randn(changed.shape[-1])
        out = enc(changed, idx, mask)
        moved = not torch.allclose(out[0, i], ref[0, i], atol=1e-6)
        assert moved == (abs(i - j) <= window // 2), f"token {i} vs perturbed token {j}"
    # every frame token attends to the global [CLS] token, wherever it is
    changed = tokens.clone()
    changed[0, 0] += torch.randn(changed.shape[-1])
    assert not torch.allclose(enc(changed, idx, mask)[0, 12], ref[0, 12])


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("layers", [1, 3])
def test_cls_output_depends_on_every_frame(encoder, layers):
    model = tiny_model("VTN.TEMPORAL_ENCODER", encoder, "VTN.NUM_LAYERS", layers, "VTN.ATTENTION_WINDOW", 4)
    emb = torch.randn(1, 20, 192)
    ref = model.forward_embeddings(emb)
    for j in range(20):
        changed = emb.clone()
        changed[0, j] += torch.randn(changed.shape[-1])
        assert not torch.allclose(model.forward_embeddings(changed), ref, atol=1e-6), f"frame {j} ignored"


@pytest.mark.parametrize("encoder", ENCODERS)
def test_uniform_attention_is_uniform_and_not_learned(encoder):
    model = tiny_model("VTN.TEMPORAL_ENCODER", encoder, "VTN.UNIFORM_ATTENTION", True, "VTN.NUM_LAYERS", 2)
    emb = torch.randn(2, 9, 192)
    valid = torch.tensor([[True] * 9, [True] * 6 + [False] * 3])
    logits, attention = model.forward_embeddings(emb, None, valid, return_attention=True)
    for layer_attn in attention:  # (B, heads, 1 + T): [CLS] over [CLS] and the frames
        torch.testing.assert_close(layer_attn[0], torch.full((3, 10), 1 / 10))
        torch.testing.assert_close(layer_attn[1, :, :7], torch.full((3, 7), 1 / 7))
        assert layer_attn[1, :, 7:].abs().max() == 0
    # queries and keys neither matter nor learn
    model.train()
    model.forward_embeddings(emb, None, valid).sum().backward()
    attn = model.temporal_encoder.encoder.layer[0].attention.self
    for proj in (attn.query, attn.key, attn.query_global, attn.key_global):
        assert proj.weight.grad is None and not proj.weight.requires_grad
    assert attn.value.weight.grad is not None
    model.eval()
    with torch.no_grad():
        attn.query.weight.normal_()
        attn.key_global.weight.normal_()
    torch.testing.assert_close(model.forward_embeddings(emb, None, valid), logits)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_uniform_attention_averages_values_in_the_window(encoder):
    """One layer, one head: a frame token's attention output is the mean of the values it may see."""
    model = tiny_model("VTN.TEMPORAL_ENCODER", encoder, "VTN.UNIFORM_ATTENTION", True, "VTN.NUM_HEADS", 1)
    enc = model.temporal_encoder
    tokens, mask = tokens_and_mask(1, 9)
    hidden = enc.embeddings(tokens, torch.arange(8)[None])
    attn = enc.encoder.layer[0].attention
    captured = {}
    attn.output.dense.register_forward_hook(lambda m, inp, out: captured.setdefault("ctx", inp[0]))
    enc(tokens, torch.arange(8)[None], mask)
    values = attn.self.value(hidden)[0]
    i = 5  # window 4 -> frames 3..7 plus the global [CLS] (token 0)
    expected = values[[0, 3, 4, 5, 6, 7]].mean(0)
    torch.testing.assert_close(captured["ctx"][0, i], expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_cls_attention_is_a_distribution_over_real_tokens(encoder):
    model = tiny_model("VTN.TEMPORAL_ENCODER", encoder, "VTN.NUM_LAYERS", 2)
    valid = torch.tensor([[True] * 5 + [False] * 2])
    _, attention = model.forward_embeddings(torch.randn(1, 7, 192), None, valid, return_attention=True)
    assert len(attention) == 2
    for a in attention:
        assert a.shape == (1, 3, 8)
        torch.testing.assert_close(a.sum(-1), torch.ones(1, 3))
        assert a[..., 6:].abs().max() == 0


def test_padding_mask_constant_names():
    assert (PAD, LOCAL, GLOBAL) == (0, 1, 2)


def test_transformers_encoder_rejects_a_window_of_two():
    with pytest.raises(ValueError, match="ATTENTION_WINDOW = 2.*at least 4"):
        tiny_model("VTN.TEMPORAL_ENCODER", "longformer_hf", "VTN.ATTENTION_WINDOW", 2)
