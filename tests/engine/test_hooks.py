"""The default trainer's hooks: when MetricsWriter writes a line (LOG_PERIOD iterations, sooner by LOG_SECONDS)."""

import json
import os

import pytest

from tests.helpers import synthetic_opts, tiny_cfg
from vtn.engine.hooks import MetricsWriter


class _Meter:
    def __init__(self, step_seconds):
        self.step_seconds = step_seconds


@pytest.mark.parametrize(
    "period, seconds, step_s, done, expected",
    [
        (10, 15.0, 0.0, 0, 10),  # the speed is not known yet: LOG_PERIOD
        (10, 15.0, 1.0, 10, 20),  # 10 steps take 10 s < 15 s: every LOG_PERIOD
        (10, 15.0, 4.0, 10, 13),  # 10 steps would take 40 s: every 3 steps (12 s)
        (10, 15.0, 40.0, 13, 14),  # slower than LOG_SECONDS: every step
        (10, 15.0, 4.0, 18, 20),  # never past the next multiple of LOG_PERIOD
        (10, 0.0, 40.0, 10, 20),  # LOG_SECONDS 0: by iterations only
    ],
)
def test_the_next_line_comes_after_log_period_steps_or_sooner_by_log_seconds(period, seconds, step_s, done, expected):
    writer = MetricsWriter(period, log_seconds=seconds)
    writer.meter = _Meter(step_s)
    assert writer._after(done) == expected


@pytest.mark.parametrize(
    "period, log_seconds, lines",
    [
        (100, 0.0, [6, 12]),  # the epoch's last step always logs
        (2, 0.0, [2, 4, 6, 8, 10, 12]),  # every LOG_PERIOD steps, and no more
        (100, 1e-6, [6, 7, 8, 9, 10, 11, 12]),  # every step once the speed is known (after the first line)
    ],
)
def test_log_period_and_log_seconds_in_a_real_run(synthetic_dir, tmp_path, period, log_seconds, lines):
    from vtn.engine.trainer import Trainer

    out = str(tmp_path / "run")
    cfg = tiny_cfg(
        *synthetic_opts(synthetic_dir),
        *("OUTPUT_DIR", out, "SOLVER.MAX_EPOCH", 2, "TRAIN.EVAL_PERIOD", 0, "TRAIN.BATCH_SIZE", 2),
        *("LOG_PERIOD", period, "LOG_SECONDS", log_seconds, "DATA.TRAIN_JITTER_SCALES", [32, 40]),
    )
    Trainer(cfg).train()
    stats = [json.loads(line) for line in open(os.path.join(out, "json_stats.log"))]
    assert [round(s["epoch_float"] * 6) for s in stats if s["_type"] == "train_iter"] == lines  # 6 steps an epoch
