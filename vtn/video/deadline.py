"""A deadline on decoding one video (DATA.DECODE_TIMEOUT), in the main process and in DataLoader workers.

`with decode_deadline(seconds, name, on_hung):` around the decoding of one video; inside it, `check_deadline()`
raises `DecodeTimeout` (a VideoDecodeError naming the video and the seconds) once the time is up. Three layers,
because no single one covers every way a decode can take too long:

1. Cooperative checks. The decoder calls `check_deadline()` after each FFmpeg call of its loops (the open, each
   packet read by a probe, the seek, each packet decoded, each frame converted). One such call on a playable
   stream is short (a frame, even of an 8K video, decodes in well under a second), so a video that is slow because
   of how much there is to decode (a huge resolution or frame rate, a keyframe far back, thousands of frames before
   the clip) is abandoned within the deadline plus one call. It works whether PyAV holds the GIL during its calls
   or not (PyAV 18 releases it in decoding, seeking, reading and scaling): the check runs between calls. This is
   the layer a real slow file exercises (tests/video/test_deadline.py: a 4096x2160 H.264 file at 250 fps, whose
   clips take seconds to decode, is abandoned a few tens of milliseconds after a 0.5 s deadline).
2. A watchdog thread, in loader workers only. A single call that has not returned `grace` seconds after the
   deadline (a read that stalls on a network file system or an object store, a codec that loops) cannot be
   interrupted from Python: the worker's main thread is inside C. When that call leaves the GIL free (PyAV's
   FFmpeg calls do, and so does a Python read waiting on a socket), the watchdog thread runs: it quarantines the
   video (`on_hung`), says so in one log line and ends the worker process with HUNG_EXIT_CODE. The run then
   ends (a DataLoader cannot replace a worker), and the same command resumes it from the last checkpoint without
   that video.
3. faulthandler, in loader workers only. A call that holds the GIL and never returns stops the watchdog thread
   too; faulthandler's C thread, armed `grace` seconds after the watchdog's time, prints every thread's stack and
   ends the worker (exit status 1). The video is not quarantined then; the run's line about the dead worker names
   the video it was given.

Not used: SIGALRM (signal.setitimer). Its Python handler runs only once the main thread is back in the interpreter,
which is where the checks of (1) run anyway, so a C call that never returns never sees it; and the exception it
would raise at an arbitrary line (inside a storage client's connection pool, in the `finally` that closes a
container) could leave a worker that goes on in a broken state.
Not covered: the main process (DATA_LOADER.NUM_WORKERS 0) has (1) only. Ending the training process over one
video would be worse than the hang, which the run's distributed timeouts report. (2) and (3) hold one timer per
process: faulthandler.dump_traceback_later is not used elsewhere in loader workers.
"""

import faulthandler
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

from vtn.video.types import VideoDecodeError

logger = logging.getLogger(__name__)

# The exit status of a loader worker that the watchdog ended (a decoding call that did not return).
HUNG_EXIT_CODE = 86
# The least time after the deadline before a call that has not returned counts as hung: longer than any single
# FFmpeg call on a playable stream, also on a loaded machine.
MIN_GRACE = 5.0


class DecodeTimeout(VideoDecodeError):
    """A video whose decoding took longer than DATA.DECODE_TIMEOUT; `name`, `seconds` (the limit), `elapsed`."""

    def __init__(self, name: str, seconds: float, elapsed: float):
        super().__init__(
            f"{name}: decoding took longer than DATA.DECODE_TIMEOUT = {seconds:g} s (abandoned after {elapsed:.2f} s)"
        )
        self.name, self.seconds, self.elapsed = str(name), float(seconds), float(elapsed)

    def __reduce__(self):
        return DecodeTimeout, (self.name, self.seconds, self.elapsed)


@dataclass
class _Job:
    """One video under a deadline."""

    name: str
    seconds: float
    start: float
    end: float  # the deadline (time.monotonic)
    hung_at: float = 0.0  # when a call that has not returned counts as hung (the watchdog's time)
    on_hung: Optional[Callable[[str, str], Optional[str]]] = field(default=None, repr=False)


_local = threading.local()  # the job of the thread that decodes (the main thread of a worker, or any thread)


def check_deadline() -> None:
    """Raise DecodeTimeout when this thread decodes under a deadline that has passed (nothing otherwise)."""
    job = getattr(_local, "job", None)
    if job is not None:
        now = time.monotonic()
        if now > job.end:
            raise DecodeTimeout(job.name, job.seconds, now - job.start)


def grace(seconds: float) -> float:
    """How long after a deadline of `seconds` a call that has not returned counts as hung."""
    return max(float(seconds), MIN_GRACE)


@contextmanager
def decode_deadline(
    seconds: float,
    name,
    on_hung: Optional[Callable[[str, str], Optional[str]]] = None,
    backstop: Optional[bool] = None,
) -> Iterator[None]:
    """Decode one video (`name`: its path or URL) under a deadline of `seconds` (0 or less: none).

    `backstop`: arm the watchdog and faulthandler (see the module); None arms them in DataLoader workers only.
    `on_hung(name, reason)` is called by the watchdog before it ends the worker; it returns where the video was
    quarantined (or None). A deadline inside another one leaves the outer one in force.
    """
    if not seconds or seconds <= 0 or getattr(_local, "job", None) is not None:
        yield
        return
    _load_decoder_libraries()
    start = time.monotonic()
    job = _Job(str(name), float(seconds), start, start + seconds, start + seconds + grace(seconds), on_hung)
    if backstop is None:
        backstop = _in_loader_worker()
    if backstop:
        _watchdog().arm(job)
        _arm_faulthandler(job.hung_at + grace(seconds) - start)
    _local.job = job
    try:
        yield
    finally:
        _local.job = None
        if backstop:
            _watchdog().disarm(job)
            faulthandler.cancel_dump_traceback_later()


def _load_decoder_libraries() -> None:
    """Import PyAV before the clock starts: its first import (FFmpeg's libraries, ~0.3 s) is not the video's."""
    import av  # noqa: F401


def _in_loader_worker() -> bool:
    from torch.utils.data import get_worker_info

    return get_worker_info() is not None


def _arm_faulthandler(delay: float) -> None:
    try:  # fd 2: sys.stderr may be a stream without a file descriptor (a captured one)
        faulthandler.dump_traceback_later(delay, exit=True, file=2)
    except (OSError, ValueError, RuntimeError) as e:  # no usable stderr: the watchdog thread still guards
        logger.debug("faulthandler could not be armed: %s", e)


class _Watchdog:
    """A daemon thread of this process that ends it when the armed job passes its `hung_at`."""

    def __init__(self):
        self.pid = os.getpid()
        self.cond = threading.Condition()
        self.job: Optional[_Job] = None
        self.thread = threading.Thread(target=self._run, name="vtn-decode-watchdog", daemon=True)
        self.thread.start()

    def arm(self, job: _Job) -> None:
        with self.cond:
            self.job = job
            self.cond.notify()

    def disarm(self, job: _Job) -> None:
        with self.cond:
            if self.job is job:
                self.job = None

    def _run(self) -> None:
        while True:
            with self.cond:
                job = self.job
                wait = None if job is None else job.hung_at - time.monotonic()
                if wait is None or wait > 0:
                    self.cond.wait(wait)
                    continue
                self.job = None
            _end_hung_worker(job)


_WATCHDOG: Optional[_Watchdog] = None


def _watchdog() -> _Watchdog:
    """This process's watchdog, started at its first use (a forked worker does not inherit its parent's thread)."""
    global _WATCHDOG
    if _WATCHDOG is None or _WATCHDOG.pid != os.getpid():
        _WATCHDOG = _Watchdog()
    return _WATCHDOG


def _end_hung_worker(job: _Job) -> None:
    """Quarantine the video of a call that has not returned, say so in one line, and end this process."""
    elapsed = time.monotonic() - job.start
    reason = (
        f"one decoding call had not returned {elapsed:.1f} s after the video's start (DATA.DECODE_TIMEOUT = "
        f"{job.seconds:g} s)"
    )
    where = None
    try:
        where = job.on_hung(job.name, reason) if job.on_hung is not None else None
    except Exception as e:  # the worker ends anyway; say why the video could not be quarantined
        reason += f"; it could not be quarantined ({e.__class__.__name__}: {e})"
    kept = f"; it is quarantined in {where}" if where else ""
    logger.error(
        "%s: %s%s. This loader worker (pid %d) ends with exit status %d; run the same command again to resume from "
        "the last checkpoint",
        job.name,
        reason,
        kept,
        os.getpid(),
        HUNG_EXIT_CODE,
    )
    log = logger
    while log is not None:  # os._exit skips the flush of buffered streams (stdout into a pipe)
        for handler in log.handlers:
            try:
                handler.flush()
            except Exception:
                pass
        log = log.parent
    os._exit(HUNG_EXIT_CODE)
