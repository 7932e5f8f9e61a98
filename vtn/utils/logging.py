"""Logging: human lines on stdout (and OUTPUT_DIR/stdout.log) from the master process, JSON lines in
OUTPUT_DIR/json_stats.log. Other processes only report warnings and errors."""

import datetime
import logging
import os
import sys
import time
from typing import Optional

import simplejson

from vtn.utils.files import atomic_write, writing

_FORMAT = "[%(asctime)s][%(levelname)s] %(name)s: %(message)s"
JSON_STATS_FILE = "json_stats.log"
# `logger.info(..., extra=FILE_ONLY)`: a record for OUTPUT_DIR/stdout.log only (e.g. the whole resolved config)
FILE_ONLY = {"file_only": True}


class _StdoutHandler(logging.StreamHandler):
    """Writes to `sys.stdout` as it is when a record is emitted, so that a tool run in-process (its `main(argv)`
    called by a script or a test) keeps logging after the caller swaps or closes the stdout it started with."""

    def __init__(self):
        super().__init__()

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def setup_logging(output_dir: Optional[str] = None, is_master: bool = True) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(logging.INFO if is_master else logging.WARNING)
    fmt = logging.Formatter(_FORMAT, datefmt="%m/%d %H:%M:%S")
    console = _StdoutHandler()
    console.setFormatter(fmt)
    console.addFilter(lambda record: not getattr(record, "file_only", False))
    root.addHandler(console)
    if output_dir and is_master:
        os.makedirs(output_dir, exist_ok=True)
        file_handler = logging.FileHandler(os.path.join(output_dir, "stdout.log"))
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)
    for noisy in ("fvcore", "iopath", "timm", "transformers", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _to_plain(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value


def log_json_stats(stats: dict, output_dir: Optional[str]) -> None:
    """Append one JSON object as a line to OUTPUT_DIR/json_stats.log (master process only)."""
    if not output_dir:
        return
    line = simplejson.dumps({k: _to_plain(v) for k, v in stats.items()}, sort_keys=False)
    path = os.path.join(output_dir, JSON_STATS_FILE)
    with writing(path):
        os.makedirs(output_dir, exist_ok=True)
        with open(path, "a") as f:
            f.write(line + "\n")


def truncate_json_stats(output_dir: str, position: float) -> int:
    """Drop the records of OUTPUT_DIR/json_stats.log after training position `position` (in epochs, their
    `epoch_float`): a run resumed from a checkpoint logs those iterations again. Returns how many were dropped."""
    path = os.path.join(output_dir, JSON_STATS_FILE)
    if not os.path.isfile(path):
        return 0
    with open(path) as f:
        lines = f.read().splitlines()
    kept = []
    for line in lines:
        try:
            record = simplejson.loads(line)
        except ValueError:
            record = {}
        if (
            not isinstance(record, dict) or record.get("epoch_float", 0) <= position + 1e-6
        ):  # epoch_float has 6 decimals
            kept.append(line)
    if len(kept) < len(lines):
        atomic_write(path, lambda f: f.write("".join(line + "\n" for line in kept)), binary=False)
    return len(lines) - len(kept)


def read_json_stats(path: str) -> list:
    """The JSON objects of a json_stats.log file (lines that do not parse are skipped)."""
    records = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("json_stats:"):
                line = line[len("json_stats:") :].strip()
            try:
                records.append(simplejson.loads(line))
            except ValueError:
                continue
    return records


_LOGGED_ONCE: set[tuple[str, str]] = set()


def log_once(logger: logging.Logger, level: int, message: str, key: Optional[str] = None) -> None:
    """Log `message` the first time this process sees it, or sees `key` when given (a fact about the data, e.g.
    which split stands in for another, that every build of a dataset would otherwise repeat)."""
    seen = (logger.name, message if key is None else key)
    if seen not in _LOGGED_ONCE:
        _LOGGED_ONCE.add(seen)
        logger.log(level, message)


def format_eta(seconds: float) -> str:
    """Seconds as H:MM:SS for progress lines."""
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


class Progress:
    """Counts the items of a loop done and says when its progress line is due: every `period` items, at the last
    one, and after `seconds` without a line (0: never by time)."""

    def __init__(self, total: int, period: int, seconds: float):
        self.total, self.period, self.seconds = total, period, seconds
        self.done = 0
        self.start = self.last_line = time.perf_counter()

    def step(self) -> bool:
        """One more item done; True when a line is due now."""
        self.done += 1
        now = time.perf_counter()
        late = self.seconds > 0 and now - self.last_line >= self.seconds
        if self.done % self.period == 0 or self.done == self.total or late:
            self.last_line = now
            return True
        return False

    @property
    def per_item(self) -> float:
        """Seconds per item so far."""
        return (self.last_line - self.start) / max(self.done, 1)

    @property
    def eta(self) -> str:
        """The time left at that pace (format_eta)."""
        return format_eta(self.per_item * (self.total - self.done))
