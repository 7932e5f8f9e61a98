"""`TemporalEncoder.traceable()`: the form export traces. Same outputs, one (dense) path for the 'longformer'
encoder at every length, per instance, and everything restored after the block, also after an exception."""

import threading

import pytest
import torch

from tests.helpers import tiny_model
from vtn.models.temporal_encoders import GLOBAL, LOCAL, PAD, TEMPORAL_ENCODER_REGISTRY, longformer
from vtn.models.temporal_encoders.longformer import LocalGlobalSelfAttention

LONG = 131  # tokens: past DENSE_MAX_TOKENS (96), so the normal path is the blocked one


def encoder(name="longformer"):
    """A two-layer encoder of the tiny model, window 6."""
    model = tiny_model("VTN.TEMPORAL_ENCODER", name, "VTN.NUM_LAYERS", 2, "VTN.ATTENTION_WINDOW", 6)
    return model.temporal_encoder


def inputs(length=LONG, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(b, length, 192, generator=g)
    mask = torch.full((b, length), LOCAL)
    mask[:, 0] = GLOBAL
    mask[1, -20:] = PAD
    return tokens, torch.arange(length - 1).expand(b, -1), mask


@pytest.fixture
def paths(monkeypatch):
    """Counts of the dense and blocked local attentions run, per call of the layers' attention."""
    seen = {"dense": 0, "blocked": 0}
    dense, blocked = LocalGlobalSelfAttention._dense_local, LocalGlobalSelfAttention._blocked_local

    def count_dense(self, *args):
        seen["dense"] += 1
        return dense(self, *args)

    def count_blocked(self, *args):
        seen["blocked"] += 1
        return blocked(self, *args)

    monkeypatch.setattr(LocalGlobalSelfAttention, "_dense_local", count_dense)
    monkeypatch.setattr(LocalGlobalSelfAttention, "_blocked_local", count_blocked)
    return seen


@pytest.mark.parametrize("chunk_bytes", [None, 1], ids=["blocked", "chunked"])
def test_traceable_gives_the_outputs_of_the_blocked_and_chunked_paths(chunk_bytes, paths):
    enc = encoder().eval()
    if chunk_bytes:
        enc.chunk_bytes = chunk_bytes  # near-equal chunks of 2 blocks: several pieces on the normal path
        assert len(enc.chunk_sizes(torch.empty(2, LONG, 192))) > 1
    x, idx, mask = inputs()
    with torch.no_grad():
        ref, ref_att = enc(x, idx, mask, return_attention=True)
        assert paths == {"dense": 0, "blocked": 2 * (len(enc.chunk_sizes(x)))}
        paths["blocked"] = 0
        with enc.traceable() as same:
            assert same is enc
            assert enc.chunk_sizes(x) == [LONG]
            out, att = enc(x, idx, mask, return_attention=True)
    assert paths == {"dense": 2, "blocked": 0}  # one dense attention per layer, nothing blocked
    real = (mask != PAD)[..., None]
    torch.testing.assert_close(out * real, ref * real, rtol=0, atol=1e-5)
    for a, b in zip(att, ref_att):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_traceable_exports_one_program_for_short_and_long_sequences():
    enc = encoder().eval()
    length = torch.export.Dim("length", min=2, max=300)
    shapes = ({1: length}, {1: length - 1}, {1: length})
    with torch.no_grad(), enc.traceable():
        program = torch.export.export(enc, inputs(9), dynamic_shapes=shapes).module()
    for n in (5, LONG, 250):
        x, idx, mask = inputs(n, seed=n)
        real = (mask != PAD)[..., None]
        with torch.no_grad():
            torch.testing.assert_close(program(x, idx, mask) * real, enc(x, idx, mask) * real, rtol=0, atol=1e-5)


def state(enc):
    return longformer.DENSE_MAX_TOKENS, enc.chunk_bytes, enc.dense_only, enc.uses_dense(LONG)


def test_the_global_and_the_instance_are_as_before_after_the_block_and_after_an_error():
    enc = encoder()
    enc.chunk_bytes = 12345
    before = state(enc)
    assert before == (96, 12345, False, False)
    with enc.traceable():
        assert state(enc) == (96, 12345, True, True)  # only the instance's own flag changes
        with enc.traceable():  # nested: the outer block's state comes back
            pass
        assert enc.uses_dense(LONG)
    assert state(enc) == before
    with pytest.raises(RuntimeError, match="in the block"):
        with enc.traceable():
            raise RuntimeError("in the block")
    assert state(enc) == before
    x, idx, mask = inputs()
    enc(x, idx, mask)  # the normal path again: blocked, and chunked by the instance's chunk_bytes
    assert len(enc.chunk_sizes(x)) > 1 and not enc.uses_dense(LONG)


def test_one_model_in_its_traceable_form_leaves_another_as_it_is():
    a, b = encoder(), encoder()
    inside, other_thread = threading.Event(), []

    def look():
        inside.wait(10)
        other_thread.append(b.uses_dense(LONG))

    thread = threading.Thread(target=look)
    thread.start()
    with a.traceable():
        inside.set()
        thread.join(10)
        assert a.uses_dense(LONG) and not b.uses_dense(LONG)
    assert other_thread == [False]


@pytest.mark.parametrize("name", TEMPORAL_ENCODER_REGISTRY.names())
def test_every_encoder_has_a_traceable_form_with_the_same_outputs(name):
    enc = encoder(name).eval()
    x, idx, mask = inputs(40)
    real = (mask != PAD)[..., None]
    with torch.no_grad():
        ref = enc(x, idx, mask)
        with enc.traceable() as same:
            assert same is enc
            out = enc(x, idx, mask)
    torch.testing.assert_close(out * real, ref * real, rtol=0, atol=1e-5)
