"""The training batch on the processes a run has: SOLVER.REFERENCE_WORLD_SIZE and SOLVER.SCALE_RULE."""

import json
import os

import pytest

from tests.helpers import run_opts, run_tool
from vtn.config import ConfigError, batch_plan, load_config


def cfg(batch=16, accumulation=1, reference=8, rule="keep_global", gpus=8, test_batch=8):
    return load_config(
        None,
        [
            "TRAIN.BATCH_SIZE",
            batch,
            "TRAIN.ACCUMULATION_STEPS",
            accumulation,
            "SOLVER.REFERENCE_WORLD_SIZE",
            reference,
            "SOLVER.SCALE_RULE",
            rule,
            "NUM_GPUS",
            gpus,
            "TEST.BATCH_SIZE",
            test_batch,
        ],
    )


@pytest.mark.parametrize(
    "processes, accumulation, expected",
    [
        (8, 1, (2, 1)),  # as written
        (2, 1, (2, 4)),  # fewer processes: each keeps its 2 clips, 4 iterations make the 16
        (1, 1, (2, 8)),
        (16, 2, (2, 1)),  # more processes: fewer accumulation steps
        (16, 1, (1, 1)),  # more processes than the shares allow: each takes 16 / 16
        (4, 3, (2, 6)),  # 48 clips per step on 4 processes
    ],
)
def test_keep_global_keeps_the_step_batch_and_the_lr(processes, accumulation, expected):
    plan = batch_plan(cfg(accumulation=accumulation), processes)
    assert (plan.per_process, plan.accumulation) == expected
    assert plan.step_batch == 16 * accumulation and plan.lr_scale == 1.0
    assert bool(plan.note) == (processes != 8)
    if plan.note:
        assert plan.note.startswith(f"SOLVER.REFERENCE_WORLD_SIZE 8, this run has {processes} processes: ")
        assert f"keep the global batch of {16 * accumulation} clips" in plan.note


def test_linear_keeps_the_share_and_scales_the_lr():
    plan = batch_plan(cfg(rule="linear"), 2)
    assert (plan.per_process, plan.accumulation, plan.step_batch, plan.lr_scale) == (2, 1, 4, 0.25)
    assert "every LR x 0.25 (SOLVER.SCALE_RULE linear)" in plan.note
    assert batch_plan(cfg(rule="linear"), 32).lr_scale == 4.0


def test_without_a_reference_the_config_is_used_as_written():
    plan = batch_plan(cfg(reference=0), 8)
    assert (plan.per_process, plan.accumulation, plan.lr_scale, plan.note) == (2, 1, 1.0, "")
    with pytest.raises(ConfigError, match=r"TRAIN.BATCH_SIZE = 16 is not allowed: .* = 3\); or set SOLVER.REF"):
        batch_plan(cfg(reference=0), 3)


def test_impossible_plans_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="cannot be split over 3 processes; use a number of processes that divides"):
        batch_plan(cfg(), 3)
    with pytest.raises(ConfigError, match="TRAIN.BATCH_SIZE = 12 is not a multiple of SOLVER.REFERENCE_WORLD_SIZE = 8"):
        cfg(batch=12, gpus=2)
    with pytest.raises(ConfigError, match="SOLVER.SCALE_RULE = 'square' is not one of"):
        cfg(rule="square")
    # checked when the config is loaded: 3 GPUs for an 8-GPU config of 16 clips
    with pytest.raises(ConfigError, match="cannot be split over 3 processes"):
        cfg(gpus=3, test_batch=3)
    assert batch_plan(cfg(gpus=2), 2).accumulation == 4


def test_one_process_follows_the_reference_in_a_run(synthetic_dir, tmp_path):
    """A 1-process run of a config written for 2 processes: keep_global accumulates 2 iterations (the
    2-process equality is in tests/engine/test_resume.py); linear halves every LR. Both say so in the log."""
    opts = ["SOLVER.MAX_EPOCH", 1, "TEST.ENABLE", False, "TRAIN.EVAL_PERIOD", 0, "SOLVER.REFERENCE_WORLD_SIZE", 2]
    keep = run_tool("run_net.py", *run_opts(synthetic_dir, str(tmp_path / "keep"), *opts))
    assert "Batch: SOLVER.REFERENCE_WORLD_SIZE 2, this run has 1 processes: 2 clips per process x 2" in keep.stdout
    assert "Effective batch: 2 per process x 1 processes x 2 accumulation steps = 4 clips" in keep.stdout
    linear = run_tool(
        "run_net.py", *run_opts(synthetic_dir, str(tmp_path / "linear"), *opts, "SOLVER.SCALE_RULE", "linear")
    )
    assert "every LR x 0.5 (SOLVER.SCALE_RULE linear)" in linear.stdout
    assert "Effective batch: 2 per process x 1 processes x 1 accumulation steps = 2 clips" in linear.stdout

    def first_lr(out):
        stats = [json.loads(x) for x in open(os.path.join(out, "json_stats.log"))]
        return next(s["lr"] for s in stats if s["_type"] == "train_iter")

    assert first_lr(str(tmp_path / "linear")) == pytest.approx(0.5 * first_lr(str(tmp_path / "keep")))


@pytest.mark.parametrize("processes", [1, 2, 8, 16])
def test_each_process_keeps_its_share_of_the_test_batch_written_for_the_reference(processes):
    from vtn.config import check_world, eval_batch_per_process

    written = cfg(test_batch=8, reference=8)  # the Kinetics configs: 8 full-video views, one per GPU
    assert eval_batch_per_process(written, processes) == 1
    check_world(written, processes)  # 16 GPUs of an 8-GPU config: no TEST.BATCH_SIZE error
    as_given = cfg(test_batch=48, reference=0, gpus=0)  # no reference: the batch splits over the run's processes
    assert eval_batch_per_process(as_given, processes) == 48 // processes
    with pytest.raises(ConfigError, match=r"TEST.BATCH_SIZE = 8 is not a multiple of SOLVER.REFERENCE_WORLD_SIZE = 3"):
        eval_batch_per_process(cfg(test_batch=8, reference=3, batch=12, gpus=0), processes)
    if 48 % (processes * 5):
        with pytest.raises(ConfigError, match=rf"TEST.BATCH_SIZE = 48 .* number of processes \({processes * 5}\)"):
            eval_batch_per_process(as_given, processes * 5)
