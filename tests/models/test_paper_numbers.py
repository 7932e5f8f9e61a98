"""Table 3 parameter counts and Table 4 GFLOPs (fvcore, 224 x 224) within 1%, as the README says, and each part
(backbone, temporal encoder + head) pinned to its measured value, so that errors in two parts cannot cancel."""

import os

import pytest

from tests.helpers import REPO
from vtn.config import load_config
from vtn.models import build_model
from vtn.models.model_stats import parameter_counts, view_gflops

# config, Table 3 params (M), Table 4 GFLOPs per view (multi-view / 30) and of the full video (None: not in Table 4)
PAPER = [
    ("Kinetics/VIT_B_VTN_1L.yaml", 96, 8095 / 30, 4214),
    ("Kinetics/VIT_B_VTN.yaml", 114, 8113 / 30, 4218),
    ("Kinetics/R50_VTN.yaml", 168, 2106 / 30, 1059),
    ("Kinetics/R101_VTN.yaml", 187, 3895 / 30, 1989),
    ("Kinetics/DEIT_TI_VTN.yaml", 10, None, None),
]
# config -> measured (M params: backbone, temporal encoder incl. [CLS], head), (GFLOPs per 16-frame view: backbone,
# temporal encoder + head), (GFLOPs of the 250-frame full video: backbone, temporal encoder + head)
MEASURED = {
    "Kinetics/VIT_B_VTN_1L.yaml": ((85.799, 9.095, 0.900), (269.866, 0.268), (4216.66, 2.14)),
    "Kinetics/VIT_B_VTN.yaml": ((85.799, 26.815, 0.900), (269.866, 0.802), (4216.66, 6.42)),
    "Kinetics/R50_VTN.yaml": ((23.508, 139.127, 5.020), (65.751, 4.063), (1027.37, 32.42)),
    "Kinetics/R101_VTN.yaml": ((42.500, 139.127, 5.020), (125.311, 4.063), (1957.98, 32.42)),
    "Kinetics/DEIT_TI_VTN.yaml": ((5.524, 4.388, 0.115), (17.270, 0.136), (269.85, 1.09)),
}


def build(path):
    # Table 4 counts transformers' Longformer, which pads the sequence to a multiple of the window and applies
    # key_global/value_global to every token; the default "longformer" encoder does neither (fewer GFLOPs).
    opts = ["NUM_GPUS", 0, "VTN.PRETRAINED", False, "VTN.TEMPORAL_ENCODER", "longformer_hf"]
    cfg = load_config(os.path.join(REPO, "configs", path), opts)
    return build_model(cfg), cfg


@pytest.mark.parametrize("path, params_m, gflops, full_gflops", PAPER, ids=[r[0] for r in PAPER])
def test_parameters_and_gflops_match_the_paper_part_by_part(path, params_m, gflops, full_gflops):
    model, cfg = build(path)
    (backbone, encoder, head), view_parts, full_parts = MEASURED[path]
    p = parameter_counts(model)
    assert p["backbone"] / 1e6 == pytest.approx(backbone, abs=0.001)
    assert p["temporal_encoder"] / 1e6 == pytest.approx(encoder, abs=0.001)
    assert p["head"] / 1e6 == pytest.approx(head, abs=0.001)
    assert abs(p["total"] / 1e6 - params_m) / params_m < 0.01, f"{p['total'] / 1e6:.2f}M vs Table 3's {params_m}M"
    view = view_gflops(model, cfg.DATA.NUM_FRAMES, cfg.DATA.TEST_CROP_SIZE)
    full = view_gflops(model, cfg.TEST.FULL_VIDEO_FRAMES, cfg.DATA.TEST_CROP_SIZE)
    for measured, parts in ((view, view_parts), (full, full_parts)):
        assert measured["backbone"] == pytest.approx(parts[0], rel=1e-3)
        assert measured["temporal_and_head"] == pytest.approx(parts[1], rel=1e-2)
    if gflops is not None:
        assert abs(view["total"] - gflops) / gflops < 0.01, f"{view['total']:.1f} vs Table 4's {gflops:.1f}"
        assert abs(full["total"] - full_gflops) / full_gflops < 0.01, f"{full['total']:.0f} vs Table 4's {full_gflops}"


def test_parameter_split_adds_up():
    model, _ = build("Kinetics/DEIT_TI_VTN.yaml")
    p = parameter_counts(model)
    assert p["backbone"] + p["temporal_encoder"] + p["head"] == p["total"] == p["trainable"]
