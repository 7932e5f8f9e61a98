"""Retries of remote requests with exponential backoff, and the per-process request counts (`stats`).

A request that fails for a reason that may pass (a reset or refused connection, a timeout, HTTP 500/502/503/504,
object-storage throttling, a body cut short) is tried again after a wait that doubles from VTN_STORAGE_BACKOFF
seconds (default 0.25, at most 8, with jitter so that loader workers do not retry in step), up to
VTN_STORAGE_RETRIES attempts in all (default 5); each retry is one WARNING line. Anything else (missing, denied,
a bad request) fails at once: the backend turns it into its own message. Each request waits at most
VTN_STORAGE_TIMEOUT seconds (default 60) for the server. `configure` sets these for the process.
"""

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional, TypeVar

from vtn.storage.backends import StorageError

logger = logging.getLogger(__name__)
T = TypeVar("T")
BACKOFF_CAP = 8.0  # seconds: the longest wait between two attempts


@dataclass
class RequestStats:
    """Remote requests of this process: made (each attempt), retried, failed after every retry, and bytes read."""

    requests: int = 0
    retries: int = 0
    failures: int = 0
    bytes_read: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, requests: int = 0, retries: int = 0, failures: int = 0, bytes_read: int = 0) -> None:
        with self.lock:
            self.requests += requests
            self.retries += retries
            self.failures += failures
            self.bytes_read += bytes_read

    def snapshot(self) -> dict:
        """The counts as a dict (a copy)."""
        with self.lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "failures": self.failures,
                "bytes_read": self.bytes_read,
            }

    def reset(self) -> None:
        with self.lock:
            self.requests = self.retries = self.failures = self.bytes_read = 0

    def after_fork(self) -> None:
        """A fresh lock in a forked child (the parent's may have been held by another thread at the fork)."""
        self.lock = threading.Lock()


stats = RequestStats()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=stats.after_fork)


@dataclass(frozen=True)
class Policy:
    """attempts: tries of one request in all; timeout: seconds to wait for the server per request; backoff: the
    first wait in seconds (doubled after each failure, at most BACKOFF_CAP)."""

    attempts: int = 5
    timeout: float = 60.0
    backoff: float = 0.25


_configured: dict = {}


def _env(name: str, default: float, cast):
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return cast(value)
    except ValueError:
        raise StorageError(f"{name}={value!r} is not a number (expected e.g. {default})") from None


def policy() -> Policy:
    """The process's policy: `configure`d values, else the VTN_STORAGE_* environment variables, else defaults."""

    def value(name: str, env: str, default, cast):
        return cast(_configured[name]) if name in _configured else _env(env, default, cast)

    return Policy(
        attempts=max(1, value("retries", "VTN_STORAGE_RETRIES", 5, int)),
        timeout=max(0.001, value("timeout", "VTN_STORAGE_TIMEOUT", 60.0, float)),
        backoff=max(0.0, value("backoff", "VTN_STORAGE_BACKOFF", 0.25, float)),
    )


def configure(retries=None, timeout=None, backoff=None) -> None:
    """Set the retry policy of this process (None keeps a value): `retries` attempts in all per request,
    `timeout` seconds per request, `backoff` seconds before the first retry."""
    for name, value in (("retries", retries), ("timeout", timeout), ("backoff", backoff)):
        if value is not None:
            _configured[name] = value


def reset_policy() -> None:
    """Forget `configure`d values: the environment variables and defaults hold again."""
    _configured.clear()


def reason(error: BaseException) -> str:
    """An exception as one short line: its type and message."""
    text = " ".join(str(error).split()) or "no details"
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(error).__name__}: {text}"


def wait_before(attempt: int, backoff: float) -> float:
    """Seconds to wait before attempt `attempt` + 1: the backoff doubled per failure, capped, with jitter."""
    return min(BACKOFF_CAP, backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def call(
    what: str,
    fn: Callable[[], T],
    transient: Callable[[BaseException], bool],
    give_up: Optional[Callable[[BaseException, int], str]] = None,
) -> T:
    """`fn()`, tried again while it fails with an error for which `transient(error)` is true, up to the policy's
    attempts; each attempt counts as a request. Other errors propagate at once. When the attempts run out, a
    StorageError: `give_up(last_error, attempts)` or "<what>: <reason> (after N attempts)"."""
    pol = policy()
    attempt = 0
    while True:
        attempt += 1
        stats.add(requests=1)
        try:
            return fn()
        except Exception as e:
            if not transient(e):
                raise
            if attempt >= pol.attempts:
                stats.add(failures=1)
                message = give_up(e, attempt) if give_up else f"{what}: {reason(e)} (after {attempt} attempts)"
                raise StorageError(message) from e
            wait = wait_before(attempt, pol.backoff)
            logger.warning(
                "%s: attempt %d of %d failed (%s); retrying in %.2f s", what, attempt, pol.attempts, reason(e), wait
            )
            stats.add(retries=1)
            time.sleep(wait)
