"""Training options driven from the command line: gradient accumulation and the EMA of the weights."""

import json
import os

import pytest
import torch

from tests.helpers import assert_same, run_opts, run_tool
from vtn.config import load_config
from vtn.datasets import build_dataset
from vtn.engine.checkpoint import checkpoint_dir, load_checkpoint_file
from vtn.models import build_model

# Deterministic steps: no dropout, a constant LR (one step of the steps policy, no warmup), no evaluation.
EXACT = [
    "SOLVER.MAX_EPOCH",
    "1",
    "TEST.ENABLE",
    "False",
    "TRAIN.EVAL_PERIOD",
    "0",
    "SOLVER.LR_POLICY",
    "steps_with_relative_lrs",
    "SOLVER.STEPS",
    "[0]",
    "SOLVER.LRS",
    "[1.0]",
    "SOLVER.BASE_LR",
    "0.05",
    "VTN.HIDDEN_DROPOUT",
    "0.0",
    "VTN.HEAD_DROPOUT",
    "0.0",
    "VTN.ATTENTION_DROPOUT",
    "0.0",
]


def final_state(out, key="model_state"):
    return load_checkpoint_file(os.path.join(checkpoint_dir(out), "checkpoint_epoch_00001.pyth"))[key]


@pytest.mark.slow
def test_accumulating_two_half_batches_equals_one_full_batch(synthetic_dir, tmp_path):
    full, halves = str(tmp_path / "full"), str(tmp_path / "halves")
    run_tool("run_net.py", *run_opts(synthetic_dir, full, *EXACT, "TRAIN.BATCH_SIZE", "4"))
    proc = run_tool(
        "run_net.py", *run_opts(synthetic_dir, halves, *EXACT, "TRAIN.BATCH_SIZE", "2", "TRAIN.ACCUMULATION_STEPS", "2")
    )
    assert "Effective batch: 2 per process x 1 processes x 2 accumulation steps = 4 clips" in proc.stdout
    a, b = final_state(full), final_state(halves)
    assert_same(a, b, atol=1e-5)
    # and not vacuously: without accumulation the half batches take twice the steps and end elsewhere
    plain = str(tmp_path / "plain")
    run_tool("run_net.py", *run_opts(synthetic_dir, plain, *EXACT, "TRAIN.BATCH_SIZE", "2"))
    c = final_state(plain)
    assert max((a[k] - c[k]).abs().max() for k in a) > 1e-3


def test_ema_weights_are_saved_and_used_for_testing(synthetic_dir, tmp_path):
    out = str(tmp_path / "ema")
    opts = run_opts(
        synthetic_dir,
        out,
        *EXACT[:2],
        "TRAIN.EVAL_PERIOD",
        "0",
        "TRAIN.EMA_DECAY",
        "0.5",
        "TEST.PROTOCOLS",
        "['full_video']",
    )
    run_tool("run_net.py", *opts)
    model, ema = final_state(out), final_state(out, "ema_state")
    assert model.keys() == ema.keys()
    moved = [k for k in model if model[k].dtype.is_floating_point and not torch.equal(model[k], ema[k])]
    assert moved, "the EMA equals the weights: the average was not kept apart"
    # the test scored every video with the EMA weights of the checkpoint, not with its raw weights
    preds = json.load(open(os.path.join(out, "predictions_full_video.json")))
    assert {p["checkpoint"] for p in preds} == {os.path.join(checkpoint_dir(out), "checkpoint_epoch_00001.pyth")}
    cfg = load_config(None, opts)
    dataset = build_dataset(cfg, "test", "full_video")
    assert [p["path"] for p in preds] == dataset.paths
    items = [dataset[(v, 0)] for v in range(len(dataset))]
    frames, frame_idx = torch.stack([x["frames"] for x in items]), torch.stack([x["frame_idx"] for x in items])
    scores = {}
    for name, weights in (("ema", ema), ("raw", model)):
        net = build_model(cfg).eval()
        net.load_state_dict(weights)
        with torch.no_grad():
            scores[name] = net(frames, frame_idx).softmax(-1).topk(5)
    got = torch.tensor([p["top5_scores"] for p in preds])
    assert [p["top5_ids"] for p in preds] == scores["ema"].indices.tolist()
    torch.testing.assert_close(got, scores["ema"].values, rtol=0, atol=1e-5)
    assert (got - scores["raw"].values).abs().max() > 1e-4  # the two sets of weights do score differently


def test_a_frozen_random_backbone_is_warned_about(synthetic_dir, tmp_path):
    from vtn.engine.checkpoint import save_checkpoint

    opts = ["VTN.FREEZE_BACKBONE", "True", "SOLVER.MAX_EPOCH", "1", "TEST.ENABLE", "False", "TRAIN.EVAL_PERIOD", "0"]
    proc = run_tool("run_net.py", *run_opts(synthetic_dir, str(tmp_path / "random"), *opts))
    assert "VTN.FREEZE_BACKBONE True with a randomly initialised backbone" in proc.stdout
    assert "accuracy may stay near chance (16.7%)" in proc.stdout
    cfg = load_config(None, run_opts(synthetic_dir, str(tmp_path / "x")))
    save_checkpoint(str(tmp_path / "trained.pyth"), cfg, build_model(cfg))
    opts += ["TRAIN.CHECKPOINT_FILE_PATH", str(tmp_path / "trained.pyth")]
    proc = run_tool("run_net.py", *run_opts(synthetic_dir, str(tmp_path / "from_weights"), *opts))
    assert "randomly initialised backbone" not in proc.stdout
