"""The VTN model: shapes, the embeddings path, chunking, freezing, position embeddings, shuffling."""

import pytest
import torch

from tests.helpers import tiny_cfg, tiny_model
from vtn.models import build_model
from vtn.models.vtn import shuffled_frame_order


def clip(b=2, t=6, size=32):
    return torch.randn(b, 3, t, size, size)


def test_forward_shape_and_input_check():
    model = tiny_model()
    assert model(clip()).shape == (2, 5)
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        model(torch.randn(2, 3, 32, 32))


def test_forward_is_backbone_then_forward_embeddings():
    model = tiny_model()
    x = clip(b=2, t=5)
    idx = torch.tensor([[0, 3, 6, 9, 12], [1, 2, 3, 4, 5]])
    frames = x.transpose(1, 2).reshape(10, 3, 32, 32)
    emb = model.backbone(frames).view(2, 5, -1)
    torch.testing.assert_close(model(x, idx), model.forward_embeddings(emb, idx), rtol=0, atol=1e-6)


def test_backbone_chunks_give_the_same_logits_at_inference():
    whole = tiny_model()
    chunked = tiny_model("VTN.BACKBONE_CHUNK_SIZE", 4)
    chunked.load_state_dict(whole.state_dict())
    x = clip(b=2, t=7)
    torch.testing.assert_close(chunked(x), whole(x), rtol=0, atol=1e-5)


def test_feature_projection_when_hidden_dim_differs():
    model = tiny_model("VTN.HIDDEN_DIM", 48)
    assert model.feature_proj is not None and model.feature_proj.out_features == 48
    assert model(clip()).shape == (2, 5)


def test_hidden_size_must_divide_by_heads():
    with pytest.raises(ValueError, match="multiple of VTN.NUM_HEADS = 5"):
        build_model(tiny_cfg("VTN.NUM_HEADS", 5))


def test_initialisation_is_normal_002_for_encoder_head_and_cls():
    model = tiny_model("VTN.NUM_LAYERS", 2)
    w = torch.cat(
        [
            model.mlp_head[1].weight.flatten(),
            model.temporal_encoder.encoder.layer[0].intermediate.dense.weight.flatten(),
        ]
    )
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    assert model.mlp_head[1].bias.abs().max() == 0
    assert abs(model.cls_token.std().item() - 0.02) < 0.006


def test_head_is_layernorm_linear_gelu_dropout_linear():
    head = tiny_model("VTN.MLP_DIM", 64, "VTN.HEAD_DROPOUT", 0.3).mlp_head
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["LayerNorm", "Linear", "GELU", "Dropout", "Linear"]
    assert head[1].out_features == 64 and head[3].p == 0.3 and head[4].out_features == 5


def test_frozen_backbone_gets_no_gradient_and_stays_in_eval():
    model = tiny_model("VTN.FREEZE_BACKBONE", True)
    model.train()
    assert not model.backbone.training and model.temporal_encoder.training
    model(clip()).sum().backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(not p.requires_grad for p in model.backbone.parameters())
    assert model.mlp_head[1].weight.grad is not None
    assert model.temporal_encoder.encoder.layer[0].output.dense.weight.grad is not None


def test_unfrozen_backbone_gets_gradient():
    model = tiny_model().train()
    model(clip()).sum().backward()
    assert model.backbone.patch_embed.proj.weight.grad is not None


def _cls_state(model, emb, idx):
    return model.forward_embeddings(emb, idx)


def test_learned_positions_use_the_frame_index_and_wrap_past_the_table():
    model = tiny_model("VTN.MAX_POSITION_EMBEDDINGS", 20)
    emb = torch.randn(1, 4, 192)
    idx = torch.tensor([[0, 5, 10, 15]])
    base = model.forward_embeddings(emb, idx)
    assert not torch.allclose(base, model.forward_embeddings(emb, idx + 1))
    torch.testing.assert_close(model.forward_embeddings(emb, idx + 20), base)  # modulo 20
    clamp = tiny_model("VTN.MAX_POSITION_EMBEDDINGS", 20, "VTN.POS_INDEX_MODE", "clamp")
    torch.testing.assert_close(
        clamp.forward_embeddings(emb, torch.tensor([[19, 19, 19, 19]])),
        clamp.forward_embeddings(emb, torch.tensor([[25, 40, 19, 1000]])),
    )
    table = model.temporal_encoder.embeddings.position_embeddings
    assert table.weight.shape == (22, 192)  # 20 frame rows + [CLS] + padding


def test_fixed_positions_are_sinusoids_of_any_index():
    from vtn.models.position_embeddings import sinusoid

    pe = sinusoid(torch.tensor([0, 1, 100000]), 8)
    assert torch.allclose(pe[0], torch.tensor([0.0, 1.0] * 4))
    assert torch.allclose(pe[1, 0], torch.sin(torch.tensor(1.0))) and torch.allclose(
        pe[1, 1], torch.cos(torch.tensor(1.0))
    )
    freq2 = 10000 ** (-2 / 8)
    assert torch.allclose(pe[1, 2], torch.sin(torch.tensor(freq2)))
    model = tiny_model("VTN.POS_EMBED", "fixed")
    assert not any("position_embeddings" in k for k in model.state_dict())
    emb = torch.randn(1, 3, 192)
    a = model.forward_embeddings(emb, torch.tensor([[0, 1, 2]]))
    b = model.forward_embeddings(emb, torch.tensor([[50000, 50001, 50002]]))
    assert torch.isfinite(b).all() and not torch.allclose(a, b)


def test_no_position_embedding_ignores_indices_but_marks_cls():
    model = tiny_model("VTN.POS_EMBED", "none")
    emb = torch.randn(1, 3, 192)
    torch.testing.assert_close(
        model.forward_embeddings(emb, torch.tensor([[0, 1, 2]])),
        model.forward_embeddings(emb, torch.tensor([[7, 99, 1000]])),
    )
    # with one layer and a window covering everything, [CLS] is order-free without positions...
    wide = tiny_model("VTN.POS_EMBED", "none", "VTN.ATTENTION_WINDOW", 16)
    emb = torch.randn(1, 6, 192)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    torch.testing.assert_close(wide.forward_embeddings(emb), wide.forward_embeddings(emb[:, perm]))
    # ...and order-aware with learned positions.
    learned = tiny_model("VTN.ATTENTION_WINDOW", 16)
    assert not torch.allclose(learned.forward_embeddings(emb), learned.forward_embeddings(emb[:, perm]))
    # [CLS] differs from a frame token by its token type even without positions
    tt = model.temporal_encoder.embeddings.token_type_embeddings.weight
    assert tt.shape == (2, 192) and not torch.allclose(tt[0], tt[1])


def test_test_time_shuffle_permutes_frames_but_not_positions():
    emb = torch.randn(2, 6, 192)
    model = tiny_model("VTN.ATTENTION_WINDOW", 16)
    order = shuffled_frame_order(6, [11, 12])
    assert sorted(order[0].tolist()) == list(range(6)) and order.tolist() != [list(range(6))] * 2
    expected = model.forward_embeddings(torch.gather(emb, 1, order[..., None].expand_as(emb)))
    torch.testing.assert_close(model.forward_embeddings(emb, frame_order=order), expected)
    assert not torch.allclose(model.forward_embeddings(emb, frame_order=order), model.forward_embeddings(emb))
    # the same seeds give the same order, whatever else was drawn before
    torch.rand(100)
    assert shuffled_frame_order(6, [11, 12]).tolist() == order.tolist()
    assert shuffled_frame_order(6, [12]).tolist() == order[1:].tolist()


def test_shuffle_keeps_padding_at_the_end():
    valid = torch.tensor([[True, True, True, False, False], [True] * 5])
    order = shuffled_frame_order(5, [3, 4], valid)
    assert sorted(order[0, :3].tolist()) == [0, 1, 2] and order[0, 3:].tolist() == [3, 4]
    assert sorted(order[1].tolist()) == [0, 1, 2, 3, 4]
