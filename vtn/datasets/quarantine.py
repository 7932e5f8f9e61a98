"""OUTPUT_DIR/quarantine.txt: the videos a run never decodes again (DATA.DECODE_TIMEOUT).

A video whose decoding passed the deadline is appended here by the loader worker that abandoned it; the other
workers and ranks read the file again at each epoch start and every REFRESH_SECONDS (a `stat`, then only the bytes
appended since), a resumed run at its start, and `tools/check_dataset.py --quarantine FILE` writes the unreadable
and too slow videos it finds. A listed video is treated as unreadable at once: replaced in training, failed in
testing.

Format: one video per line, its name as the dataset lists it (a path or URL), a tab, and why (free text); blank lines
and lines that start with `#` are ignored, and a line without a tab is a name alone (a list written by hand).
Remove a line to let the next run try that video again. Several processes append at once: each takes an exclusive
lock on the file (flock), reads it, and appends in one write the lines of the videos not yet listed, so a video is
written once; readers drop repeats anyway (a file system without locks, lines added by hand).
"""

import fcntl
import logging
import os
import time
from collections.abc import Iterable
from typing import Optional

from vtn.video.types import VideoDecodeError

logger = logging.getLogger(__name__)

QUARANTINE_NAME = "quarantine.txt"
REFRESH_SECONDS = 10.0  # how often a process looks at the file between epoch starts
HEADER = "# Videos vtn never decodes again: path<TAB>why. Remove a line to let the next run try that video again.\n"


class QuarantinedVideo(VideoDecodeError):
    """A video listed in a quarantine file (`name`, `path`): treated as unreadable without being decoded."""

    def __init__(self, name: str, path: Optional[str]):
        super().__init__(f"{name}: listed in {path or 'the quarantine'}, not decoded again")
        self.name, self.path = str(name), path

    def __reduce__(self):
        return QuarantinedVideo, (self.name, self.path)


def quarantine_path(output_dir: str) -> Optional[str]:
    """OUTPUT_DIR/quarantine.txt, or None without an OUTPUT_DIR."""
    return os.path.join(output_dir, QUARANTINE_NAME) if output_dir else None


def parse_quarantine(text: str) -> dict[str, str]:
    """{name: why} of the lines of a quarantine file, each name once (its first line)."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, why = line.partition("\t")
        name = name.rstrip("\r") if why else name.strip()
        if name and name not in entries:
            entries[name] = why.strip()
    return entries


def read_quarantine(path: Optional[str]) -> dict[str, str]:
    """{name: why} of the quarantine file at `path` ({} when there is none)."""
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return parse_quarantine(f.read())
    except FileNotFoundError:
        return {}


def _writable(name: str) -> bool:
    return bool(name) and not any(c in name for c in "\t\n\r") and not name.startswith("#")


def append_quarantine(path: str, entries: Iterable[tuple[str, str]]) -> list[str]:
    """Append (name, why) entries that the file does not list yet, under its lock; the names written, in order.

    Names that cannot be written as a line (a tab or line break in them) are left out. Raises OSError when the
    file cannot be written."""
    entries = list(entries)
    if not entries:
        return []
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without locks: a video may be listed twice, which readers drop
            pass
        present = read_quarantine(path)
        lines, written = [HEADER] if os.fstat(fd).st_size == 0 else [], []
        for name, why in entries:
            name = str(name)
            if _writable(name) and name not in present:
                present[name] = why
                written.append(name)
                lines.append(f"{name}\t{' '.join(str(why).split())}\n")
        data = "".join(lines).encode("utf-8", errors="surrogateescape") if written else b""
        while data:  # one write for a few lines; a partial one (a full disk) goes on or raises
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)  # releases the lock
    return written


class Quarantine:
    """The quarantined videos of one process, read from `path` (None: kept in memory only), kept current by
    `refresh` and extended by `add`."""

    def __init__(self, path: Optional[str], period: float = REFRESH_SECONDS):
        self.path, self.period = path, period
        self.entries: dict[str, str] = {}
        self._where = (None, 0)  # (inode, bytes read) of the file: a refresh reads only what was appended
        self._checked = 0.0
        self._unwritable = False
        self.refresh(force=True)

    def __contains__(self, name) -> bool:
        return str(name) in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def __getstate__(self) -> dict:  # a spawned loader worker reads the file again from its start
        return {"path": self.path, "period": self.period, "entries": dict(self.entries)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["period"])
        self.entries.update(state["entries"])

    def refresh(self, force: bool = False) -> int:
        """Read what was appended to the file since the last read: at most every `period` seconds unless `force`.
        Returns how many videos were new here."""
        now = time.monotonic()
        if self.path is None or (not force and now - self._checked < self.period):
            return 0
        self._checked = now
        try:
            st = os.stat(self.path)
        except OSError:  # no file yet
            return 0
        inode, done = self._where
        if inode != st.st_ino or st.st_size < done:  # replaced or cut: read it all again
            done = 0
        if st.st_size == done:
            return 0
        try:
            with open(self.path, "rb") as f:
                f.seek(done)
                data = f.read(st.st_size - done)
        except OSError as e:
            logger.debug("%s could not be read: %s", self.path, e)
            return 0
        whole = data[: data.rfind(b"\n") + 1]  # a line still being written is read next time
        self._where = (st.st_ino, done + len(whole))
        before = len(self.entries)
        for name, why in parse_quarantine(whole.decode("utf-8", errors="surrogateescape")).items():
            self.entries.setdefault(name, why)
        return len(self.entries) - before

    def add(self, name, why: str) -> Optional[str]:
        """Quarantine a video here and in the file; returns the file it was written to (None: kept in memory only,
        when there is no OUTPUT_DIR, the folder does not exist, or the write failed, which is logged once)."""
        name = str(name)
        self.entries.setdefault(name, why)
        if self.path is None or not os.path.isdir(os.path.dirname(self.path) or "."):
            return None
        try:
            append_quarantine(self.path, [(name, why)])
        except OSError as e:
            if not self._unwritable:
                logger.warning("%s could not be written (%s): quarantined videos are kept in memory only", self.path, e)
            self._unwritable = True
            return None
        return self.path if _writable(name) else None
