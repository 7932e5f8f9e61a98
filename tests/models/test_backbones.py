"""Every backbone of the paper builds and gives one feature vector per frame; timm names and local weights work."""

import glob
import os

import pytest
import torch

from tests.helpers import REPO, tiny_cfg
from vtn.config import load_config
from vtn.models.backbones import BACKBONE_REGISTRY, PretrainedWeightsError, backbone_weights, build_backbone
from vtn.models.backbones.timm_backbones import PAPER_BACKBONES

# (registered name, feature size, extra timm kwargs that keep the test small)
PAPER = [
    ("vit_base_patch16_224", 768, {"img_size": 32, "depth": 1}),
    ("deit_base_patch16_224", 768, {"img_size": 32, "depth": 1}),
    ("deit_base_distilled_patch16_224", 768, {"img_size": 32, "depth": 1}),
    ("deit_tiny_patch16_224", 192, {"img_size": 32}),
    ("resnet50", 2048, {}),
    ("resnet101", 2048, {}),
]


def backbone_cfg(name, kwargs):
    opts = ["VTN.BACKBONE", name, "VTN.BACKBONE_KWARGS", {}]
    for k, v in kwargs.items():
        opts += [f"VTN.BACKBONE_KWARGS.{k}", v]
    return tiny_cfg(*opts)


def test_the_six_paper_backbones_are_registered():
    assert set(PAPER_BACKBONES) <= set(BACKBONE_REGISTRY.names())
    assert {name for name, _, _ in PAPER} == set(PAPER_BACKBONES)


@pytest.mark.parametrize("name, dim, kwargs", PAPER, ids=[p[0] for p in PAPER])
def test_paper_backbone_gives_one_vector_per_frame(name, dim, kwargs):
    model = build_backbone(backbone_cfg(name, kwargs)).eval()
    assert model.feature_dim == dim
    frames = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out = model(frames)
    assert out.shape == (3, dim)
    family = "cnn" if name.startswith("resnet") else "transformer"
    assert model.family == family


def test_vit_feature_is_the_final_norm_class_token():
    model = build_backbone(backbone_cfg("vit_base_patch16_224", {"img_size": 32, "depth": 1})).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.forward_features(x)[:, 0])


def test_distilled_deit_feature_averages_class_and_distillation_tokens():
    model = build_backbone(backbone_cfg("deit_base_distilled_patch16_224", {"img_size": 32, "depth": 1}))
    for mode in (False, True):  # the same in training and at inference
        model.train(mode)
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            tokens = model.forward_features(x)
            torch.testing.assert_close(model(x), (tokens[:, 0] + tokens[:, 1]) / 2)


def test_any_timm_model_name_works():
    model = build_backbone(backbone_cfg("resnet18", {}))
    assert model.feature_dim == 512 and model.family == "cnn"
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 512)


def test_feature_size_is_read_from_what_the_model_outputs():
    model = build_backbone(backbone_cfg("mobilenetv3_small_050", {})).eval()  # 288-d body, 1024-d pre-logits
    assert model.feature_dim == 1024 == model(torch.randn(2, 3, 32, 32)).shape[1]


def test_local_pretrained_file_is_loaded(tmp_path):
    import timm

    source = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    path = str(tmp_path / "resnet18.pth")
    torch.save(source.state_dict(), path)  # with its 1000-way classifier, as downloaded weights are
    model = build_backbone(tiny_cfg("VTN.BACKBONE", "resnet18", "VTN.BACKBONE_KWARGS", {}, "VTN.PRETRAINED_PATH", path))
    torch.testing.assert_close(model.conv1.weight, source.conv1.weight)
    torch.testing.assert_close(model.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)


def test_missing_local_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(PretrainedWeightsError, match="VTN.PRETRAINED_PATH.*nope.pth"):
        build_backbone(tiny_cfg("VTN.PRETRAINED_PATH", str(tmp_path / "nope.pth")))


def test_a_failed_weight_download_is_one_error_naming_the_weights_and_the_local_file_key(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # as without network: nothing cached
    with pytest.raises(PretrainedWeightsError) as e:
        build_backbone(tiny_cfg("VTN.BACKBONE", "resnet18", "VTN.BACKBONE_KWARGS", {}, "VTN.PRETRAINED", True))
    message = str(e.value)
    assert "'resnet18.a1_in1k'" in message and "VTN.PRETRAINED_PATH" in message and "\n" not in message


# the timm weights each config's backbone loads (Table 1; ViT-B: ImageNet-21K pretrained, 1K fine-tuned, as released),
# written out here rather than imported, so that the test holds the code to the paper
CONFIG_WEIGHTS = {
    "vit_base_patch16_224": "vit_base_patch16_224.orig_in21k_ft_in1k",
    "deit_base_patch16_224": "deit_base_patch16_224.fb_in1k",
    "deit_base_distilled_patch16_224": "deit_base_distilled_patch16_224.fb_in1k",
    "deit_tiny_patch16_224": "deit_tiny_patch16_224.fb_in1k",
    "resnet50": "resnet50.tv_in1k",
    "resnet101": "resnet101.tv_in1k",
}


CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: os.path.relpath(p, os.path.join(REPO, "configs")))
def test_each_config_resolves_its_backbone_to_the_papers_timm_weights(config):
    import timm

    cfg = load_config(config)
    weights = backbone_weights(cfg.VTN.BACKBONE)
    if "VTN_TINY" in config:  # the demo and its CPU fine-tune: from random weights, or from the demo's
        assert not cfg.VTN.PRETRAINED
        return
    assert weights == CONFIG_WEIGHTS[cfg.VTN.BACKBONE], config
    assert weights in timm.list_pretrained(weights)  # a tag timm knows how to download


def test_the_21k_only_vit_weights_are_one_override_away():
    assert backbone_weights("vit_base_patch16_224.orig_in21k") == "vit_base_patch16_224.orig_in21k"
    assert backbone_weights("resnet18") == "resnet18.a1_in1k"  # untagged timm names: timm's default weights
    model = build_backbone(backbone_cfg("vit_base_patch16_224.orig_in21k", {"img_size": 32, "depth": 1}))
    assert model.feature_dim == 768 and model.family == "transformer"


def test_kwargs_a_backbone_does_not_take_are_a_clear_error():
    from vtn.models.backbones.registry import BackboneError

    with pytest.raises(BackboneError, match="VTN.BACKBONE_KWARGS = .*'channels'.* does not fit the timm model"):
        build_backbone(tiny_cfg("VTN.BACKBONE_KWARGS.channels", [8, 8]))


def test_drop_path_is_active_in_training_only():
    x = torch.randn(4, 3, 32, 32)
    model = build_backbone(tiny_cfg("VTN.DROP_PATH_RATE", 0.5))
    assert model.blocks[-1].drop_path1.drop_prob == 0.5  # timm: linear from 0 in the first block
    model.train()
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, model(x))  # different blocks dropped per sample
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    plain = build_backbone(tiny_cfg()).train()
    assert plain.blocks[-1].drop_path1.__class__.__name__ == "Identity"


def test_channels_last_gives_the_same_logits_and_keeps_the_format():
    import torch

    from tests.helpers import tiny_model

    opts = [
        "VTN.BACKBONE",
        "resnet10t",
        "VTN.BACKBONE_KWARGS",
        "{channels: [8, 8, 16, 16], stem_width: 8}",
        "VTN.NUM_HEADS",
        2,
    ]
    plain = tiny_model(*opts)
    fast = tiny_model(*opts, "VTN.CHANNELS_LAST", True)
    fast.load_state_dict(plain.state_dict())
    conv = next(p for p in fast.backbone.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.allclose(plain(x), fast(x), atol=1e-5)
