"""Retries of remote requests with exponential backoff, and the per-process request counts (`stats`).

PLACEHOLDER: the policy is completed with the remote backends."""

import threading
from dataclasses import dataclass, field


@dataclass
class RequestStats:
    """Remote requests of this process: made, retried, failed after every retry, and bytes read."""

    requests: int = 0
    retries: int = 0
    failures: int = 0
    bytes_read: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


stats = RequestStats()


def configure(retries=None, timeout=None, backoff=None) -> None:
    """Set the retry policy of this process (None keeps a value)."""
