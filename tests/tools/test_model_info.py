import os

from tests.helpers import REPO, run_tool


def test_model_info_prints_parameters_and_gflops():
    proc = run_tool(
        "model_info.py",
        "--cfg",
        os.path.join(REPO, "configs", "Kinetics", "DEIT_TI_VTN.yaml"),
        "--frames",
        "8",
        "VTN.NUM_LAYERS",
        "1",
        subprocess=True,  # the real command line in a fresh interpreter: no warning at import time either
    )
    out = proc.stdout
    assert "Warning" not in proc.stderr, proc.stderr  # e.g. torch.jit.script's FutureWarning from fvcore
    assert "backbone=deit_tiny_patch16_224 layers=1" in out
    assert "total" in out and "GFLOPs" in out
    assert "one view, 8 frames" in out and "full video, 250 frames" in out
    total = float(next(line for line in out.splitlines() if line.strip().startswith("total")).split()[1])
    assert 7.0 < total < 9.0  # DeiT-Ti (5.5M) + one 192-d layer with a 3072 FFN + head
