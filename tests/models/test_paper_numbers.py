"""Table 3 parameter counts (within 2%) and Table 4 GFLOPs per 16-frame view (within 3%)."""

import os

import pytest

from tests.helpers import REPO
from vtn.config import load_config
from vtn.models import build_model
from vtn.models.model_stats import parameter_counts, view_gflops

# config, Table 3 params (M), Table 4 GFLOPs: multi-view / 30 views, full video (None: not in Table 4)
ROWS = [
    ("Kinetics/VIT_B_VTN_1L.yaml", 96, 8095 / 30, 4214),
    ("Kinetics/VIT_B_VTN.yaml", 114, 8113 / 30, 4218),
    ("Kinetics/R50_VTN.yaml", 168, 2106 / 30, 1059),
    ("Kinetics/R101_VTN.yaml", 187, 3895 / 30, 1989),
    ("Kinetics/DEIT_TI_VTN.yaml", 10, None, None),
]


def build(path):
    # Table 4 counts transformers' Longformer, which pads the sequence to a multiple of the window and applies
    # key_global/value_global to every token; the default "longformer" encoder does neither (fewer GFLOPs).
    opts = ["NUM_GPUS", 0, "VTN.PRETRAINED", False, "VTN.TEMPORAL_ENCODER", "longformer_hf"]
    cfg = load_config(os.path.join(REPO, "configs", path), opts)
    return build_model(cfg), cfg


@pytest.mark.parametrize("path, params_m, gflops, full_gflops", ROWS, ids=[r[0] for r in ROWS])
def test_parameters_and_gflops_match_the_paper(path, params_m, gflops, full_gflops):
    model, cfg = build(path)
    total = parameter_counts(model)["total"] / 1e6
    assert abs(total - params_m) / params_m < 0.02, f"{total:.2f}M vs Table 3's {params_m}M"
    if gflops is not None:
        measured = view_gflops(model, cfg.DATA.NUM_FRAMES, cfg.DATA.TEST_CROP_SIZE)["total"]
        assert abs(measured - gflops) / gflops < 0.03, f"{measured:.1f} vs Table 4's {gflops:.1f}"
        full = view_gflops(model, cfg.TEST.FULL_VIDEO_FRAMES, cfg.DATA.TEST_CROP_SIZE)["total"]
        assert abs(full - full_gflops) / full_gflops < 0.03, f"full video {full:.0f} vs Table 4's {full_gflops}"


def test_parameter_split_adds_up():
    model, _ = build("Kinetics/DEIT_TI_VTN.yaml")
    p = parameter_counts(model)
    assert p["backbone"] + p["temporal_encoder"] + p["head"] == p["total"] == p["trainable"]
