"""Device timing and memory for the preflight: a call timed with the device synchronised, the peak memory of a
process (CUDA allocations or the CPU's peak RSS) and the memory the machine has left."""

import resource
import time
from collections.abc import Callable
from typing import Optional

import torch

from vtn.engine.trainer import synchronize


def timed(device: torch.device, func: Callable[[], object]) -> tuple[float, object]:
    """(seconds, result) of `func()`, with the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    result = func()
    synchronize(device)
    return time.perf_counter() - start, result


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak for `peak_memory_bytes` (CUDA; the CPU's peak RSS cannot be reset)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int:
    """CUDA: the most memory allocated on `device` since the last reset; CPU: the process's peak RSS (Linux
    reports ru_maxrss in KiB)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def mem_available_bytes(meminfo: str = "/proc/meminfo") -> Optional[int]:
    """MemAvailable of /proc/meminfo in bytes (None where there is no such file)."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
