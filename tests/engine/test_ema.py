"""The exponential moving average of the weights: the formula, and a resumed run's EMA equal to that of a run that
never stopped."""

import os

import torch

from tests.helpers import assert_same, run_opts, run_tool, tiny_model
from vtn.engine.checkpoint import checkpoint_dir, load_checkpoint_file
from vtn.engine.ema import ModelEMA


def test_update_follows_the_formula_and_copies_integer_buffers():
    start, moved = tiny_model(seed=0), tiny_model(seed=1)
    ema = ModelEMA(start, decay=0.7)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    ema.update(moved)
    now = moved.state_dict()
    for k, v in ema.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, 0.7 * before[k] + 0.3 * now[k])
        else:
            assert torch.equal(v, now[k])
    ema.update(moved)  # again: a second step of the same average
    k = next(k for k, v in now.items() if v.is_floating_point() and not torch.equal(before[k], v))
    torch.testing.assert_close(ema.state_dict()[k], 0.49 * before[k] + 0.51 * now[k])


def test_a_resumed_run_continues_the_same_average(synthetic_dir, tmp_path):
    opts = [
        "SOLVER.MAX_EPOCH",
        2,
        "TEST.ENABLE",
        False,
        "TRAIN.EVAL_PERIOD",
        0,
        "TRAIN.EMA_DECAY",
        0.6,
        "TRAIN.CHECKPOINT_ITERS",
        1,
        "TRAIN.CHECKPOINT_KEEP",
        0,
        "DATA_LOADER.NUM_WORKERS",
        0,
    ]
    full, cut = str(tmp_path / "full"), str(tmp_path / "cut")
    run_tool("run_net.py", *run_opts(synthetic_dir, full, *opts))
    run_tool("run_net.py", *run_opts(synthetic_dir, cut, *opts))
    # as if killed one step into the second epoch: everything after that checkpoint is gone
    folder = checkpoint_dir(cut)
    for name in os.listdir(folder):
        if name not in ("checkpoint_epoch_00001.pyth", "checkpoint_epoch_00002_iter_0000001.pyth"):
            os.unlink(os.path.join(folder, name))
    proc = run_tool("run_net.py", *run_opts(synthetic_dir, cut, *opts))
    assert "checkpoint_epoch_00002_iter_0000001.pyth: epoch 2, iteration 1" in proc.stdout
    end = "checkpoint_epoch_00002.pyth"
    a = load_checkpoint_file(os.path.join(checkpoint_dir(full), end))
    b = load_checkpoint_file(os.path.join(folder, end))
    assert_same(a["ema_state"], b["ema_state"])
    assert_same(a["model_state"], b["model_state"])
    assert any(not torch.equal(a["ema_state"][k], v) for k, v in a["model_state"].items() if v.is_floating_point())


def test_the_ema_of_a_run_started_from_a_checkpoint_averages_from_its_weights(synthetic_dir, tmp_path):
    """TRAIN.CHECKPOINT_FILE_PATH: the EMA starts from the loaded weights, not from the random init before them."""
    from tests.helpers import synthetic_opts, tiny_cfg
    from vtn.engine.trainer import Trainer

    start = tiny_model("MODEL.NUM_CLASSES", 6, seed=5)
    path = str(tmp_path / "start.pyth")
    torch.save({"model_state": start.state_dict()}, path)
    cfg = tiny_cfg(
        *synthetic_opts(synthetic_dir),
        "OUTPUT_DIR",
        str(tmp_path / "out"),
        "TRAIN.CHECKPOINT_FILE_PATH",
        path,
        "TRAIN.EMA_DECAY",
        0.9,
        "TRAIN.EVAL_PERIOD",
        0,
    )
    torch.manual_seed(0)  # the model the trainer builds starts elsewhere than the checkpoint (seed 5)
    trainer = Trainer(cfg)
    assert_same(trainer.model.state_dict(), start.state_dict())
    assert_same(trainer.ema.state_dict(), start.state_dict())


def test_validation_and_the_best_checkpoint_use_the_ema_weights(synthetic_dir, tmp_path):
    """TRAIN.EMA_DECAY > 0: every validation runs on the EMA weights (the weights a test then uses), and the best
    checkpoint is that of the epoch whose EMA weights validated best."""
    from tests.helpers import synthetic_opts, tiny_cfg
    from vtn.engine.checkpoint import BEST_NAME
    from vtn.engine.trainer import Trainer

    validated = []

    class Recording(Trainer):
        def build_evaluator(self, cfg, loader):
            evaluate = super().build_evaluator(cfg, loader)

            def evaluate_and_record(model):
                metrics, protocol = evaluate(model)
                weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
                validated.append((weights, metrics["top1"], {k: v.clone() for k, v in self.ema.state_dict().items()}))
                return metrics, protocol

            return evaluate_and_record

    out = str(tmp_path / "out")
    cfg = tiny_cfg(
        *synthetic_opts(synthetic_dir),
        "OUTPUT_DIR",
        out,
        "SOLVER.MAX_EPOCH",
        2,
        "TRAIN.EVAL_PERIOD",
        1,
        "TRAIN.EMA_DECAY",
        0.5,
        "SOLVER.BASE_LR",
        0.05,
    )
    trainer = Recording(cfg)
    trainer.train()
    assert len(validated) == 2
    for weights, _, ema in validated:
        assert_same(weights, ema)
    # not vacuous: the raw weights at the end are not the average
    raw = trainer.model.state_dict()
    assert any(not torch.equal(validated[-1][0][k], v) for k, v in raw.items() if v.is_floating_point())
    top1s = [top1 for _, top1, _ in validated]
    assert trainer.best_metric == max(top1s)
    best = load_checkpoint_file(os.path.join(checkpoint_dir(out), BEST_NAME))
    assert_same(best["ema_state"], validated[top1s.index(max(top1s))][2])
