"""Activation checkpointing (VTN.GRAD_CHECKPOINTING): same gradients with dropout, and really on in training."""

import copy

import pytest
import torch
import torch.nn as nn

from tests.helpers import tiny_cfg
from vtn.models import build_model
from vtn.models.backbones import set_backbone_grad_checkpointing
from vtn.models.backbones.timm_backbones import PAPER_BACKBONES
from vtn.models.temporal_encoders import TEMPORAL_ENCODER_REGISTRY

# Dropout everywhere, so that a recomputation with other random masks would give other gradients.
DROPOUT_OPTS = ["VTN.HIDDEN_DROPOUT", 0.2, "VTN.ATTENTION_DROPOUT", 0.2, "VTN.DROP_PATH_RATE", 0.2]
DROPOUT_OPTS += ["VTN.HEAD_DROPOUT", 0.2, "VTN.NUM_LAYERS", 2]


def pair(encoder, *opts):
    """The same tiny model without and with VTN.GRAD_CHECKPOINTING (same weights)."""
    models = []
    for on in (False, True):
        torch.manual_seed(0)
        cfg = tiny_cfg(*DROPOUT_OPTS, "VTN.TEMPORAL_ENCODER", encoder, "VTN.GRAD_CHECKPOINTING", on, *opts)
        models.append(build_model(cfg))
    models[1].load_state_dict(models[0].state_dict())
    return models


def clip():
    return torch.randn(2, 3, 6, 32, 32, generator=torch.Generator().manual_seed(1))


class CallCounter:
    """Counts forward calls of modules: a checkpointed one runs again in the backward pass. (A pre-hook: the
    recomputation stops as soon as it has every tensor the backward needs, maybe inside the module.)"""

    def __init__(self, *modules):
        self.calls = 0
        for m in modules:
            m.register_forward_pre_hook(self)

    def __call__(self, *_):
        self.calls += 1


def watched(model):
    """A module inside a backbone block and one inside a Longformer layer (inside, because transformers
    checkpoints its layers' `forward`, not their `__call__`)."""
    return model.backbone.blocks[0].mlp, model.temporal_encoder.encoder.layer[0].intermediate


def train_step(model, x):
    """Forward + backward in training mode from a fixed RNG state; the parameter gradients by name, the
    calls of the watched modules during the backward pass, and the bytes autograd saved outside checkpoints."""
    counters = [CallCounter(m) for m in watched(model)]
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    model.train()
    torch.manual_seed(123)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(x).logsumexp(-1).sum()
    before = [c.calls for c in counters]
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return grads, [c.calls - b for c, b in zip(counters, before)], sum(saved)


@pytest.mark.parametrize("encoder", TEMPORAL_ENCODER_REGISTRY.names())
def test_same_gradients_with_dropout_and_recomputation_in_backward(encoder):
    plain, ckpt = pair(encoder)
    x = clip()
    grads, recomputed, saved = train_step(plain, x)
    grads_ckpt, recomputed_ckpt, saved_ckpt = train_step(ckpt, x)
    assert recomputed == [0, 0]
    assert recomputed_ckpt == [1, 1]  # backbone block and Longformer layer run again in the backward pass
    assert saved_ckpt < saved / 2, (saved_ckpt, saved)
    assert grads.keys() == grads_ckpt.keys() and len(grads) == len(list(plain.parameters()))
    for name, g in grads.items():
        torch.testing.assert_close(grads_ckpt[name], g, rtol=0, atol=1e-5, msg=name)
    # dropout really acted: another seed gives other gradients (so equal gradients above mean equal masks)
    torch.manual_seed(7)
    plain.zero_grad()
    plain(x).logsumexp(-1).sum().backward()
    assert not torch.allclose(plain.mlp_head[1].weight.grad, grads["mlp_head.1.weight"], atol=1e-4)


@pytest.mark.parametrize("encoder", TEMPORAL_ENCODER_REGISTRY.names())
def test_eval_and_no_grad_run_as_without(encoder):
    plain, ckpt = pair(encoder)
    x = clip()
    for mode in ("eval", "train"):
        for model in (plain, ckpt):
            model.train(mode == "train")
        counters = [CallCounter(*watched(m)) for m in (plain, ckpt)]
        with torch.no_grad():
            torch.manual_seed(5)
            out = plain(x)
            torch.manual_seed(5)
            out_ckpt = ckpt(x)
        torch.testing.assert_close(out_ckpt, out, rtol=0, atol=0)
        assert [c.calls for c in counters] == [2, 2]
    # evaluation with gradients on (e.g. attention maps with gradients) is not recomputed either by our encoders
    ckpt.eval()
    counter = CallCounter(ckpt.temporal_encoder.encoder.layer[0].intermediate)
    ckpt(x).sum().backward()
    assert counter.calls == 1


def test_frozen_backbone_is_not_checkpointed():
    _, ckpt = pair("longformer", "VTN.FREEZE_BACKBONE", True)
    assert ckpt.backbone.grad_checkpointing is False  # timm's flag: it runs under no_grad, nothing to recompute
    assert ckpt.temporal_encoder.grad_checkpointing is True
    _, recomputed, _ = train_step(ckpt, clip())
    assert recomputed == [0, 1]


def test_flag_is_off_by_default():
    model = build_model(tiny_cfg())
    assert model.backbone.grad_checkpointing is False and model.temporal_encoder.grad_checkpointing is False


@pytest.mark.parametrize("name", sorted(PAPER_BACKBONES))
def test_paper_backbones_checkpoint_per_block(name):
    cfg = tiny_cfg("VTN.BACKBONE", name, "VTN.BACKBONE_KWARGS", "{}")
    from vtn.models.backbones import build_backbone

    with torch.device("meta"):  # no memory, no weights: only the structure matters
        backbone = build_backbone(cfg)
    assert set_backbone_grad_checkpointing(backbone) == "blocks"
    assert backbone.grad_checkpointing is True


class NoBlocks(nn.Module):
    """A backbone without per-block checkpointing."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 32), nn.Linear(32, 4)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


def test_backbone_without_per_block_checkpointing_is_checkpointed_whole(caplog):
    torch.manual_seed(0)
    plain = NoBlocks()
    ckpt = copy.deepcopy(plain)
    assert set_backbone_grad_checkpointing(ckpt) == "whole"
    assert "no per-block checkpointing" in caplog.text
    counter = CallCounter(ckpt.fc1)
    x = torch.randn(5, 8)
    for model in (plain, ckpt):
        torch.manual_seed(3)
        model(x).square().sum().backward()
    assert counter.calls == 2  # recomputed in the backward pass
    for p, q in zip(plain.parameters(), ckpt.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=1e-6)
    # a deep copy (the EMA model) runs its own weights, and eval is a plain forward
    twin = copy.deepcopy(ckpt).eval()
    with torch.no_grad():
        twin.fc2.bias.add_(1.0)
    torch.testing.assert_close(twin(x), ckpt.eval()(x) + 1.0)
    set_backbone_grad_checkpointing(ckpt, False)
    assert "forward" not in vars(ckpt)
