"""Batch prediction over many videos (tools/predict.py): one row per video, resumable, never half-written.

Inputs: video files, folders (their videos, recursively) and CSV/TXT lists (the first field of each line is a
video path, relative to the list's folder when it is not found as given). The weights are found as the test
phase finds them and each video goes through the full-video protocol (vtn.api, VideoPredictor).

The output (.csv or .jsonl) has one row per video: path, the top-k labels and scores, the frames used, the
video's duration and `status` (`ok`, or why the video failed: a bad video never stops the run). Rows are
appended to `<output>.partial` as each video finishes; at the end (or on an interruption) the output is
rewritten atomically with its earlier rows and the new ones, and the partial file removed. A rerun skips the
videos the output (or a partial file left by a crash) already has.
"""

import csv
import json
import os
import sys
import time

from vtn.datasets.files import VIDEO_EXTENSIONS
from vtn.utils.errors import ConfigError, UserError
from vtn.utils.files import atomic_write
from vtn.utils.logging import format_eta

FIELDS = ["path", "labels", "scores", "frames", "duration", "status"]
FORMATS = (".csv", ".jsonl")
LIST_EXTENSIONS = (".csv", ".txt")
PROGRESS_SECONDS = 10.0  # at most one progress line per this many seconds (and the first and last)


def output_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise ConfigError(f"--output {path}: give a .csv or .jsonl file")
    return ext


def _videos_in(folder: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(VIDEO_EXTENSIONS)]
    return found


def _videos_listed(path: str) -> list[str]:
    folder, videos = os.path.dirname(os.path.abspath(path)), []
    with open(path, encoding="utf-8") as f:
        for line in f:
            first = line.strip().split(",")[0].split()
            field = first[0].strip('"') if first else ""
            if not field or field.startswith("#") or field.lower() == "path":
                continue
            local = os.path.join(folder, field)
            videos.append(
                field if os.path.isabs(field) or os.path.exists(field) or not os.path.exists(local) else local
            )
    return videos


def collect_videos(inputs: list[str]) -> list[str]:
    """The videos of `inputs` in order, each once: files as given, folders' videos, lists' entries."""
    videos = []
    for item in inputs:
        if os.path.isdir(item):
            found = _videos_in(item)
            if not found:
                raise ConfigError(f"--input {item}: the folder holds no video ({', '.join(VIDEO_EXTENSIONS)})")
            videos += found
        elif item.lower().endswith(LIST_EXTENSIONS):
            if not os.path.isfile(item):
                raise ConfigError(f"--input {item}: the list does not exist")
            videos += _videos_listed(item)
        else:
            videos.append(item)  # a missing video is a failed row, not the end of the run
    return list(dict.fromkeys(videos))


def read_rows(path: str, fmt: str, partial: bool = False) -> list[dict]:
    """The rows of an output (or partial) file; a partial file's unfinished last line is dropped."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    if partial and text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    if fmt == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ConfigError(f"{path}, line {n}: not a JSON line of predictions ({e})") from e
        return rows
    lines = text.splitlines()
    if partial:
        lines = [",".join(FIELDS)] + lines  # the partial CSV has no header
    reader = csv.DictReader(lines)
    if lines and reader.fieldnames != FIELDS:
        raise ConfigError(f"{path} is not a predictions file of tools/predict.py: its columns are not {FIELDS}")
    return list(reader)


def _csv_line(row: dict) -> str:
    out = []
    w = csv.writer(_Lines(out), lineterminator="\n")
    w.writerow([row[k] for k in FIELDS])
    return out[0]


class _Lines:
    def __init__(self, out: list):
        self.out = out

    def write(self, s: str) -> None:
        self.out.append(s)


def format_row(row: dict, fmt: str) -> str:
    """One line of the output file."""
    if fmt == ".jsonl":
        return json.dumps(row) + "\n"
    flat = dict(row)
    flat["labels"] = "|".join(row["labels"])
    flat["scores"] = "|".join(f"{s:.6f}" for s in row["scores"])
    return _csv_line(flat)


def _csv_text(row: dict) -> str:
    """A row read back from a CSV file, written again as it was."""
    return _csv_line(row)


def predict_row(model, path: str, topk: int) -> dict:
    """The output row of one video: its predictions, or the reason it failed in `status`."""
    try:
        p = model.run(path)
    except (UserError, RuntimeError, OSError, ValueError, EOFError) as e:  # never the end of the run
        reason = " ".join(str(e).split())
        reason = reason[len(path) + 2 :] if reason.startswith(f"{path}: ") else reason
        return dict(path=path, labels=[], scores=[], frames=0, duration=0.0, status=reason or e.__class__.__name__)
    top = p.topk(topk)
    return dict(
        path=path,
        labels=[model.label(c) for c, _ in top],
        scores=[round(float(s), 6) for _, s in top],
        frames=len(p.frame_idx),
        duration=round(float(p.info.duration), 3),
        status="ok",
    )


def run_predict(model, inputs: list[str], output: str, topk: int = 5, stream=None) -> dict:
    """Predict every video of `inputs` not yet in `output`; returns counts {total, skipped, ok, failed}."""
    stream = stream or sys.stdout
    fmt = output_format(output)
    if topk < 1:
        raise ConfigError(f"--topk {topk}: give a positive number of classes")
    partial = output + ".partial"
    videos = collect_videos(inputs)
    if os.path.exists(partial):  # left by a crash: its finished rows join the output first
        _finish(output, partial, fmt, read_rows(output, fmt))
    earlier = read_rows(output, fmt)
    seen = {r["path"] for r in earlier}
    todo = [v for v in videos if v not in seen]
    counts = dict(total=len(videos), skipped=len(videos) - len(todo), ok=0, failed=0)
    if counts["skipped"]:
        print(f"predict: {counts['skipped']} of {len(videos)} videos already in {output}: skipped", file=stream)
    start = last = time.perf_counter()
    try:
        with open(partial, "a", encoding="utf-8") as f:
            for n, video in enumerate(todo, 1):
                row = predict_row(model, video, topk)
                f.write(format_row(row, fmt))
                f.flush()
                counts["ok" if row["status"] == "ok" else "failed"] += 1
                now = time.perf_counter()
                if n in (1, len(todo)) or now - last >= PROGRESS_SECONDS:
                    last, per = now, (now - start) / n
                    print(
                        f"predict: {n}/{len(todo)} videos, {counts['failed']} failed, {per:.2f} s/video, "
                        f"eta {format_eta(per * (len(todo) - n))}",
                        file=stream,
                        flush=True,
                    )
    finally:
        _finish(output, partial, fmt, earlier)
    print(
        f"predict: wrote {output}: {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped",
        file=stream,
    )
    return counts


def _finish(output: str, partial: str, fmt: str, earlier: list) -> None:
    """Rewrite the output atomically: its `earlier` rows, then the partial file's finished ones."""
    rows = earlier + read_rows(partial, fmt, partial=True)

    def write(f) -> None:
        if fmt == ".csv":
            f.write(",".join(FIELDS) + "\n")
        for r in rows:
            f.write(_csv_text(r) if fmt == ".csv" else json.dumps(r) + "\n")

    atomic_write(output, write, binary=False)
    if os.path.exists(partial):
        os.remove(partial)
