"""Where data lives: one API over local paths, `http(s)://` URLs and object storage (`s3://bucket/key`).

Every function takes a local path or a URL and dispatches on its scheme to a backend of `BACKENDS`
(backends.py: `file` for local paths, `s3` through boto3 with the standard AWS environment variables and config
files, `http`/`https` through requests, one keep-alive session per thread). Remote requests are retried with
backoff when they fail for a reason that may pass (retry.py) and counted (`stats`). `open_read` gives a seekable
file that reads a remote object with ranged requests (rangefile.py), which PyAV decodes without downloading the
whole file.
"""

from vtn.storage.api import (
    StorageError,
    exists,
    is_remote,
    isdir,
    isfile,
    join,
    listdir,
    open_read,
    open_text,
    read_bytes,
    remove,
    size,
    upload_file,
    walk_files,
    write_bytes,
)
from vtn.storage.backends import BACKENDS, NotFoundError, forget_backends
from vtn.storage.retry import configure, stats

__all__ = [
    "BACKENDS",
    "NotFoundError",
    "StorageError",
    "configure",
    "exists",
    "forget_backends",
    "is_remote",
    "isdir",
    "isfile",
    "join",
    "listdir",
    "open_read",
    "open_text",
    "read_bytes",
    "remove",
    "size",
    "stats",
    "upload_file",
    "walk_files",
    "write_bytes",
]
