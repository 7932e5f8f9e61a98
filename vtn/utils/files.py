"""Files that are whole or absent: atomic writes, one clear error for any failed write, and cleaning up what a
killed writer left behind."""

import contextlib
import errno
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from typing import IO, Callable, Optional

from vtn.utils.errors import DiskFullError, OutputWriteError, error_chain

TEMP_PREFIX = ".tmp-"
_FULL = (errno.ENOSPC, errno.EDQUOT)
_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (/proc), else set and put back."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def os_error_of(e: BaseException) -> Optional[OSError]:
    """The OSError behind `e`: `e` itself, or one it was raised from or while handling (torch's zip writer turns a
    failed write into `RuntimeError: [enforce fail at inline_container.cc...]` with the OSError as its context)."""
    for cause in error_chain(e):
        if isinstance(cause, OSError) and cause.errno is not None and not isinstance(cause, OutputWriteError):
            return cause
    return None


def write_error(path: str, e: OSError, what: str = "") -> OutputWriteError:
    """The one-line error of a failed write of `path` (`what`: how the user named it, e.g. '--output'): a full
    disk or quota says the free space; any other OS error (a file-size limit, a read-only or lost file system,
    EIO, no permission) says what the system said."""
    head = f"{what}: cannot write {path}" if what else f"cannot write {path}"
    kept = "" if what else "; the file was left as it was"
    if e.errno in _FULL:
        folder = os.path.dirname(os.path.abspath(path))
        while not os.path.isdir(folder):
            folder = os.path.dirname(folder)
        free = shutil.disk_usage(folder).free
        return DiskFullError(f"{head}: the disk is full ({free / 2**20:.0f} MiB free in {folder}){kept}")
    name = errno.errorcode.get(e.errno, str(e.errno))
    return OutputWriteError(f"{head}: {e.strerror or e} ({name}){kept}")


@contextlib.contextmanager
def writing(path: str, what: str = "") -> Iterator[None]:
    """Any OS error inside the block (also one wrapped by the library that wrote) becomes `write_error(path)`."""
    try:
        yield
    except OutputWriteError:
        raise
    except Exception as e:
        cause = os_error_of(e)
        if cause is None:
            raise
        raise write_error(path, cause, what) from e


def atomic_write(path: str, write: Callable[[IO], None], binary: bool = True) -> None:
    """`write(f)` into a temporary file in the same folder, flush and fsync, then rename over `path`.

    A crash or a full disk at any moment leaves either the old file or the new one, never half a file; any OS
    error ends in one `OutputWriteError` (a `DiskFullError` for a full disk or quota) naming `path`. The file gets
    the mode a plain `open` would give it (0666 less the umask), so teammates can read results.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        with writing(path):
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix=os.path.splitext(path)[1])
            os.fchmod(fd, 0o666 & ~current_umask())
            with os.fdopen(fd, "wb" if binary else "w") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            tmp = None
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(obj, path: str) -> None:
    """`obj` as indented JSON through `atomic_write`."""
    atomic_write(path, lambda f: json.dump(obj, f, indent=1), binary=False)


def check_writable(path: str, what: str) -> None:
    """Before any work: the file `path` (named `what`, e.g. '--output') can be created where it is to go: its
    folder exists or can be made, and a file can be written in it. An OutputWriteError names it otherwise."""
    if os.path.isdir(path):
        raise OutputWriteError(f"{what}: {path} is a folder; give the path of a file")
    folder = os.path.dirname(os.path.abspath(path))
    above = folder
    while not os.path.exists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        raise OutputWriteError(f"{what}: cannot write {path}: {above} is a file, not a folder")
    with writing(path, what):
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX)
        os.close(fd)
        os.unlink(probe)


def check_writable_dir(folder: str, what: str) -> None:
    """Before any work: the folder `folder` (named `what`, e.g. 'DATA.FEATURES_DIR') exists or can be made, and
    files can be written in it."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise OutputWriteError(f"{what}: {folder} is a file; give a folder")
    check_writable(os.path.join(folder, TEMP_PREFIX + "probe"), what)


def remove_temporaries(folder: str) -> None:
    """Delete the temporary files (and folders) named `.tmp-*` that a killed process left in `folder`."""
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.startswith(TEMP_PREFIX):
                path = os.path.join(folder, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
