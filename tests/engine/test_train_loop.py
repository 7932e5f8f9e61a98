"""The training loop's skeleton and hooks, and a trainer extended from outside the package without editing it."""

import pytest
import torch

from tests.helpers import synthetic_opts, tiny_cfg
from vtn.engine.train_loop import HookBase, TrainerBase


class Recorder(HookBase):
    def __init__(self):
        self.events = []

    def before_train(self):
        self.events.append("before_train")

    def after_train(self):
        self.events.append("after_train")

    def before_epoch(self):
        self.events.append(f"before_epoch {self.trainer.epoch}")

    def after_epoch(self):
        self.events.append(f"after_epoch {self.trainer.epoch}")

    def before_step(self):
        self.events.append(f"before_step {self.trainer.epoch}.{self.trainer.iter}")

    def after_step(self):
        self.events.append(f"after_step {self.trainer.epoch}.{self.trainer.iter}")


class Counting(TrainerBase):
    def __init__(self, start_epoch=0, start_iter=0):
        super().__init__()
        self.epoch_iters, self.max_epoch = 2, 2
        self.start_epoch, self.start_iter = start_epoch, start_iter
        self.steps = []

    def run_step(self):
        self.steps.append((self.epoch, self.iter))


def test_the_loop_runs_hooks_around_every_step_and_epoch_and_resumes_mid_epoch():
    trainer, hook = Counting(), Recorder()
    trainer.register_hooks([hook, None])
    trainer.train()
    assert trainer.steps == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert hook.events[:5] == ["before_train", "before_epoch 0", "before_step 0.0", "after_step 0.0", "before_step 0.1"]
    assert hook.events[-3:] == ["after_step 1.1", "after_epoch 1", "after_train"]
    resumed = Counting(start_epoch=1, start_iter=1)
    resumed.train()
    assert resumed.steps == [(1, 1)]  # only what the interrupted run had left


def test_after_train_runs_when_a_step_fails():
    class Failing(Counting):
        def run_step(self):
            raise RuntimeError("boom")

    trainer, hook = Failing(), Recorder()
    trainer.register_hooks([hook])
    try:
        trainer.train()
    except RuntimeError:
        pass
    assert hook.events[-1] == "after_train"


def test_a_project_adds_a_hook_and_its_own_optimizer_by_subclassing(synthetic_dir, tmp_path):
    from vtn.engine.trainer import Trainer

    class LossLog(HookBase):
        def __init__(self):
            self.losses, self.lrs = [], []

        def after_step(self):
            self.losses.append(float(self.trainer.step_output["loss"].detach()))
            self.lrs.append(self.trainer.optimizer.param_groups[0]["lr"])

    class MyTrainer(Trainer):
        @classmethod
        def build_optimizer(cls, cfg, model):
            return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.SOLVER.BASE_LR)

        def build_hooks(self):
            self.loss_log = LossLog()
            return super().build_hooks() + [self.loss_log]

    cfg = tiny_cfg(
        *synthetic_opts(synthetic_dir),
        "OUTPUT_DIR",
        str(tmp_path),
        "SOLVER.MAX_EPOCH",
        2,
        "TRAIN.EVAL_PERIOD",
        1,
        "SOLVER.LR_POLICY",
        "cosine",
        "SOLVER.BASE_LR",
        0.01,
        "DATA.TRAIN_JITTER_SCALES",
        [32, 40],
    )
    trainer = MyTrainer(cfg)
    last = trainer.train()
    assert isinstance(trainer.optimizer, torch.optim.Adam)
    assert len(trainer.loss_log.losses) == 6 and all(loss > 0 for loss in trainer.loss_log.losses)
    # the LR hook set the cosine schedule on the project's optimizer, step by step
    assert trainer.loss_log.lrs[0] == 0.01 and trainer.loss_log.lrs == sorted(trainer.loss_log.lrs, reverse=True)
    assert last.endswith("checkpoint_epoch_00002.pyth") and trainer.best_metric is not None
    assert [type(h).__name__ for h in trainer.hooks] == [
        "LRScheduler",
        "MetricsWriter",
        "EvalHook",  # before the checkpointer: an epoch's checkpoint holds its validation's best top-1
        "PeriodicCheckpointer",
        "LossLog",
    ]


class Accumulating(TrainerBase):
    """5 steps an epoch in accumulation windows of 2 (the last window of an epoch is 1 step); records the LR that
    each step runs with."""

    def __init__(self):
        super().__init__()
        self.epoch_iters, self.max_epoch, self.accumulation = 5, 2, 2
        self.optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=99.0)
        self.lrs = []

    def run_step(self):
        self.lrs.append(self.optimizer.param_groups[0]["lr"])


def test_every_step_of_an_accumulation_window_runs_at_the_lr_of_the_windows_first_iteration():
    """One optimizer step per window: its LR is the policy's at the fractional epoch where the window starts (as
    the one step of N processes each doing one of the window's iterations would be)."""
    from vtn.engine.hooks import LRScheduler
    from vtn.engine.lr_policy import set_lr

    trainer = Accumulating()
    trainer.register_hooks([LRScheduler(lambda epoch: epoch, set_lr)])  # the LR is the fractional epoch itself
    trainer.train()
    assert trainer.lrs == pytest.approx([0.0, 0.0, 0.4, 0.4, 0.8, 1.0, 1.0, 1.4, 1.4, 1.8])


def test_the_trainer_steps_the_lr_once_per_accumulation_window(synthetic_dir, tmp_path):
    """The real trainer with TRAIN.ACCUMULATION_STEPS 4 and 6 iterations an epoch: windows of 4 and 2 steps."""
    from vtn.engine.trainer import Trainer

    class LRLog(HookBase):
        def __init__(self):
            self.lrs = []

        def after_step(self):
            self.lrs.append(self.trainer.optimizer.param_groups[0]["lr"])

    class MyTrainer(Trainer):
        def build_hooks(self):
            self.lr_log = LRLog()
            return super().build_hooks() + [self.lr_log]

    opts = ("TRAIN.ACCUMULATION_STEPS", 4, "SOLVER.LR_POLICY", "cosine", "SOLVER.BASE_LR", 0.1)
    trainer = _trainer(synthetic_dir, tmp_path, *opts, cls=MyTrainer)
    assert (trainer.epoch_iters, trainer.accumulation) == (6, 4)
    trainer.train()
    at = trainer.lr_policy
    assert trainer.lr_log.lrs == pytest.approx([at(0.0)] * 4 + [at(4 / 6)] * 2)
    assert at(4 / 6) < at(0.0)  # the schedule does move inside the epoch: the check is not vacuous


# ---------------------------------------------------------------------------- the public step
NO_DROPOUT = ["VTN.HIDDEN_DROPOUT", 0.0, "VTN.HEAD_DROPOUT", 0.0, "VTN.ATTENTION_DROPOUT", 0.0]


def _trainer(synthetic_dir, tmp_path, *opts, cls=None):
    from vtn.engine.trainer import Trainer

    cfg = tiny_cfg(
        *synthetic_opts(synthetic_dir),
        "OUTPUT_DIR",
        str(tmp_path),
        "SOLVER.MAX_EPOCH",
        1,
        "TRAIN.EVAL_PERIOD",
        0,
        "TRAIN.BATCH_SIZE",
        2,
        "DATA.TRAIN_JITTER_SCALES",
        [32, 40],
        *NO_DROPOUT,
        *opts,
    )
    return (cls or Trainer)(cfg)


def test_run_step_trains_on_exactly_the_given_batch_and_returns_its_timings(synthetic_dir, tmp_path):
    import copy

    from tests.helpers import assert_same
    from vtn.engine.inputs import model_inputs

    trainer = _trainer(synthetic_dir, tmp_path)
    batches = iter(trainer.train_loader)
    batch, other = next(batches), next(batches)
    model, optimizer = trainer.model, trainer.optimizer
    weights, state = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())

    def restart():
        model.load_state_dict(weights)
        optimizer.load_state_dict(state)
        optimizer.zero_grad(set_to_none=True)

    def manual_step(b):
        restart()
        logits = model(**model_inputs(b, trainer.device))
        trainer.loss_fn(logits.float(), b["label"]).backward()
        optimizer.step()
        return copy.deepcopy(model.state_dict())

    expected, elsewhere = manual_step(batch), manual_step(other)
    restart()
    timings = trainer.run_step(batch)  # a fresh trainer: no epoch started, no loader iterator
    assert_same(model.state_dict(), expected, atol=1e-6)
    # not vacuous: a step on another batch ends elsewhere
    assert max((expected[k] - elsewhere[k]).abs().max() for k in expected) > 1e-4
    assert timings.forward_backward > 0 and timings.optimizer > 0 and 0 <= timings.data < timings.forward_backward
    assert timings.total == pytest.approx(timings.data + timings.forward_backward + timings.optimizer)
    # the hooks get the step's outputs and its times, as from a step of the loop
    out = trainer.step_output
    assert (out["data_time"], out["iter_time"]) == (timings.data, timings.total)
    assert out["labels"].tolist() == batch["label"].tolist()


def test_run_step_without_a_batch_before_an_epoch_says_what_to_call(synthetic_dir, tmp_path):
    trainer = _trainer(synthetic_dir, tmp_path)
    with pytest.raises(RuntimeError, match=r"call before_epoch\(\) first"):
        trainer.run_step()


def test_the_loops_steps_hand_their_timings_to_the_meters_unchanged(synthetic_dir, tmp_path):
    """The data and step times the MetricsWriter reads from step_output are the timings run_step returns."""
    from vtn.engine.trainer import Trainer

    returned, seen = [], []

    class Times(HookBase):
        def after_step(self):
            out = self.trainer.step_output
            seen.append((out["data_time"], out["iter_time"]))

    class Recording(Trainer):
        def build_hooks(self):
            return super().build_hooks() + [Times()]

        def run_step(self, batch=None):
            timings = super().run_step(batch)
            returned.append(timings)
            return timings

    trainer = _trainer(synthetic_dir, tmp_path, cls=Recording)
    trainer.train()
    assert len(returned) == trainer.epoch_iters == 6
    assert seen == [(t.data, t.total) for t in returned]
    assert all(t.data >= 0 and t.total >= t.data for t in returned)


def test_only_synchronize_timings_adds_device_syncs_to_a_step(synthetic_dir, tmp_path, monkeypatch):
    import vtn.engine.trainer as trainer_module

    synced = []
    monkeypatch.setattr(trainer_module, "synchronize", synced.append)
    trainer = _trainer(synthetic_dir, tmp_path)
    trainer.before_epoch()
    for it in range(2):
        trainer.iter = it
        trainer.run_step()
    assert synced == []  # ordinary training steps never wait for the device
    trainer.synchronize_timings = True
    trainer.iter = 2
    trainer.run_step()
    assert synced == [trainer.device, trainer.device]  # after the backward pass and after the optimizer step
