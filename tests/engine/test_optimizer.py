import pytest
import torch

from tests.helpers import tiny_cfg, tiny_model
from vtn.config import load_config
from vtn.engine.optimizer import build_optimizer, param_groups


def groups_by_name(model, cfg):
    return {n: g for g in param_groups(model, cfg) for n in g["names"]}


def test_no_weight_decay_on_norms_biases_tokens_and_embeddings():
    cfg = tiny_cfg("SOLVER.WEIGHT_DECAY", 0.05)
    model = tiny_model()
    g = groups_by_name(model, cfg)
    zero = [n for n, grp in g.items() if grp["weight_decay"] == 0.0]
    decayed = [n for n, grp in g.items() if grp["weight_decay"] == 0.05]
    for name in [
        "cls_token",
        "temporal_encoder.embeddings.position_embeddings.weight",
        "temporal_encoder.embeddings.token_type_embeddings.weight",
        "temporal_encoder.embeddings.LayerNorm.weight",
        "mlp_head.0.weight",
        "mlp_head.1.bias",
        "backbone.pos_embed",
        "backbone.cls_token",
        "backbone.blocks.0.norm1.weight",
    ]:
        assert name in zero, name
    for name in [
        "mlp_head.1.weight",
        "mlp_head.4.weight",
        "backbone.blocks.0.attn.qkv.weight",
        "temporal_encoder.encoder.layer.0.attention.self.query.weight",
    ]:
        assert name in decayed, name
    assert len(g) == sum(p.requires_grad for p in model.parameters())


def test_all_parameters_decay_when_zero_wd_1d_is_off():
    cfg = tiny_cfg("SOLVER.WEIGHT_DECAY", 0.05, "SOLVER.ZERO_WD_1D_PARAM", False)
    assert all(grp["weight_decay"] == 0.05 for grp in param_groups(tiny_model(), cfg))


def test_backbone_lr_scale_and_frozen_backbone():
    cfg = tiny_cfg("SOLVER.BACKBONE_LR_SCALE", 0.1)
    g = groups_by_name(tiny_model(), cfg)
    assert g["backbone.patch_embed.proj.weight"]["lr_scale"] == 0.1 and g["mlp_head.1.weight"]["lr_scale"] == 1.0
    frozen = groups_by_name(tiny_model("VTN.FREEZE_BACKBONE", True), cfg)
    assert not any(n.startswith("backbone.") for n in frozen)


def test_sgd_and_adamw_from_config():
    sgd = build_optimizer(tiny_model(), tiny_cfg("SOLVER.MOMENTUM", 0.9, "SOLVER.NESTEROV", True))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9
    adamw = build_optimizer(tiny_model(), tiny_cfg("SOLVER.OPTIMIZING_METHOD", "adamw", "SOLVER.BETAS", [0.8, 0.9]))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.8, 0.9)
    assert "names" not in adamw.param_groups[0]


def test_nesterov_without_momentum_is_a_clear_error():
    with pytest.raises(ValueError, match="SOLVER.NESTEROV True needs SOLVER.MOMENTUM > 0"):
        build_optimizer(tiny_model(), tiny_cfg("SOLVER.MOMENTUM", 0.0))


def test_unknown_optimizer_is_a_config_error():
    from vtn.config import ConfigError

    with pytest.raises(ConfigError, match="SOLVER.OPTIMIZING_METHOD = 'adam'.*'adamw'"):
        load_config(None, ["SOLVER.OPTIMIZING_METHOD", "adam"])
