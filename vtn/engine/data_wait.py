"""Data wait per rank: how long each process's training steps wait for their batch, and which rank is the slowest.

On many GPUs the slowest rank sets the pace of every step (the others wait for it in the gradient all-reduce), so
a loader that falls behind on one machine makes the whole run slow with no sign of where. Every rank keeps the data
waits of its steps since the last log line (host floats: no device work and no sync per step); at the log line its
row of figures (`WaitWindow.row`) travels in the meters' one gather, and the master writes them by rank.

The margin rule: a rank is named the slowest when its mean data wait per step is more than SLOW_RATIO times the
median of the other ranks' mean waits AND more than SLOW_SHARE of its own mean step time. A rank that waits only a
little longer than the others, or much longer for a negligible part of its step, is not named; with one process
no rank is.
"""

import statistics
from collections.abc import Sequence
from typing import Optional

import torch

from vtn.engine import distributed as du

SLOW_RATIO = 2.0  # the slowest rank waits more than this many times the others' median wait ...
SLOW_SHARE = 0.10  # ... and more than this share of its step time

# The columns of a rank's row (`WaitWindow.row`), gathered as they are over the ranks.
P50, P90, MAX, WAIT_SUM, STEP_SUM, STEPS = range(6)
ROW_SIZE = 6


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`, linearly interpolated between the closest ranks; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


class WaitWindow:
    """The data waits and step times (seconds) of one rank's steps since the last `reset`."""

    def __init__(self):
        self.waits: list[float] = []
        self.step_sum = 0.0

    def reset(self) -> None:
        self.waits = []
        self.step_sum = 0.0

    def add(self, wait: float, step: float) -> None:
        self.waits.append(float(wait))
        self.step_sum += float(step)

    def row(self) -> list[float]:
        """[p50, p90, max, wait sum, step-time sum, steps]: this rank's figures, a fixed size for the gather."""
        w = self.waits
        return [percentile(w, 0.5), percentile(w, 0.9), max(w, default=0.0), sum(w), self.step_sum, float(len(w))]


def _mean(total: float, count: float) -> float:
    return total / count if count > 0 else 0.0


def slowest_rank(mean_waits: Sequence[float], step_times: Sequence[float]) -> Optional[int]:
    """The rank whose mean data wait per step passes the margin rule (see the module), or None."""
    if len(mean_waits) < 2:
        return None
    worst = max(range(len(mean_waits)), key=lambda r: mean_waits[r])
    others = statistics.median(w for r, w in enumerate(mean_waits) if r != worst)
    wait = mean_waits[worst]
    if wait > SLOW_RATIO * others and wait > SLOW_SHARE * step_times[worst]:
        return worst
    return None


def _rounded(values) -> list[float]:
    return [float(f"{v:.6g}") for v in values]


def window_stats(rows: Sequence[Sequence[float]]) -> dict:
    """The fields of a log line from the ranks' rows (rank order): data_wait_p50, data_wait_p90, data_wait_max
    and data_wait_mean (seconds per step) as lists by rank, and slowest_rank (None when no rank passes the
    margin rule)."""
    means = [_mean(r[WAIT_SUM], r[STEPS]) for r in rows]
    steps = [_mean(r[STEP_SUM], r[STEPS]) for r in rows]
    return {
        "data_wait_p50": _rounded(r[P50] for r in rows),
        "data_wait_p90": _rounded(r[P90] for r in rows),
        "data_wait_max": _rounded(r[MAX] for r in rows),
        "data_wait_mean": _rounded(means),
        "slowest_rank": slowest_rank(means, steps),
    }


def shares(wait_sums: Sequence[float], step_sums: Sequence[float]) -> list[float]:
    """Per rank, the share (0..1) of its step time spent waiting for data."""
    return _rounded(min(_mean(w, s), 1.0) for w, s in zip(wait_sums, step_sums))


def gather_by_rank(window: WaitWindow, device: torch.device) -> dict:
    """`window_stats` and `data_wait_share` of every rank's `window`, from one all-gather of its row (collective:
    every rank calls it; the preflight's figures)."""
    local = torch.tensor([window.row()], dtype=torch.float64, device=device)
    rows = du.all_gather_rows(local).tolist()
    stats = window_stats(rows)
    stats["data_wait_share"] = shares([r[WAIT_SUM] for r in rows], [r[STEP_SUM] for r in rows])
    return stats


def _worst(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda r: values[r])


def wait_summary(stats: dict) -> str:
    """The human form of a log line's data wait: p50/p90/max of the rank that waits the most (named when there
    are several)."""
    r = _worst(stats["data_wait_mean"])
    figures = "/".join(f"{stats[k][r]:.3g}" for k in ("data_wait_p50", "data_wait_p90", "data_wait_max"))
    where = f" (rank {r})" if len(stats["data_wait_mean"]) > 1 else ""
    return f"data_wait p50/p90/max {figures} s{where}"


def slowest_summary(stats: dict) -> str:
    """`slowest rank R (waits X s/step, N x the others' median)`; empty when no rank was named."""
    r = stats.get("slowest_rank")
    if r is None:
        return ""
    means = stats["data_wait_mean"]
    others = statistics.median(w for i, w in enumerate(means) if i != r)
    ratio = f"{means[r] / others:.1f}x the others' median" if others > 0 else "the others do not wait"
    return f"slowest rank {r} (waits {means[r]:.3g} s/step, {ratio})"


def share_summary(stats: dict) -> str:
    """The human form of the share of step time spent waiting for data: one figure, or the range over the ranks
    and the rank that waits the most."""
    values = stats["data_wait_share"]
    if len(values) == 1:
        return f"data_wait_share {values[0]:.0%}"
    return f"data_wait_share {min(values):.0%}-{max(values):.0%} (worst rank {_worst(values)})"


SUMMARIES = {"data_wait_p50": wait_summary, "slowest_rank": slowest_summary, "data_wait_share": share_summary}
