"""Files that are whole or absent: atomic writes, and cleaning up what a killed writer left behind."""

import errno
import json
import os
import shutil
import tempfile
from typing import IO, Callable

from vtn.utils.errors import DiskFullError

TEMP_PREFIX = ".tmp-"


def atomic_write(path: str, write: Callable[[IO], None], binary: bool = True) -> None:
    """`write(f)` into a temporary file in the same folder, flush and fsync, then rename over `path`.

    A crash or a full disk at any moment leaves either the old file or the new one, never half a file.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(folder).free
            raise DiskFullError(
                f"cannot write {path}: the disk is full ({free / 2**20:.0f} MiB free in {folder}); "
                "the file was left as it was"
            ) from e
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json_atomic(obj, path: str) -> None:
    """`obj` as indented JSON through `atomic_write`."""
    atomic_write(path, lambda f: json.dump(obj, f, indent=1), binary=False)


def remove_temporaries(folder: str) -> None:
    """Delete the temporary files (and folders) named `.tmp-*` that a killed process left in `folder`."""
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.startswith(TEMP_PREFIX):
                path = os.path.join(folder, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
