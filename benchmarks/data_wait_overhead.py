#!/usr/bin/env python
"""Steps per second of the demo's training with the per-rank data-wait statistics (issue 27) against without.

    python benchmarks/data_wait_overhead.py               # 8 timed epochs, 4 with and 4 without (~4 min here)
    python benchmarks/data_wait_overhead.py --epochs 12 --log-period 1

One Trainer of configs/Synthetic/VTN_TINY.yaml (its generated dataset in data_cache/synthetic/, made on first use;
no validation, no test, checkpoints only at the end) trains an untimed warm-up epoch, then --epochs epochs
alternately with the statistics and without them, in ABBA order so that a shared machine's load hits both alike.
"Without" swaps the meters' data-wait window and its summaries (vtn.engine.meters: WaitWindow, window_stats,
shares, SUMMARIES) for ones that keep and report nothing, so the rest of the log line (its one gather included)
is the same. LOG_PERIOD is --log-period (default 1: a log line, and so the statistics' gather, every step: the
most they can cost). Reported: steps/s of each epoch, the medians, and their ratio with / without.
"""

import argparse
import logging
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from vtn.config import load_config  # noqa: E402
from vtn.engine import meters  # noqa: E402
from vtn.engine.hooks import MetricsWriter  # noqa: E402
from vtn.engine.trainer import Trainer  # noqa: E402
from vtn.launch.cli import register_components  # noqa: E402
from vtn.utils.logging import setup_logging  # noqa: E402

WITH = (meters.WaitWindow, meters.window_stats, meters.shares, meters.SUMMARIES)


class NoWindow:
    """A data-wait window that keeps nothing (the "without" case)."""

    def add(self, wait, step):
        pass

    def reset(self):
        pass

    def row(self):
        return []


def use_statistics(on: bool) -> None:
    if on:
        meters.WaitWindow, meters.window_stats, meters.shares, meters.SUMMARIES = WITH
    else:
        meters.WaitWindow, meters.window_stats, meters.shares, meters.SUMMARIES = (
            NoWindow,
            lambda rows: {},
            lambda waits, steps: [],
            {},
        )


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8, help="Timed epochs, half with the statistics (even).")
    parser.add_argument("--log-period", type=int, default=1, help="LOG_PERIOD: steps per log line.")
    parser.add_argument("--output", default="/tmp/vtn_data_wait_overhead", help="OUTPUT_DIR of the run.")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    register_components()
    setup_logging(None, True)
    logging.getLogger().setLevel(logging.WARNING)
    opts = ["OUTPUT_DIR", args.output, "TRAIN.EVAL_PERIOD", 0, "TRAIN.CHECKPOINT_PERIOD", 1000, "TEST.ENABLE", False]
    opts += ["SOLVER.MAX_EPOCH", 1000, "TRAIN.AUTO_RESUME", False, "LOG_PERIOD", args.log_period, "LOG_SECONDS", 0]
    cfg = load_config([os.path.join(REPO, "configs/Synthetic/VTN_TINY.yaml")], opts)
    os.chdir(REPO)  # the config's data folder is relative to the repository
    trainer = Trainer(cfg)
    trainer.before_train()
    writer = next(h for h in trainer.hooks if isinstance(h, MetricsWriter))
    use_statistics(True)
    trainer.run_epoch(0)  # warm-up: workers, allocator, caches
    seconds = {True: [], False: []}
    for epoch in range(1, args.epochs + 1):
        on = (epoch % 4) in (1, 0)  # ABBA: with, without, without, with, ...
        use_statistics(on)
        writer.meter.wait = meters.WaitWindow()
        start = time.perf_counter()
        trainer.run_epoch(epoch)
        seconds[on].append(time.perf_counter() - start)
        print(f"epoch {epoch} {'with' if on else 'without'} the statistics: {seconds[on][-1]:.2f} s", flush=True)
    steps = trainer.epoch_iters
    median = {on: statistics.median(steps / s for s in seconds[on]) for on in seconds}
    for on in (True, False):
        rates = ", ".join(f"{steps / s:.3f}" for s in seconds[on])
        print(f"{'with' if on else 'without'} the statistics: steps/s {rates}; median {median[on]:.3f}")
    print(
        f"ratio with / without: {median[True] / median[False]:.3f} "
        f"({steps} steps an epoch, LOG_PERIOD {args.log_period})"
    )


if __name__ == "__main__":
    main()
