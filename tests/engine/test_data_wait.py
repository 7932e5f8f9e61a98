"""Data wait per rank (vtn/engine/data_wait.py): the statistics, the margin rule that names the slowest rank, the
meters' log lines and TensorBoard scalars, and a real run of 2 gloo processes where rank 1 is slow on purpose.

Loaded with `--import` (as `test_data_wait`), this file registers the dataset `slow_rank_synthetic`: the tests'
synthetic dataset whose training items take SLOW_RANK_SLEEP seconds longer on rank SLOW_RANK."""

import json
import os
import time

import pytest
import torch

from vtn.engine.data_wait import (
    SLOW_RATIO,
    WaitWindow,
    percentile,
    shares,
    slowest_rank,
    window_stats,
)
from vtn.engine.meters import TrainMeter, format_stats


def _register_slow_rank_dataset():
    from vtn.datasets.build import DATASET_REGISTRY
    from vtn.datasets.synthetic import build_synthetic
    from vtn.engine import distributed as du

    @DATASET_REGISTRY.register_as("slow_rank_synthetic")
    def build_slow_rank_synthetic(cfg, split, view):
        dataset = build_synthetic(cfg, split, view)
        if split == "train" and du.get_rank() == int(os.environ.get("SLOW_RANK", "1")):
            seconds = float(os.environ.get("SLOW_RANK_SLEEP", "0.3"))
            base = type(dataset)

            class Slow(base):
                def __getitem__(self, index):
                    time.sleep(seconds)
                    return base.__getitem__(self, index)

            dataset.__class__ = Slow
        return dataset


if __name__ == "test_data_wait":  # loaded by --import in the processes of a run, not by pytest
    _register_slow_rank_dataset()


# ------------------------------------------------------------------ the statistics


def test_percentiles_interpolate_between_ranks():
    values = [float(v) for v in range(10, 0, -1)]  # order does not matter
    assert percentile(values, 0.5) == pytest.approx(5.5)
    assert percentile(values, 0.9) == pytest.approx(9.1)
    assert percentile(values, 1.0) == 10.0 and percentile(values, 0.0) == 1.0
    assert percentile([0.25], 0.9) == 0.25
    assert percentile([], 0.5) == 0.0


def test_a_window_row_has_its_figures_and_resets():
    w = WaitWindow()
    for wait, step in [(0.1, 1.0), (0.3, 1.0), (0.2, 2.0)]:
        w.add(wait, step)
    assert w.row() == pytest.approx([0.2, 0.28, 0.3, 0.6, 4.0, 3.0])
    w.reset()
    assert w.row() == [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "waits, steps, expected",
    [
        ([0.01, 0.3], [0.4, 0.4], 1),  # far more than the other, most of its step
        ([0.3, 0.01], [0.4, 0.4], 0),
        ([0.01, 0.019], [0.1, 0.1], None),  # less than SLOW_RATIO x the other's
        ([0.01, 0.03], [1.0, 1.0], None),  # 3x the other's, but 3% of its step: not worth naming
        ([0.5], [1.0], None),  # one process: nobody to compare with
        ([0.01, 0.01, 0.5, 0.01], [1.0] * 4, 2),
        ([0.01, 0.3, 0.5, 0.3], [1.0] * 4, None),  # the others' median (0.3), not their mean or least, is the bar
        ([0.0, 0.0, 0.2, 0.0], [1.0] * 4, 2),  # the others do not wait at all
        ([0.2, 0.2], [1.0, 1.0], None),  # all alike
    ],
)
def test_the_margin_rule_names_the_slowest_rank(waits, steps, expected):
    assert slowest_rank(waits, steps) == expected


def test_the_margin_is_strict_at_its_bounds():
    assert slowest_rank([0.1, SLOW_RATIO * 0.1], [1.0, 1.0]) is None  # exactly 2x the others: not more
    assert slowest_rank([0.1, SLOW_RATIO * 0.1 + 1e-3], [1.0, 1.0]) == 1
    assert slowest_rank([0.0, 0.1], [1.0, 1.0]) is None  # exactly 10% of its step: not more


def test_window_stats_are_lists_by_rank():
    rows = [[0.01, 0.02, 0.05, 0.06, 2.0, 4.0], [0.3, 0.35, 0.4, 1.24, 2.0, 4.0]]
    stats = window_stats(rows)
    assert stats["data_wait_p50"] == [0.01, 0.3]
    assert stats["data_wait_p90"] == [0.02, 0.35]
    assert stats["data_wait_max"] == [0.05, 0.4]
    assert stats["data_wait_mean"] == pytest.approx([0.015, 0.31])
    assert stats["slowest_rank"] == 1
    assert shares([0.5, 3.0], [2.0, 4.0]) == [0.25, 0.75]


def test_the_human_line_is_short_and_names_the_slowest_rank():
    rows = [[0.01, 0.02, 0.05, 0.04, 1.6, 4.0], [0.2, 0.3, 0.41, 1.0, 1.6, 4.0]]
    stats = {"_type": "train_iter", "loss": 1.5, **window_stats(rows)}
    line = format_stats(stats)
    assert "data_wait p50/p90/max 0.2/0.3/0.41 s (rank 1)" in line
    assert "slowest rank 1 (waits 0.25 s/step, 25.0x the others' median)" in line
    assert "[" not in line and "data_wait_p90" not in line and "_type" not in line
    assert line.startswith("loss 1.5 | ")

    alike = window_stats([[0.01, 0.02, 0.05, 0.04, 1.6, 4.0]] * 2)
    assert "slowest" not in format_stats(alike) and "(rank 0)" in format_stats(alike)
    alone = format_stats(window_stats([[0.01, 0.02, 0.05, 0.04, 1.6, 4.0]]))
    assert alone == "data_wait p50/p90/max 0.01/0.02/0.05 s"
    assert format_stats({"data_wait_share": [0.02, 0.45, 0.1]}) == "data_wait_share 2%-45% (worst rank 1)"
    assert format_stats({"data_wait_share": [0.125]}) == "data_wait_share 12%"


# ------------------------------------------------------------------ the meters of one process


def _update(meter, data_time, iter_time):
    logits = torch.zeros(2, 6)
    meter.update(torch.tensor(1.0), logits, torch.tensor([0, 1]), torch.zeros(2), data_time, iter_time)


def test_one_process_logs_lists_of_one_and_each_window_afresh():
    meter = TrainMeter(epoch_iters=6, max_epoch=1, device=torch.device("cpu"))
    for wait in (0.1, 0.3, 0.2):
        _update(meter, wait, 1.0)
    first = meter.log_iter(0, 2, lr=0.1)
    assert first["data_wait_p50"] == [0.2] and first["data_wait_max"] == [0.3]
    assert first["data_wait_p90"] == [pytest.approx(0.28)] and first["data_wait_mean"] == [pytest.approx(0.2)]
    assert first["slowest_rank"] is None
    assert first["loss"] == pytest.approx(1.0) and meter.step_seconds == pytest.approx(1.0)
    for wait in (0.5, 0.5, 0.5):
        _update(meter, wait, 2.0)
    second = meter.log_iter(0, 5, lr=0.1)
    assert second["data_wait_p50"] == [0.5] and second["data_wait_max"] == [0.5]  # the first window is gone
    epoch = meter.log_epoch(0, lr=0.1)
    assert epoch["data_wait_share"] == [pytest.approx((0.6 + 1.5) / 9.0, abs=1e-6)]
    assert json.loads(json.dumps(first))["data_wait_p50"] == [0.2]


def test_tensorboard_has_one_scalar_per_rank(tmp_path):
    from types import SimpleNamespace

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from vtn.visualization.tensorboard import TensorboardWriter

    cfg = SimpleNamespace(TENSORBOARD=SimpleNamespace(LOG_DIR=str(tmp_path)), OUTPUT_DIR=str(tmp_path))
    writer = TensorboardWriter(cfg)
    stats = {"_type": "train_iter", "loss": 1.5, "eta": "0:01:00", "slowest_rank": None}
    stats.update(data_wait_p90=[0.02, 0.35, 0.01])
    writer.add_scalars(stats, 7, "train")
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert tags == {
        "train/loss",
        "train/data_wait_p90/rank_0",
        "train/data_wait_p90/rank_1",
        "train/data_wait_p90/rank_2",
    }
    (point,) = events.Scalars("train/data_wait_p90/rank_1")
    assert point.step == 7 and point.value == pytest.approx(0.35)


# ------------------------------------------------------------------ a real run of 2 processes


@pytest.mark.slow
def test_two_processes_name_the_rank_made_slow_on_purpose(synthetic_dir, tmp_path):
    from tests.helpers import run_opts, run_torchrun

    out = str(tmp_path / "run")
    opts = run_opts(
        synthetic_dir,
        out,
        *("TRAIN.DATASET", "slow_rank_synthetic", "SOLVER.MAX_EPOCH", 1, "TRAIN.EVAL_PERIOD", 0),
        *("TEST.ENABLE", False, "TENSORBOARD.ENABLE", True),  # no loader worker: a prefetch hides no wait
    )
    here = os.path.abspath(__file__)
    proc = run_torchrun("run_net.py", "--import", here, *opts, env={"SLOW_RANK": "1"}, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    stats = [json.loads(line) for line in open(os.path.join(out, "json_stats.log"))]
    iters = [s for s in stats if s["_type"] == "train_iter"]
    assert len(iters) == 3  # 12 clips, 2 per process: 3 steps, a line each
    for s in iters:
        assert len(s["data_wait_p50"]) == len(s["data_wait_p90"]) == len(s["data_wait_max"]) == 2
    # rank 1 sleeps 0.3 s per clip, 2 clips a step: it waits 0.6 s and more for each batch, rank 0 its decoding
    assert all(s["data_wait_p50"][1] > 0.6 and s["data_wait_p50"][1] > 3 * s["data_wait_p50"][0] for s in iters)
    assert all(s["data_wait_max"][1] >= s["data_wait_p90"][1] >= s["data_wait_p50"][1] for s in iters)
    assert all(s["slowest_rank"] == 1 for s in iters)
    assert "slowest rank 1 (waits" in proc.stdout
    (epoch,) = [s for s in stats if s["_type"] == "train_epoch"]
    share = epoch["data_wait_share"]
    assert len(share) == 2 and share[1] > 0.5 and share[1] > 2 * share[0]
    assert "(worst rank 1)" in proc.stdout

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(os.path.join(out, "tensorboard"))
    events.Reload()
    assert {"train/data_wait_p90/rank_0", "train/data_wait_p90/rank_1"} <= set(events.Tags()["scalars"])
