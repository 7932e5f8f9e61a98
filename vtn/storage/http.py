"""The `http` and `https` backends: files served over HTTP, read whole or by ranged requests (read-only).

Requests go through `requests` with one keep-alive connection pool per thread of each process (a loader worker
opens its own), retried and counted by retry.call. The size comes from HEAD, or from a one-byte ranged GET where
the server refuses HEAD. A server that ignores the Range header sends the whole file: the asked bytes are cut from
it (correct, only slower). URLs cannot be listed or written: a dataset that needs either lives on s3:// or a disk.
"""

import re
import threading
from typing import Optional

import requests
import urllib3.exceptions

from vtn.storage.backends import BACKENDS, Backend, NotFoundError, StorageError
from vtn.storage.retry import call, policy, reason, stats

TRANSIENT_STATUS = {429, 500, 502, 503, 504}
HEAD_REFUSED = {400, 403, 405, 501}  # statuses of servers (signed URLs, some CDNs) that take GET but not HEAD
CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class TransientStatus(Exception):
    """A response whose status may change when the request is made again (server error, throttling)."""


def transient(error: BaseException) -> bool:
    """Whether a failed request may succeed when made again: connection errors, timeouts, cut bodies, 5xx, 429."""
    return isinstance(
        error,
        (
            TransientStatus,
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            ConnectionError,
            TimeoutError,
        ),
    )


def _unreachable(error: BaseException) -> bool:
    """Whether no connection could be made (refused, unknown host, connect timeout), not one lost on the way."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    inner = error.args[0] if isinstance(error, requests.ConnectionError) and error.args else None  # MaxRetryError
    return isinstance(getattr(inner, "reason", None), urllib3.exceptions.NewConnectionError)


def _not_supported(path: str, what: str):
    return StorageError(f"http(s) URLs cannot be {what}: {path}; use s3:// or a local path")


@BACKENDS.register_as("https")
@BACKENDS.register_as("http")
class HTTPBackend(Backend):
    """`http://` and `https://` URLs of single files."""

    def __init__(self):
        self._local = threading.local()

    def session(self) -> requests.Session:
        """This thread's session (its connections are kept alive between requests)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["Accept-Encoding"] = "identity"  # byte offsets are those of the file itself
            self._local.session = session
        return session

    def send(self, method: str, url: str, headers: Optional[dict] = None, stream: bool = False):
        """The response to one request, retried while it fails for a reason that may pass (urllib3 raises on a
        body cut short of its Content-Length, which is retried too)."""
        timeout = policy().timeout

        def attempt():
            response = self.session().request(method, url, headers=headers, timeout=timeout, stream=stream)
            if response.status_code in TRANSIENT_STATUS:
                response.close()
                raise TransientStatus(f"HTTP {response.status_code} {response.reason}")
            return response

        return call(f"{url} ({method})", attempt, transient, lambda e, n: self._give_up(url, e, n))

    @staticmethod
    def _give_up(url: str, error: BaseException, attempts: int) -> str:
        if _unreachable(error):
            return f"cannot reach the server of {url}: {reason(error)} (after {attempts} attempts)"
        if isinstance(error, requests.Timeout):
            return f"{url}: no answer within {policy().timeout:g} s (after {attempts} attempts; VTN_STORAGE_TIMEOUT)"
        what = error if isinstance(error, TransientStatus) else reason(error)
        return f"{url}: the server kept failing ({what}) after {attempts} attempts"

    @staticmethod
    def _error(url: str, response) -> StorageError:
        status = response.status_code
        if status in (404, 410):
            return NotFoundError(f"{url} does not exist (HTTP {status})")
        if status in (401, 403):
            return StorageError(f"{url}: access denied (HTTP {status} {response.reason})")
        return StorageError(f"{url}: HTTP {status} {response.reason}")

    def _size_by_get(self, path: str) -> int:
        """The size from a one-byte ranged GET (for servers that refuse HEAD)."""
        response = self.send("GET", path, headers={"Range": "bytes=0-0"}, stream=True)
        response.close()
        match = CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if response.status_code == 206 and match and match.group(3) != "*":
            return int(match.group(3))
        if response.status_code == 200 and "Content-Length" in response.headers:
            return int(response.headers["Content-Length"])
        if response.status_code == 416:
            return 0  # no byte 0: an empty file
        if response.status_code >= 400:
            raise self._error(path, response)
        raise StorageError(f"{path}: the server gives no size (no Content-Length or Content-Range)")

    # ------------------------------------------------------------------ Backend
    def size(self, path: str) -> int:
        response = self.send("HEAD", path)
        if response.status_code == 200 and "Content-Length" in response.headers:
            return int(response.headers["Content-Length"])
        if response.status_code in (404, 410):
            raise self._error(path, response)
        return self._size_by_get(path)

    def isfile(self, path: str) -> bool:
        response = self.send("HEAD", path)
        if response.status_code in HEAD_REFUSED:
            try:
                self._size_by_get(path)
            except NotFoundError:
                return False
            return True
        if response.status_code in (404, 410):
            return False
        if response.status_code >= 400:
            raise self._error(path, response)
        return True

    def isdir(self, path: str) -> bool:
        return False

    def read_range(self, path: str, start: int, end: Optional[int]) -> bytes:
        if end is not None and end <= start:
            self.size(path)  # nothing to read, but a missing file is still an error
            return b""
        headers = None
        if start > 0 or end is not None:
            headers = {"Range": f"bytes={start}-" + ("" if end is None else str(end - 1))}

        response = self.send("GET", path, headers=headers)
        if response.status_code == 416:
            return b""  # `start` is at or past the end
        if response.status_code >= 400:
            raise self._error(path, response)
        data = response.content
        if response.status_code != 206 and headers is not None:  # the server ignored the range
            data = data[start:end]
        stats.add(bytes_read=len(data))
        return data

    def listdir(self, path: str) -> list[str]:
        raise _not_supported(path, "listed")

    def walk_files(self, path: str) -> list[str]:
        raise _not_supported(path, "listed")

    def write_bytes(self, path: str, data: bytes) -> None:
        raise _not_supported(path, "written")

    def upload_file(self, local_path: str, path: str) -> None:
        raise _not_supported(path, "written")

    def remove(self, path: str) -> None:
        raise _not_supported(path, "written")
