"""Process groups and collective helpers.

Three ways to get a world of processes:
- `NUM_GPUS` > 1 and/or `NUM_SHARDS` > 1: `launch_job` spawns NUM_GPUS processes on this machine; machine
  `SHARD_ID` of `NUM_SHARDS` joins the others through `--init_method tcp://host:port` (PySlowFast's way).
- `torchrun` (or any launcher that sets RANK / WORLD_SIZE / LOCAL_RANK): one process per launch, `env://`.
- Neither: one process, no process group; every helper below then works as the identity.
GPUs use DIST_BACKEND (NCCL); CPU processes always use gloo. A collective that waits longer than DIST_TIMEOUT
seconds for a process fails with `DistTimeoutError`, a one-line error that names it and points to the section
"Troubleshooting distributed runs" of INSTALL.md, instead of hanging.
"""

import contextlib
import datetime
import logging
import os
from collections.abc import Iterator
from typing import Callable, Optional

import torch
import torch.distributed as dist

from vtn.config import check_world
from vtn.engine.reproducibility import apply_reproducibility
from vtn.utils.errors import UserError

logger = logging.getLogger(__name__)

TROUBLESHOOTING = 'see "Troubleshooting distributed runs" in INSTALL.md'
_timeout_s: Optional[float] = None  # DIST_TIMEOUT of this process's group (set by _init_group)


class DistTimeoutError(UserError, RuntimeError):
    """A collective waited DIST_TIMEOUT seconds for a process that never joined it."""


def _is_timeout(error: BaseException, from_backend: bool = True) -> bool:
    """A timeout error; with `from_backend` False (an error of any code), only one that NCCL, gloo or the store
    raised (a DataLoader's timeout is not a collective's)."""
    text = str(error).lower()
    if "timed out" not in text and "timeout" not in text:
        return False
    return from_backend or isinstance(error, dist.DistError) or "gloo" in text or "pair closure" in text


def _timeout_error(
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
        if isinstance(e, DistTimeoutError) or not _is_timeout(e):
            raise
        raise _timeout_error(f"The collective {name}", e) from e


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


def _elastic_store(init_method: str, rank: int, world: int, timeout: datetime.timedelta):
    """Under torchrun (torchelastic), the store of this attempt: the agent keeps one store for the whole job, so the
    keys of the group of a failed attempt (the old ranks' addresses) would still be there after `--max-restarts`
    restarts the workers, and the new group would try to connect to the dead processes. A prefix per attempt
    (TORCHELASTIC_RESTART_COUNT) keeps the groups apart. None outside torchelastic."""
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if attempt is None or not init_method.startswith("env://"):
        return None
    store, _, _ = next(dist.rendezvous(init_method, rank, world, timeout=timeout))
    return dist.PrefixStore(f"vtn_attempt_{attempt}", store)


def _init_group(cfg, init_method: str, rank: int, world: int, local_rank: int) -> None:
    """Join the job's process group; its collectives fail after DIST_TIMEOUT seconds instead of hanging."""
    global _timeout_s
    backend = cfg.DIST_BACKEND if cfg.NUM_GPUS > 0 else "gloo"
    if cfg.NUM_GPUS > 0:
        torch.cuda.set_device(local_rank)
    _timeout_s = cfg.DIST_TIMEOUT
    timeout = datetime.timedelta(seconds=cfg.DIST_TIMEOUT)
    try:
        store = _elastic_store(init_method, rank, world, timeout)
        where = dict(store=store) if store is not None else dict(init_method=init_method)
        dist.init_process_group(backend=backend, world_size=world, rank=rank, timeout=timeout, **where)
    except RuntimeError as e:
        if not _is_timeout(e):
            raise
        raise _timeout_error(f"Joining the process group at {init_method}", e, rank, world) from e


def _run_in_group(func: Callable, cfg) -> None:
    """`func(cfg)`, with a timeout of a collective outside the helpers above (DDP's gradient all-reduce) reported
    as a DistTimeoutError too; the group is destroyed at the end."""
    try:
        func(cfg)
    except RuntimeError as e:
        if not is_initialized() or isinstance(e, DistTimeoutError) or not _is_timeout(e, from_backend=False):
            raise
        raise _timeout_error("A collective (e.g. DDP's gradient all-reduce)", e) from e
    finally:
        if is_initialized():
            dist.destroy_process_group()


def _spawned_worker(local_rank: int, func: Callable, cfg, init_method: str) -> None:
    world = cfg.NUM_GPUS * cfg.NUM_SHARDS
    rank = cfg.SHARD_ID * cfg.NUM_GPUS + local_rank
    os.environ["LOCAL_RANK"] = str(local_rank)
    apply_reproducibility(cfg)  # torch's flags are per process (the environment came from the parent)
    _init_group(cfg, init_method, rank, world, local_rank)
    _run_in_group(func, cfg)


class DeviceError(UserError, RuntimeError):
    """The config asks for GPUs this machine does not have."""


def check_gpus(cfg, per_process: bool = False) -> None:
    """NUM_GPUS above the visible CUDA devices stops at start-up with one line (how many there are, the override
    to use), before any process is started. `per_process`: one GPU per process (torchrun)."""
    wanted = min(cfg.NUM_GPUS, 1) if per_process else cfg.NUM_GPUS
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if wanted > visible:
        fix = "NUM_GPUS 0 to run on the CPU" if visible == 0 else f"NUM_GPUS {visible} (or 0 for the CPU)"
        raise DeviceError(
            f"NUM_GPUS = {cfg.NUM_GPUS} but this machine has {visible} visible CUDA GPU{'s' if visible != 1 else ''}"
            f"{' per process' if per_process else ''}: add the override {fix} to the command line."
        )


def launch_job(cfg, func: Callable, init_method: Optional[str] = None) -> None:
    """Run `func(cfg)` in every process of the job (see the module docstring)."""
    apply_reproducibility(cfg)  # first: CUBLAS_WORKSPACE_CONFIG before anything touches CUDA
    check_gpus(cfg, per_process=launched_by_torchrun())
    if launched_by_torchrun():
        world = int(os.environ["WORLD_SIZE"])
        check_world(cfg, world)  # the batches of torchrun's world, before any process group forms
        if world > 1 and not is_initialized():
            _init_group(cfg, "env://", int(os.environ["RANK"]), world, get_local_rank())
        _run_in_group(func, cfg)
        return
    if cfg.NUM_GPUS > 1 or cfg.NUM_SHARDS > 1:
        if cfg.NUM_GPUS < 1:
            raise ValueError("NUM_SHARDS > 1 needs NUM_GPUS >= 1 (for multi-process CPU runs use torchrun).")
        method = init_method or "tcp://localhost:9999"
        torch.multiprocessing.spawn(_spawned_worker, nprocs=cfg.NUM_GPUS, args=(func, cfg, method), daemon=False)
        return
    func(cfg)
