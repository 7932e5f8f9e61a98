"""The failures a preflight reports as one line with exit status 1: what the user must act on before the run."""

from typing import Optional

import torch


class PreflightFailure(RuntimeError):
    """A measured reason the run would fail (out of memory, disk too small, a rank that does not answer): the
    tool prints it as one line and exits with status 1."""


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError)


def out_of_memory_failure(clips: int) -> PreflightFailure:
    """Out of memory in a training step of `clips` clips per process, with the ways to make it fit."""
    return PreflightFailure(
        f"out of memory at {clips} clips per process: lower TRAIN.BATCH_SIZE, use VTN.GRAD_CHECKPOINTING True (if "
        "the backbone supports it) or TRAIN.MIXED_PRECISION True, raise TRAIN.ACCUMULATION_STEPS to keep the "
        "effective batch, or run tools/preflight.py with --find-batch"
    )


def failure_line(error: BaseException) -> Optional[str]:
    """The one line of a PreflightFailure, also when it comes from a spawned process (whose exception reaches the
    parent as text); None for any other error."""
    if isinstance(error, PreflightFailure):
        return str(error)
    text = str(error)
    marker = "PreflightFailure: "
    if marker in text:
        return text[text.rindex(marker) + len(marker) :].strip().split("\n")[0]
    return None
