"""The storage functions: each takes a local path or a URL and asks the backend of its scheme."""

import io
import posixpath
from typing import IO, Optional

from vtn.storage.backends import (
    NotFoundError,
    StorageError,
    backend_of,
    forget_backends,
    is_remote,
    local_path,
    scheme_of,
)

__all__ = ["NotFoundError", "StorageError", "forget_backends", "is_remote"]


def join(base: str, *parts: str) -> str:
    """`base` joined with `parts`: with `/` for a URL, as os.path.join for a local path."""
    if is_remote(base):
        scheme, rest = base.split("://", 1)
        return f"{scheme}://" + posixpath.join(rest, *parts)
    import os

    return os.path.join(base, *parts)


def exists(path: str) -> bool:
    """Whether `path` is a file, or a folder (a prefix holding objects, for object storage)."""
    return backend_of(path).exists(path)


def isfile(path: str) -> bool:
    return backend_of(path).isfile(path)


def isdir(path: str) -> bool:
    return backend_of(path).isdir(path)


def size(path: str) -> int:
    """The size of the file in bytes (StorageError when it does not exist)."""
    return backend_of(path).size(path)


def listdir(path: str) -> list[str]:
    """The names (not paths) of the files and sub-folders of a folder or prefix, sorted."""
    return backend_of(path).listdir(path)


def walk_files(path: str) -> list[str]:
    """The paths of every file below a folder or prefix, at any depth, sorted."""
    return backend_of(path).walk_files(path)


def read_bytes(path: str, start: int = 0, end: Optional[int] = None) -> bytes:
    """Bytes `start` to `end` (exclusive; None: to the end of the file) of a file: one ranged request remotely."""
    return backend_of(path).read_range(path, start, end)


def open_read(path: str, block_size: int = 0, size: Optional[int] = None) -> IO[bytes]:
    """A seekable binary file to read: a local file as `open` gives it; a remote one read in blocks of
    `block_size` bytes (0: the default) by ranged requests, as the reader asks for them (rangefile.py).
    `size`: the remote file's size when the caller knows it (saves a request)."""
    if not is_remote(path):
        return open(local_path(path), "rb")
    from vtn.storage.rangefile import BLOCK_SIZE, RangeFile

    return RangeFile(path, block_size=block_size or BLOCK_SIZE, size=size)


def open_text(path: str, encoding: str = "utf-8", errors: str = "strict") -> IO[str]:
    """A text file to read (a remote one is read whole: annotation lists, indices)."""
    if not is_remote(path):
        return open(local_path(path), encoding=encoding, errors=errors, newline="")
    return io.TextIOWrapper(io.BytesIO(read_bytes(path)), encoding=encoding, errors=errors, newline="")


def write_bytes(path: str, data: bytes) -> None:
    """Write a whole file: atomically (a temporary file renamed) on local disk, one request remotely (an object
    appears whole or not at all)."""
    backend_of(path).write_bytes(path, data)


def upload_file(local_path: str, path: str) -> None:
    """Copy a local file to `path` (which may be local): whole or not at all under its name."""
    backend_of(path).upload_file(local_path, path)


def remove(path: str) -> None:
    """Delete a file (nothing when it does not exist)."""
    backend_of(path).remove(path)


def describe(path: str) -> str:
    """What `path` is read through, for messages: 'local disk', 's3', 'http'."""
    scheme = scheme_of(path)
    return "local disk" if scheme == "file" else scheme
