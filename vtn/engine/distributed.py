"""Process groups and collective helpers.

Three ways to get a world of processes:
- `NUM_GPUS` > 1 and/or `NUM_SHARDS` > 1: `launch_job` spawns NUM_GPUS processes on this machine; machine
  `SHARD_ID` of `NUM_SHARDS` joins the others through `--init_method tcp://host:port` (PySlowFast's way).
- `torchrun` (or any launcher that sets RANK / WORLD_SIZE / LOCAL_RANK): one process per launch, `env://`.
- Neither: one process, no process group; every helper below then works as the identity.
GPUs use DIST_BACKEND (NCCL); CPU processes always use gloo.
"""

import datetime
import logging
import os
from typing import Callable, Optional

import torch
import torch.distributed as dist

from vtn.utils.errors import UserError

logger = logging.getLogger(__name__)


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
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """In-place sum over processes (returns the tensor)."""
    if is_initialized() and get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate along dim 0 the tensors of every process (sizes may differ along dim 0)."""
    if not is_initialized() or get_world_size() == 1:
        return tensor
    world = get_world_size()
    size = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = tensor.new_zeros((longest,) + tuple(tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts: list[torch.Tensor] = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])


def broadcast_object(obj, src: int = 0):
    if not is_initialized() or get_world_size() == 1:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def _init_group(cfg, init_method: str, rank: int, world: int, local_rank: int) -> None:
    backend = cfg.DIST_BACKEND if cfg.NUM_GPUS > 0 else "gloo"
    if cfg.NUM_GPUS > 0:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(
        backend=backend,
        init_method=init_method,
        world_size=world,
        rank=rank,
        timeout=datetime.timedelta(minutes=30),
    )


def _spawned_worker(local_rank: int, func: Callable, cfg, init_method: str) -> None:
    world = cfg.NUM_GPUS * cfg.NUM_SHARDS
    rank = cfg.SHARD_ID * cfg.NUM_GPUS + local_rank
    os.environ["LOCAL_RANK"] = str(local_rank)
    _init_group(cfg, init_method, rank, world, local_rank)
    try:
        func(cfg)
    finally:
        dist.destroy_process_group()


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
    check_gpus(cfg, per_process=launched_by_torchrun())
    if launched_by_torchrun():
        world = int(os.environ["WORLD_SIZE"])
        if world > 1 and not is_initialized():
            _init_group(cfg, "env://", int(os.environ["RANK"]), world, get_local_rank())
        try:
            func(cfg)
        finally:
            if is_initialized():
                dist.destroy_process_group()
        return
    if cfg.NUM_GPUS > 1 or cfg.NUM_SHARDS > 1:
        if cfg.NUM_GPUS < 1:
            raise ValueError("NUM_SHARDS > 1 needs NUM_GPUS >= 1 (for multi-process CPU runs use torchrun).")
        method = init_method or "tcp://localhost:9999"
        torch.multiprocessing.spawn(_spawned_worker, nprocs=cfg.NUM_GPUS, args=(func, cfg, method), daemon=False)
        return
    func(cfg)
