"""tools/export_model.py: one torch.export program with dynamic batch and frames, its json contract, clear errors."""

import json
import os
import sys

import pytest
import torch

from tests.helpers import TINY_MODEL_OPTS, run_tool, tiny_cfg, tiny_model
from vtn.engine.checkpoint import checkpoint_dir, checkpoint_name, save_checkpoint

EXTRA = ["VTN.MAX_POSITION_EMBEDDINGS", 16, "TEST.FULL_VIDEO_FRAMES", 12]
OPTS = [str(o) for o in TINY_MODEL_OPTS + EXTRA]


def saved(path, seed=3):
    model = tiny_model(*EXTRA, seed=seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_checkpoint(path, tiny_cfg(*EXTRA), model, optimizer, epoch=1)
    return model


def inputs(b, t, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(b, 3, t, 32, 32, generator=g)
    return frames, (torch.arange(t) * 5).expand(b, t).contiguous()


def test_the_exported_program_gives_the_eager_logits_at_any_batch_and_length(tmp_path):
    model = saved(str(tmp_path / "ckpt.pyth"))
    out = tmp_path / "export" / "model.pt2"
    run_tool("export_model.py", "--checkpoint", tmp_path / "ckpt.pyth", "--output", out, *OPTS)
    program = torch.export.load(str(out)).module()
    for b, t in ((1, 3), (3, 7), (2, 16)):
        x, idx = inputs(b, t, seed=t)
        with torch.no_grad():
            torch.testing.assert_close(program(x, idx), model(x, idx), rtol=0, atol=1e-4)
    info = json.loads((tmp_path / "export" / "model.pt2.json").read_text())
    assert [i["name"] for i in info["inputs"]] == ["frames", "frame_idx"]
    assert info["inputs"][0]["shape"] == ["batch", 3, "frames", 32, 32] and info["inputs"][1]["dtype"] == "int64"
    assert info["dynamic_dims"]["frames"] == {"min": 1, "max": 16} and info["dynamic_dims"]["batch"]["min"] == 1
    assert info["mean"] == [0.45] * 3 and info["std"] == [0.225] * 3
    assert (info["crop_size"], info["test_scale"], info["full_video_frames"]) == (32, 32, 12)
    assert info["checkpoint"] == str(tmp_path / "ckpt.pyth") and info["torch_version"] == torch.__version__
    assert info["outputs"][0]["shape"] == ["batch", 5] and "frame_idx" in info["frame_indices"] + info["usage"]


def test_an_output_dir_gives_its_newest_checkpoint(tmp_path):
    path = os.path.join(checkpoint_dir(str(tmp_path / "run")), checkpoint_name(1))
    model = saved(path, seed=5)
    out = tmp_path / "m.pt2"
    result = run_tool("export_model.py", "--checkpoint", tmp_path / "run", "--output", out, "--max-frames", 128, *OPTS)
    assert path in result.stdout
    program = torch.export.load(str(out)).module()
    for b, t in ((2, 5), (1, 100)):  # 101 tokens: the eager encoder takes its blocked path, the program its dense one
        x, idx = inputs(b, t)
        with torch.no_grad():
            torch.testing.assert_close(program(x, idx), model(x, idx), rtol=0, atol=1e-4)
    assert json.loads((tmp_path / "m.pt2.json").read_text())["dynamic_dims"]["frames"]["max"] == 128


def test_no_weights_is_the_test_phase_error(tmp_path):
    result = run_tool("export_model.py", "--output", tmp_path / "m.pt2", "OUTPUT_DIR", tmp_path, *OPTS, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "No checkpoint to test" in result.stderr and "TEST.ALLOW_RANDOM_INIT" in result.stderr
    assert not (tmp_path / "m.pt2").exists()
    result = run_tool(
        "export_model.py", "--checkpoint", tmp_path / "nope.pyth", "--output", "m.pt2", *OPTS, check=False
    )
    assert result.returncode == 2 and "--checkpoint" in result.stderr and "nope.pyth" in result.stderr


def test_the_transformers_longformer_is_a_one_line_error_pointing_to_ours(tmp_path):
    opts = [*OPTS, "VTN.TEMPORAL_ENCODER", "longformer_hf", "TEST.ALLOW_RANDOM_INIT", True]
    result = run_tool("export_model.py", "--output", tmp_path / "m.pt2", *opts, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "longformer_hf" in result.stderr and "VTN.TEMPORAL_ENCODER longformer," in result.stderr


def test_onnx_without_the_onnx_package_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    opts = [*OPTS, "TEST.ALLOW_RANDOM_INIT", True]
    result = run_tool("export_model.py", "--output", tmp_path / "m.onnx", "--format", "onnx", *opts, check=False)
    assert result.returncode == 2 and "pip install onnx onnxruntime" in result.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_export_runs_in_onnxruntime(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = saved(str(tmp_path / "ckpt.pyth"))
    out = tmp_path / "model.onnx"
    run_tool("export_model.py", "--checkpoint", tmp_path / "ckpt.pyth", "--output", out, "--format", "onnx", *OPTS)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for b, t in ((1, 3), (2, 9)):
        x, idx = inputs(b, t)
        got = session.run(None, {"frames": x.numpy(), "frame_idx": idx.numpy()})[0]
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(got), model(x, idx), rtol=0, atol=1e-4)
    assert json.loads((tmp_path / "model.onnx.json").read_text())["format"] == "onnx"
    # the .pt2 export of the same model into the same folder keeps its own contract beside the ONNX one's
    run_tool("export_model.py", "--checkpoint", tmp_path / "ckpt.pyth", "--output", tmp_path / "model.pt2", *OPTS)
    assert json.loads((tmp_path / "model.pt2.json").read_text())["format"] == "torch.export"
    assert json.loads((tmp_path / "model.onnx.json").read_text())["format"] == "onnx"


def test_a_negative_max_frames_is_a_usage_error(tmp_path):
    result = run_tool("export_model.py", "--output", tmp_path / "m.pt2", "--max-frames", "-5", *OPTS, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--max-frames: '-5' is not a whole number >= 0" in result.stderr


def test_an_unwritable_output_fails_before_the_model_is_built(tmp_path, monkeypatch):
    from vtn.inference import export

    built = []
    monkeypatch.setattr(export, "load_export_model", lambda cfg: built.append(cfg))
    (tmp_path / "file").write_text("not a folder")
    result = run_tool("export_model.py", "--output", tmp_path / "file" / "m.pt2", *OPTS, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert f"--output: cannot write {tmp_path / 'file' / 'm.pt2'}: {tmp_path / 'file'} is a file" in result.stderr
    assert not built


@pytest.mark.parametrize("fmt", ["export", "onnx"])
def test_export_traces_the_encoders_traceable_form_and_leaves_the_module_global_alone(fmt, tmp_path, monkeypatch):
    """Export asks the encoder for its traceable form (the dense path, per instance) and changes neither
    longformer.DENSE_MAX_TOKENS nor the encoder's chunk_bytes, even while it traces. With the global at 0 and
    chunk_bytes at 1 every eager call takes the blocked, chunked path; the exported model still gives its logits."""
    from vtn.inference import export
    from vtn.models.temporal_encoders import longformer

    if fmt == "onnx":
        pytest.importorskip("onnx")
    monkeypatch.setattr(longformer, "DENSE_MAX_TOKENS", 0)
    model = tiny_model(*EXTRA)
    encoder = model.temporal_encoder
    encoder.chunk_bytes = 1
    seen = []
    encode = longformer.TorchLongformerEncoder.encode

    def watched(self, *args):  # what the encoder sees at each call, the traced ones included
        seen.append((longformer.DENSE_MAX_TOKENS, self.chunk_bytes, self.dense_only))
        return encode(self, *args)

    monkeypatch.setattr(longformer.TorchLongformerEncoder, "encode", watched)
    if fmt == "export":
        program = export.export_program(tiny_cfg(*EXTRA), model, max_frames=16).module()
    else:
        export.export_onnx(tiny_cfg(*EXTRA), model, str(tmp_path / "m.onnx"))  # checks onnxruntime's logits too
    assert (0, 1, True) in seen and all(s[:2] == (0, 1) for s in seen)
    assert (longformer.DENSE_MAX_TOKENS, encoder.chunk_bytes, encoder.dense_only) == (0, 1, False)
    if fmt == "export":
        for b, t in ((1, 3), (2, 16)):
            x, idx = inputs(b, t, seed=t)
            with torch.no_grad():
                torch.testing.assert_close(program(x, idx), model(x, idx), rtol=0, atol=1e-4)
