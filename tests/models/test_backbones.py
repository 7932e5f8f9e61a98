"""Every backbone of the paper builds and gives one feature vector per frame; timm names and local weights work."""
import pytest
import torch

from tests.helpers import tiny_cfg
from vtn.models.backbones import BACKBONE_REGISTRY, build_backbone
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
    with pytest.raises(FileNotFoundError, match="VTN.PRETRAINED_PATH.*nope.pth"):
        build_backbone(tiny_cfg("VTN.PRETRAINED_PATH", str(tmp_path / "nope.pth")))


def test_channels_last_gives_the_same_logits_and_keeps_the_format():
    import torch

    from tests.helpers import tiny_model

    opts = ["VTN.BACKBONE", "resnet10t", "VTN.BACKBONE_KWARGS", "{channels: [8, 8, 16, 16], stem_width: 8}",
            "VTN.NUM_HEADS", 2]
    plain = tiny_model(*opts)
    fast = tiny_model(*opts, "VTN.CHANNELS_LAST", True)
    fast.load_state_dict(plain.state_dict())
    conv = next(p for p in fast.backbone.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.allclose(plain(x), fast(x), atol=1e-5)
