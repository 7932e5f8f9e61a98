"""Collective helpers of a job's processes: rank and world, all-reduce, all-gather, broadcast.

The processes and their group are started by vtn/launch/processes.py (spawned per GPU, several machines, or
torchrun). Outside a group (one process) every helper works as the identity. A collective that waits longer
than DIST_TIMEOUT seconds for a process fails with `DistTimeoutError`, a one-line error that names it and points
to the section "Troubleshooting distributed runs" of INSTALL.md, instead of hanging.
"""

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Optional

import torch
import torch.distributed as dist

from vtn.utils.errors import UserError

logger = logging.getLogger(__name__)

TROUBLESHOOTING = 'see "Troubleshooting distributed runs" in INSTALL.md'
_timeout_s: Optional[float] = None  # DIST_TIMEOUT of this process's group (see set_timeout)


class DistTimeoutError(UserError, RuntimeError):
    """A collective waited DIST_TIMEOUT seconds for a process that never joined it."""


def is_timeout(error: BaseException, from_backend: bool = True) -> bool:
    """A timeout error; with `from_backend` False (an error of any code), only one that NCCL, gloo or the store
    raised (a DataLoader's timeout is not a collective's)."""
    text = str(error).lower()
    if "timed out" not in text and "timeout" not in text:
        return False
    return from_backend or isinstance(error, dist.DistError) or "gloo" in text or "pair closure" in text


def timeout_error(
    what: str, error: BaseException, rank: Optional[int] = None, world: Optional[int] = None
) -> DistTimeoutError:
    after = f" (DIST_TIMEOUT = {_timeout_s:g} s)" if _timeout_s is not None else ""
    rank, world = get_rank() if rank is None else rank, get_world_size() if world is None else world
    backend = " ".join(str(error).split())
    backend = backend if len(backend) <= 200 else backend[:197] + "..."
    return DistTimeoutError(
        f"{what} timed out{after} on rank {rank} of {world}: a process never joined it (a wrong address or "
        f"network interface, a firewall, a busy port, a crashed or stuck rank); {TROUBLESHOOTING}. The backend "
        f"said: {backend}"
    )


@contextlib.contextmanager
def _collective(name: str) -> Iterator[None]:
    """Turn the backend's timeout of collective `name` into a DistTimeoutError that names it."""
    try:
        yield
    except RuntimeError as e:
        if isinstance(e, DistTimeoutError) or not is_timeout(e):
            raise
        raise timeout_error(f"The collective {name}", e) from e


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def get_rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def is_master() -> bool:
    return get_rank() == 0


def get_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def device_for(cfg) -> torch.device:
    if cfg.NUM_GPUS > 0:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel (or EMA) wrapper."""
    return getattr(model, "module", model)


def barrier() -> None:
    if is_initialized():
        with _collective("barrier"):
            dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """In-place sum over processes (returns the tensor)."""
    if is_initialized() and get_world_size() > 1:
        with _collective("all_reduce"):
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate along dim 0 the tensors of every process (sizes may differ along dim 0)."""
    if not is_initialized() or get_world_size() == 1:
        return tensor
    world = get_world_size()
    size = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    with _collective("all_gather"):
        dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = tensor.new_zeros((longest,) + tuple(tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts: list[torch.Tensor] = [torch.empty_like(padded) for _ in range(world)]
    with _collective("all_gather"):
        dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])


def all_gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate along dim 0 the tensors of every process, which have the same shape everywhere: one collective
    (all_gather_cat first gathers the sizes)."""
    if not is_initialized() or get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(get_world_size())]
    with _collective("all_gather"):
        dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def all_gather_object(obj) -> list:
    """[the `obj` of rank 0, of rank 1, ...] (picklable objects; a list of one outside a process group)."""
    if not is_initialized() or get_world_size() == 1:
        return [obj]
    out = [None] * get_world_size()
    with _collective("all_gather_object"):
        dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, src: int = 0):
    if not is_initialized() or get_world_size() == 1:
        return obj
    holder = [obj]
    with _collective("broadcast_object_list"):
        dist.broadcast_object_list(holder, src=src)
    return holder[0]


def set_timeout(seconds: float) -> None:
    """DIST_TIMEOUT of this process's group, for the one-line errors of timed-out collectives (the launcher
    sets it when the group forms)."""
    global _timeout_s
    _timeout_s = seconds


MOVED = {name: "vtn.launch.processes" for name in ("launch_job", "check_gpus", "DeviceError")}


def __getattr__(name: str):
    """What moved from here to the launch package: one line naming its new place."""
    if name in MOVED:
        raise ImportError(f"vtn.engine.distributed.{name} moved: import it from {MOVED[name]}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
