"""Collectives for the preflight: a timed all-reduce that names a rank that does not answer, and a number's
maximum and sum over the ranks."""

import datetime

import torch
import torch.distributed as dist

from vtn.engine import distributed as du
from vtn.launch.preflight.failures import PreflightFailure
from vtn.launch.preflight.timing import timed


def _check_every_rank_answers(timeout: datetime.timedelta, timeout_s: float, world: int) -> None:
    """gloo: a monitored barrier, whose error names the ranks that did not reach it within `timeout`."""
    try:
        dist.monitored_barrier(timeout=timeout, wait_all_ranks=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split("\n")[0].split())
        raise PreflightFailure(
            f"rank unreachable: {detail} (DIST_TIMEOUT = {timeout_s:g} s, this is rank {du.get_rank()} of "
            f"{world}); {du.TROUBLESHOOTING}"
        ) from e


def timed_allreduce(device: torch.device, timeout_s: float) -> float:
    """Seconds of an all-reduce of one number across every rank (with one process: the trivial sum). First a
    check that every rank answers within `timeout_s`: gloo's monitored_barrier names the ranks that did not; on
    NCCL the all-reduce itself is waited for with that timeout."""
    world = du.get_world_size()
    value = torch.ones(1, device=device)
    if world == 1:
        return timed(device, lambda: value.add_(0))[0]
    timeout = datetime.timedelta(seconds=timeout_s)
    if dist.get_backend() == "gloo":
        _check_every_rank_answers(timeout, timeout_s, world)

    def reduce():
        work = dist.all_reduce(value, async_op=True)
        if not work.wait(timeout=timeout):
            raise RuntimeError("timed out")

    try:
        return timed(device, reduce)[0]
    except RuntimeError as e:
        raise PreflightFailure(
            f"rank unreachable: the all-reduce across {world} ranks did not finish within DIST_TIMEOUT = "
            f"{timeout_s:g} s on rank {du.get_rank()} ({' '.join(str(e).split())[:200]}); {du.TROUBLESHOOTING}"
        ) from e


def max_over_ranks(value: float, device: torch.device) -> float:
    return float(du.all_gather_cat(torch.tensor([float(value)], device=device, dtype=torch.float64)).max())


def sum_over_ranks(value: float, device: torch.device) -> float:
    return float(du.all_reduce_sum(torch.tensor([float(value)], device=device, dtype=torch.float64)))
