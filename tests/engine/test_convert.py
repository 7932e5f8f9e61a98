"""The authors' released checkpoint: a reference model written from its description produces a file in the
release layout; the project loads it (directly and through the converter) and gives the same logits."""

import os

import pytest
import timm
import torch
import torch.nn as nn
from transformers import LongformerConfig, LongformerModel

from tests.helpers import REPO, run_tool
from vtn.config import load_config
from vtn.engine.checkpoint import load_checkpoint_file, load_weights, model_state_from
from vtn.engine.convert import detect_format, to_vtn_state
from vtn.models import build_model

RELEASE_CFG = os.path.join(REPO, "configs", "Kinetics", "VIT_B_VTN_RELEASE.yaml")
# The release is ViT-B (768-d); a one-block ViT at 32x32 keeps the test fast with the same key names.
SMALL = ["NUM_GPUS", 0, "MODEL.NUM_CLASSES", 400, "VTN.BACKBONE_KWARGS.img_size", 32, "VTN.BACKBONE_KWARGS.depth", 1]


class ReleaseReference(nn.Module):
    """The released ViT-B-VTN as described: ViT class token -> [CLS] + frames -> pad to a multiple of 36 with
    -1.0 (mask 0) -> position ids frame % 286, 286 for [CLS], 287 for padding; token type 1 for [CLS] ->
    transformers Longformer (window 18) -> mlp_head on the [CLS] state."""

    def __init__(self, num_classes=400):
        super().__init__()
        self.backbone = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, img_size=32, depth=1)
        self.cls_token = nn.Parameter(torch.randn(1, 1, 768) * 0.02)
        config = LongformerConfig(
            hidden_size=768,
            num_hidden_layers=3,
            num_attention_heads=12,
            intermediate_size=3072,
            attention_window=18,
            max_position_embeddings=288,
            type_vocab_size=2,
            layer_norm_eps=1e-12,
            hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1,
            vocab_size=8,
            pad_token_id=1,
        )
        self.temporal_encoder = LongformerModel(config, add_pooling_layer=False)
        self.mlp_head = nn.Sequential(
            nn.LayerNorm(768), nn.Linear(768, 768), nn.GELU(), nn.Dropout(0.5), nn.Linear(768, num_classes)
        )

    def forward(self, x, frame_idx):
        b, c, t, h, w = x.shape
        feats = self.backbone(x.transpose(1, 2).reshape(b * t, c, h, w)).view(b, t, -1)
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), feats], dim=1)
        mask = torch.ones(b, t + 1, dtype=torch.long)
        mask[:, 0] = 2
        pos = torch.cat([torch.full((b, 1), 286), frame_idx % 286], dim=1)
        pad = (36 - (t + 1) % 36) % 36
        tokens = torch.cat([tokens, torch.full((b, pad, 768), -1.0)], dim=1)
        mask = torch.cat([mask, torch.zeros(b, pad, dtype=torch.long)], dim=1)
        pos = torch.cat([pos, torch.full((b, pad), 287)], dim=1)
        token_type = torch.zeros_like(mask)
        token_type[:, 0] = 1
        out = self.temporal_encoder(
            inputs_embeds=tokens, attention_mask=mask, token_type_ids=token_type, position_ids=pos
        ).last_hidden_state
        return self.mlp_head(out[:, 0])


def release_file(tmp_path):
    torch.manual_seed(0)
    ref = ReleaseReference().eval()
    with torch.no_grad():
        for p in ref.temporal_encoder.parameters():  # no zero rows (padding_idx) that would hide a bug
            p.normal_(0, 0.05)
    state = {k: v for k, v in ref.state_dict().items() if "word_embeddings" not in k and "pooler" not in k}
    state["temporal_encoder.embeddings.position_ids"] = torch.arange(288).unsqueeze(0)
    state["backbone.head.weight"] = torch.zeros(1000, 768)  # an older timm kept its classifier
    state["backbone.head.bias"] = torch.zeros(1000)
    path = str(tmp_path / "VTN_VIT_B_KINETICS.pyth")
    torch.save({"epoch": 25, "model_state": state, "optimizer_state": None, "cfg": "MODEL:\n  ARCH: VIT\n"}, path)
    return ref, path


def clip_and_indices():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 40, 32, 32, generator=g)
    idx = torch.stack([torch.arange(40) * 9, torch.arange(40) * 3 + 5])  # up to 351: wraps modulo 286
    return x, idx


def test_release_checkpoint_gives_the_reference_logits(tmp_path):
    ref, path = release_file(tmp_path)
    data = load_checkpoint_file(path)  # weights_only loading works for the release layout
    assert detect_format(data) == "authors_release"
    cfg = load_config(RELEASE_CFG, SMALL)
    model = build_model(cfg).eval()
    report = load_weights(model, to_vtn_state(data, path, cfg), path, strict=True)
    assert not any(report.values())
    x, idx = clip_and_indices()
    with torch.no_grad():
        expected, got = ref(x, idx), model(x, idx)
    assert (expected - got).abs().max() < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ["longformer", "longformer_hf"])
def test_converter_round_trip_and_direct_test_loading(tmp_path, encoder):
    ref, path = release_file(tmp_path)
    ours = str(tmp_path / "ours.pyth")
    opts = [str(o) for o in SMALL] + ["VTN.TEMPORAL_ENCODER", encoder]
    out = run_tool("convert_checkpoint.py", "--input", path, "--output", ours, *opts).stdout
    assert "(authors_release) -> " in out
    back = str(tmp_path / "back.pyth")
    run_tool("convert_checkpoint.py", "--input", ours, "--output", back, "--to", "release", *opts)
    original = load_checkpoint_file(path)["model_state"]
    again = load_checkpoint_file(back)["model_state"]
    dropped = {"backbone.head.weight", "backbone.head.bias"}
    assert set(again) == set(original) - dropped
    assert all(torch.equal(again[k], original[k]) for k in again)
    # ours loads strictly and gives the reference logits
    cfg = load_config(RELEASE_CFG, SMALL + ["VTN.TEMPORAL_ENCODER", encoder])
    model = build_model(cfg).eval()
    load_weights(model, model_state_from(load_checkpoint_file(ours), ours), ours, strict=True)
    x, idx = clip_and_indices()
    with torch.no_grad():
        assert (ref(x, idx) - model(x, idx)).abs().max() < 1e-4


def test_converter_refuses_a_file_that_does_not_fit(tmp_path):
    _, path = release_file(tmp_path)
    proc = run_tool(
        "convert_checkpoint.py",
        "--input",
        path,
        "--output",
        str(tmp_path / "o.pyth"),
        *map(str, SMALL),
        "VTN.NUM_LAYERS",
        "2",
        check=False,
    )
    assert proc.returncode != 0 and "does not match the model exactly" in proc.stderr
    assert not os.path.exists(tmp_path / "o.pyth")
