"""The base class of errors caused by the user's input or machine (a config, a file, a dataset, the disk).

Tools print these as one clear line instead of a traceback (set VTN_TRACEBACK=1 to see the traceback);
anything else is a bug and keeps its traceback.
"""

from typing import Optional


def error_chain(error: Optional[BaseException]) -> list[BaseException]:
    """`error` and the errors it was raised from or while handling, outermost first (each once)."""
    chain = []
    while error is not None and not any(error is seen for seen in chain):
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


class UserError(Exception):
    """A problem the user can fix; the message names the thing and says what is expected."""


class ConfigError(UserError, ValueError):
    """A config file, override or value that cannot be used; the message says which and why."""


class DatasetError(UserError, ValueError):
    """A dataset that cannot be built as configured."""


class OutputDirError(UserError, OSError):
    """OUTPUT_DIR cannot hold the run's files."""


class OutputWriteError(OutputDirError):
    """A file could not be written (no permission, a file-size limit, a read-only file system, an I/O error); the
    message names the file and what the system said."""


class DiskFullError(OutputWriteError):
    """A write failed because its disk (or quota) is full; the message names the file and the free space."""
