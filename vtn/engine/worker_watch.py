"""A loader worker that dies ends the run with one line instead of torch's traceback.

When the out-of-memory killer or a crash in a codec ends a DataLoader worker, torch raises a RuntimeError ("DataLoader
worker (pid 4242) is killed by signal: Killed.", or "... exited unexpectedly") in the main process, from its SIGCHLD
handler or from the loader; or the main process, receiving a batch whose tensors the dying worker shares, gets a
ConnectionResetError first. `worker_died` turns these into a `LoaderWorkerDied` that names the worker (its id and
pid, its split), the signal (SIGKILL: out of memory?), the last video it was given (build.WorkerSlots, written by the
worker before each item), what to change, and how the run goes on. A worker that the decode deadline's watchdog
ended (vtn/video/deadline.py: exit status HUNG_EXIT_CODE, its video quarantined) is said to be that.
"""

import os
import re
import signal
import time
from typing import Optional

from vtn.datasets.build import last_given, worker_pids
from vtn.datasets.quarantine import quarantine_path
from vtn.engine.checkpoint import list_checkpoints
from vtn.utils.errors import UserError, error_chain
from vtn.video.deadline import HUNG_EXIT_CODE

_KILLED = re.compile(r"DataLoader worker \(pid (\d+)\) is killed by signal: ([^.]*)\.")
_EXIT_CODE = re.compile(r"DataLoader worker \(pid (\d+)\) exited unexpectedly with exit code (-?\d+)")
_EXITED = re.compile(r"DataLoader worker \(pid\(s\) ([\d, ]+)\) exited unexpectedly")


class LoaderWorkerDied(UserError):
    """A DataLoader worker process died (a signal or an exit); the message names it, its last video and the fix."""


def signal_name(description: str) -> str:
    """SIGKILL for "Killed" (the strsignal text torch reports), the description itself when no signal has it."""
    for sig in signal.Signals:
        if signal.strsignal(sig) == description.strip():
            return sig.name
    return description.strip()


def parse_death(error: BaseException) -> Optional[tuple[int, str]]:
    """(pid, how it ended: "was killed by SIGKILL", "exited with status 1", "exited unexpectedly") of torch's error
    about a dead loader worker; None for any other error. The loader's "exited unexpectedly" is often raised from the
    SIGCHLD handler's error, which names the signal: the whole chain is read, the most telling message first."""
    texts = [str(e) for e in error_chain(error)]
    for text in texts:
        found = _KILLED.search(text)
        if found:
            return int(found.group(1)), f"was killed by {signal_name(found.group(2))}"
    for text in texts:
        found = _EXIT_CODE.search(text)
        if found:
            return int(found.group(1)), f"exited with status {found.group(2)}"
    for text in texts:
        found = _EXITED.search(text)
        if found:
            return int(found.group(1).split(",")[0]), "exited unexpectedly"
    return None


LOADER_ERRORS = (RuntimeError, OSError, EOFError)
"""What the main process may raise when a loader worker dies (the callers catch these and ask `worker_died`)."""


def exit_status(pid: int) -> Optional[str]:
    """How child process `pid` ended ("was killed by SIGKILL", "exited with status 3"), read without reaping it;
    None while it runs, once it was reaped, or for a process that is not a child of this one."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except (OSError, AttributeError):  # not our child, or already reaped; no waitid on this system
        return None
    if info is None or info.si_pid == 0:
        return None
    if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED):
        return f"was killed by {signal.Signals(info.si_status).name}"
    return f"exited with status {info.si_status}"


def find_dead_worker(wait_s: float = 2.0) -> Optional[tuple[int, str]]:
    """(pid, how it ended) of a worker of the live loaders that has ended, waiting up to `wait_s` seconds for one
    that is ending (its connections close before it is gone); None when all of them run."""
    deadline = time.monotonic() + wait_s
    while True:
        for pid in worker_pids():
            how = exit_status(pid)
            if how is not None:
                return pid, how
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def memory_advice(cfg, split: str) -> str:
    """What makes loader workers hold less: fewer of them, fewer batches ahead (DATA_LOADER.PREFETCH where the
    config has it, else smaller training batches with more accumulation), no whole-video decode for testing."""
    loader = cfg.DATA_LOADER
    fixes = [f"fewer DATA_LOADER.NUM_WORKERS (now {loader.NUM_WORKERS})"]
    if "PREFETCH" in loader:
        fixes.append(f"a smaller DATA_LOADER.PREFETCH (now {loader.PREFETCH})")
    elif split == "train":
        fixes.append(
            f"a smaller TRAIN.BATCH_SIZE (now {cfg.TRAIN.BATCH_SIZE}) with more TRAIN.ACCUMULATION_STEPS (the same "
            "effective batch)"
        )
    if split != "train" and cfg.DATA.DECODE_VIDEO_ONCE:
        fixes.append("DATA.DECODE_VIDEO_ONCE False (a whole decoded video per worker)")
    return ", ".join(fixes)


CRASH_SIGNALS = ("SIGSEGV", "SIGABRT", "SIGFPE", "SIGILL")


def cause_and_fix(how: str, cfg, split: str) -> tuple[str, str]:
    """(the likely cause, in brackets, and what to do) for a worker that ended as `how` (`parse_death`'s words)."""
    if how == f"exited with status {HUNG_EXIT_CODE}":  # vtn/video/deadline.py's watchdog ended it
        where = quarantine_path(cfg.OUTPUT_DIR) or "the quarantine"
        return (
            " (a decoding call of its video never returned: the DATA.DECODE_TIMEOUT watchdog ended it)",
            f"That video is listed in {where} and is not decoded again",
        )
    if any(name in how for name in CRASH_SIGNALS):
        return " (a crash in native code, e.g. a video codec)", "Check that video with tools/check_dataset.py"
    cause = {"SIGKILL": " (out of memory?)", "SIGBUS": " (shared memory, /dev/shm, full?)"}
    found = next((text for name, text in cause.items() if name in how), "")
    if how == "exited unexpectedly":
        found = " (killed, e.g. out of memory, or crashed)"
    return found, f"Use {memory_advice(cfg, split)}"


def resume_note(cfg) -> str:
    """How the same command goes on: from the newest checkpoint of OUTPUT_DIR when training resumes."""
    if not cfg.TRAIN.ENABLE:
        return "run the same command again"
    found = list_checkpoints(cfg.OUTPUT_DIR) if cfg.TRAIN.AUTO_RESUME else []
    if found:
        return f"run the same command again: it resumes from the last checkpoint, {found[-1][2]}"
    if cfg.TRAIN.AUTO_RESUME:
        return "run the same command again (no checkpoint was written yet: it starts from the beginning)"
    return "run the same command again with TRAIN.AUTO_RESUME True to resume from the last checkpoint"


def worker_died(error: BaseException, cfg) -> Optional[LoaderWorkerDied]:
    """The one-line error for torch's error about a dead loader worker (None for any other error, and for one that
    is already ours)."""
    if isinstance(error, UserError):
        return None
    parsed = parse_death(error)
    if parsed is None and any(isinstance(e, (ConnectionError, EOFError)) for e in error_chain(error)):
        parsed = find_dead_worker()  # a batch the dying worker shared could not be received
    if parsed is None:
        return None
    if parsed[1] == "exited unexpectedly":  # the loader's check: the signal when the worker was not reaped yet
        parsed = (parsed[0], exit_status(parsed[0]) or parsed[1])
    pid, how = parsed
    item = last_given(pid)
    split = item.split if item is not None else "train"
    who = f"loader worker {item.worker} (pid {pid}) of the {split} split" if item else f"a loader worker (pid {pid})"
    if item is None or item.path is None:
        video = "it had been given no video yet" if item else "its last video is unknown"
    else:
        video = f"its last video was {item.path}"
    cause, fix = cause_and_fix(how, cfg, split)
    return LoaderWorkerDied(f"{who} {how}{cause}; {video}. {fix}; then {resume_note(cfg)}")


def raise_if_worker_died(error: BaseException, cfg) -> None:
    """Raise `worker_died`'s one-line error (from `error`) when `error` is torch's about a dead loader worker."""
    died = worker_died(error, cfg)
    if died is not None:
        raise died from error
