"""Backends of the storage API, one per URL scheme: `file` (local paths) here; `s3` and `http`/`https` in
s3.py and http.py. A backend implements the methods of `Backend`."""

import os
from typing import Optional

from vtn.utils.errors import UserError
from vtn.utils.files import atomic_write
from vtn.utils.registry import Registry

BACKENDS = Registry("storage backend")
BACKENDS.__doc__ = "URL scheme -> backend class (a subclass of Backend)."

REMOTE_SCHEMES = ("s3", "http", "https")


class StorageError(UserError, OSError):
    """A file or object that cannot be read or written (missing, unreachable, denied), after the retries."""


class NotFoundError(StorageError, FileNotFoundError):
    """The file or object (or its bucket) does not exist."""


def scheme_of(path: str) -> str:
    """`s3`, `http`, `https`, or `file` for a local path (also `file://...`)."""
    path = str(path)
    if "://" in path:
        scheme = path.split("://", 1)[0].lower()
        if scheme in REMOTE_SCHEMES or scheme == "file":
            return scheme
    return "file"


def is_remote(path) -> bool:
    """Whether `path` is a URL of object storage or http(s) (not a local path)."""
    return scheme_of(str(path)) != "file"


_instances: dict = {}


def backend_of(path: str) -> "Backend":
    """The backend for `path`'s scheme (one instance per scheme and process)."""
    scheme = scheme_of(path)
    key = (scheme, os.getpid())
    if key not in _instances:
        if scheme in ("s3", "http", "https") and scheme not in BACKENDS.names():
            from vtn.storage import http, s3  # noqa: F401  (register the remote backends)
        _instances[key] = BACKENDS.get(scheme)()
    return _instances[key]


def forget_backends() -> None:
    """Drop this process's backend instances: the next call makes new ones, which read the environment (endpoint,
    credentials) again."""
    _instances.clear()


class Backend:
    """What a storage backend does; paths are full paths or URLs of its scheme."""

    def exists(self, path: str) -> bool:
        return self.isfile(path) or self.isdir(path)

    def isfile(self, path: str) -> bool:
        raise NotImplementedError

    def isdir(self, path: str) -> bool:
        raise NotImplementedError

    def size(self, path: str) -> int:
        raise NotImplementedError

    def listdir(self, path: str) -> list[str]:
        raise NotImplementedError

    def walk_files(self, path: str) -> list[str]:
        raise NotImplementedError

    def read_range(self, path: str, start: int, end: Optional[int]) -> bytes:
        raise NotImplementedError

    def write_bytes(self, path: str, data: bytes) -> None:
        raise NotImplementedError

    def upload_file(self, local_path: str, path: str) -> None:
        raise NotImplementedError

    def remove(self, path: str) -> None:
        raise NotImplementedError


def local_path(path: str) -> str:
    """The file system path of a local path or `file://` URL."""
    return path[len("file://") :] if str(path).startswith("file://") else str(path)


_local = local_path


@BACKENDS.register_as("file")
class LocalBackend(Backend):
    """Local paths (and `file://` URLs)."""

    def isfile(self, path: str) -> bool:
        return os.path.isfile(_local(path))

    def isdir(self, path: str) -> bool:
        return os.path.isdir(_local(path))

    def size(self, path: str) -> int:
        try:
            return os.path.getsize(_local(path))
        except FileNotFoundError as e:
            raise NotFoundError(f"{path}: {e.strerror or e}") from e
        except OSError as e:
            raise StorageError(f"{path}: {e.strerror or e}") from e

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(_local(path)))
        except OSError as e:
            raise StorageError(f"{path}: cannot list the folder ({e.strerror or e})") from e

    def walk_files(self, path: str) -> list[str]:
        found = []
        for dirpath, dirnames, filenames in os.walk(_local(path)):
            dirnames.sort()
            found += [os.path.join(dirpath, n) for n in filenames]
        return sorted(found)

    def read_range(self, path: str, start: int, end: Optional[int]) -> bytes:
        try:
            with open(_local(path), "rb") as f:
                f.seek(start)
                return f.read() if end is None else f.read(max(0, end - start))
        except FileNotFoundError as e:
            raise NotFoundError(f"{path}: cannot be read ({e.strerror or e})") from e
        except OSError as e:
            raise StorageError(f"{path}: cannot be read ({e.strerror or e})") from e

    def write_bytes(self, path: str, data: bytes) -> None:
        atomic_write(_local(path), lambda f: f.write(data))

    def upload_file(self, local_path: str, path: str) -> None:
        import shutil

        target = _local(path)
        if not os.path.isfile(local_path):
            raise NotFoundError(f"{local_path}: cannot be uploaded to {path} (no such file)")
        if os.path.abspath(local_path) == os.path.abspath(target):
            return

        def copy(f):
            with open(local_path, "rb") as source:
                shutil.copyfileobj(source, f, 2**22)

        atomic_write(target, copy)

    def remove(self, path: str) -> None:
        try:
            os.remove(_local(path))
        except FileNotFoundError:
            pass
