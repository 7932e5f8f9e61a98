"""Batch prediction over many videos (tools/predict.py): one row per video, resumable, never half-written.

Inputs: video files, folders (their videos, recursively) and CSV/TXT lists (the first field of each line is a
video path, relative to the list's folder when it is not found as given). The weights are found as the test
phase finds them and each video goes through the full-video protocol of streaming's VideoPredictor: the same
frames, preprocessing, chunks and model calls, split between two sides so that they overlap: DataLoader workers
(DATA_LOADER.NUM_WORKERS, set by --workers; 0: this process) decode, resize and crop the frames
(PredictFrames, extraction's VideoFrames), and this process normalises, embeds and classifies them.

Several processes (torchrun, or NUM_GPUS > 1 / --num_shards through launch_job) share the videos still to do
(rank::world of them); each appends its rows to its own partial file (`<output>.partial.<rank>` past rank 0)
and rank 0 writes the output from every process's rows, gathered, in the inputs' order.

The output (.csv or .jsonl) has one row per video: path, the top-k labels and scores, the frames used, the
video's duration and `status` (`ok`, or why the video failed: a bad video never stops the run). Rows are
appended to `<output>.partial` as each video finishes; at the end (or, with one process, on an interruption)
the output is rewritten atomically with its earlier rows and the new ones (in the inputs' order), and the
partial file removed. A rerun skips the
videos the output (or a partial file left by a crash) already has.

With `timeline` (--timeline SECONDS) each video gives one row per window of that many seconds instead
(vtn/inference/timeline.py's compute_timeline, the windows of demo_net.py --timeline): path, window, start_s, end_s,
the window's top-k labels and scores, its frames, the video's duration and `status`; a bad video gives one row
with an empty window and the reason. A video's rows are written together and it counts as done when any of its
rows is in the output; a crashed run's partial file gives the videos whose rows reach their end (others are redone).
Timelines go through the streaming VideoPredictor in each process (DATA_LOADER.NUM_WORKERS is not used).
"""

import csv
import functools
import json
import os
import sys
import time
from collections.abc import Iterator

import numpy as np
import torch

from vtn.datasets.files import VIDEO_EXTENSIONS
from vtn.engine import distributed as du
from vtn.engine.distributed import unwrap
from vtn.inference.extract import VideoFrames, frames_loader, normalize_frames
from vtn.inference.model import check_video, from_config
from vtn.inference.streaming import VideoPrediction, frame_indices
from vtn.inference.timeline import check_seconds, compute_timeline
from vtn.utils.errors import ConfigError, UserError
from vtn.utils.files import atomic_write, writing
from vtn.utils.logging import format_eta
from vtn.video.decoder import VideoDecodeError

FIELDS = ["path", "labels", "scores", "frames", "duration", "status"]
TIMELINE_FIELDS = ["path", "window", "start_s", "end_s", "labels", "scores", "frames", "duration", "status"]
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


def read_rows(path: str, fmt: str, partial: bool = False, fields: list = FIELDS) -> list[dict]:
    """The rows of an output (or partial) file of `fields` (FIELDS, or TIMELINE_FIELDS); a partial file's
    unfinished last line is dropped."""
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
        lines = [",".join(fields)] + lines  # the partial CSV has no header
    reader = csv.DictReader(lines)
    if lines and reader.fieldnames != fields:
        raise ConfigError(f"{path} is not a predictions file of tools/predict.py: its columns are not {fields}")
    return list(reader)


def _csv_line(row: dict) -> str:
    out = []
    w = csv.writer(_Lines(out), lineterminator="\n")
    w.writerow([row[k] for k in (TIMELINE_FIELDS if "window" in row else FIELDS)])
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


class PredictFrames(VideoFrames):
    """The decoding side of prediction, run in DataLoader workers: extraction's VideoFrames (decoded, resized,
    center-cropped uint8 pieces of VTN.BACKBONE_CHUNK_SIZE frames) with the frames of VideoPredictor
    (TEST.FULL_VIDEO_FRAMES spread over the video, repeats kept) and the API's errors: a missing file is
    `no such video file`, any error of the decoder is the video's `{"pos", "error"}`."""

    def indices(self, info) -> np.ndarray:
        return frame_indices(info, self.cfg.TEST.FULL_VIDEO_FRAMES)

    def pieces(self, decoder, pos: int, path: str) -> Iterator[dict]:
        try:
            check_video(path)
            yield from super().pieces(decoder, pos, path)
        except VideoDecodeError as e:
            yield {"pos": pos, "error": str(e)}
        except (OSError, ValueError, EOFError, RuntimeError) as e:  # PyAV's errors are OSError / ValueError
            yield {"pos": pos, "error": f"{path}: cannot be decoded ({e.__class__.__name__}: {e})"}


def _failed(path: str, e: Exception, timeline: bool = False) -> dict:
    """The row of a video that failed: its status says why (the path left out)."""
    reason = " ".join(str(e).split())
    reason = reason[len(path) + 2 :] if reason.startswith(f"{path}: ") else reason
    windowless = dict(window=None, start_s=None, end_s=None) if timeline else {}
    return dict(
        path=path, **windowless, labels=[], scores=[], frames=0, duration=0.0, status=reason or e.__class__.__name__
    )


def timeline_rows(model, path: str, seconds: float, topk: int) -> list[dict]:
    """The rows of one video's timeline (one per window, vtn/inference/timeline.py), or its one failure row."""
    try:
        result = compute_timeline(model.predictor, check_video(path), seconds)
        if not result.windows:
            raise VideoDecodeError("no window of the video could be decoded")
    except (UserError, RuntimeError, OSError, ValueError, EOFError) as e:  # never the end of the run
        if isinstance(e, (OSError, ValueError, EOFError)) and not isinstance(e, UserError):
            e = VideoDecodeError(f"{path}: cannot be decoded ({e.__class__.__name__}: {e})")
        return [_failed(path, e, timeline=True)]
    duration = round(float(result.duration), 3)
    rows = []
    for w in result.windows:
        top = w.topk(topk)
        rows.append(
            dict(
                path=path,
                window=w.index,
                start_s=round(w.start_s, 3),
                end_s=round(w.end_s, 3),
                labels=[model.label(c) for c, _ in top],
                scores=[round(float(s), 6) for _, s in top],
                frames=len(w.frame_idx),
                duration=duration,
                status="ok",
            )
        )
    return rows


def predict_row(model, video: dict, topk: int) -> dict:
    """The output row of one finished video, `{"path", "embeddings": [(t, D), ...], "frame_idx": [(t,), ...],
    "info"}` (its embedded pieces; the temporal encoder and head run here), or `{"path", "error"}`: then the
    row's `status` is why it failed."""
    path = video["path"]
    try:
        if "error" in video:
            raise VideoDecodeError(video["error"])
        net, device = unwrap(model.predictor.model), model.device
        emb, idx = torch.cat(video["embeddings"]), torch.cat(video["frame_idx"])
        with torch.no_grad():
            logits = net.forward_embeddings(emb[None], idx[None].to(device))
        p = VideoPrediction(path, video["info"], idx, emb.cpu(), logits[0].float().softmax(-1).cpu())
    except (UserError, RuntimeError, OSError, ValueError, EOFError) as e:  # never the end of the run
        return _failed(path, e)
    top = p.topk(topk)
    return dict(
        path=path,
        labels=[model.label(c) for c, _ in top],
        scores=[round(float(s), 6) for _, s in top],
        frames=len(p.frame_idx),
        duration=round(float(p.info.duration), 3),
        status="ok",
    )


def predicted_rows(model, videos: list[tuple[int, str]], topk: int) -> Iterator[tuple[int, dict]]:
    """`(position, row)` of each of `videos` `(position, path)` as it finishes. DATA_LOADER.NUM_WORKERS workers
    (0: this process) decode the videos (PredictFrames); this process normalises each piece on the model's
    device and embeds it while the workers decode the next ones, exactly as VideoPredictor streams a video.
    With workers, videos finish out of order."""
    cfg, predictor = model.cfg, model.predictor
    net, device, mean, std = unwrap(predictor.model), model.device, cfg.DATA.MEAN, cfg.DATA.STD
    paths = dict(videos)
    under_way: dict[int, dict] = {}
    dataset = PredictFrames(cfg, videos, predictor.chunk)
    for item in frames_loader(cfg, videos, predictor.chunk, device, dataset):
        pos = int(item["pos"])
        video = under_way.setdefault(pos, {"path": paths[pos], "embeddings": [], "frame_idx": []})
        if "frames" in item:
            if "error" not in video:
                try:
                    with torch.no_grad():
                        clip = normalize_frames(item["frames"], mean, std, device)
                        video["embeddings"].append(net.embed_frames(clip))
                    video["frame_idx"].append(item["frame_idx"].long())
                except RuntimeError as e:  # the model fails on this video: its row says why
                    video["error"] = " ".join(f"{e.__class__.__name__}: {e}".split())
            continue
        del under_way[pos]
        if "error" in item:
            video["error"] = item["error"]
        elif "error" not in video:
            video["info"] = item["info"]
        yield pos, predict_row(model, video, topk)


def partial_path(output: str, rank: int = 0) -> str:
    """The file that process `rank` appends its finished rows to: `<output>.partial`, `<output>.partial.<rank>`."""
    return output + ".partial" + (f".{rank}" if rank else "")


def _partials(output: str) -> list[str]:
    """The partial files of `output` left by an earlier run (of any number of processes), rank 0's first."""
    folder, base = os.path.split(os.path.abspath(output))
    if not os.path.isdir(folder):
        return []
    found = []
    for name in os.listdir(folder):
        rest = name[len(base) + len(".partial") :] if name.startswith(base + ".partial") else None
        if rest == "" or (rest and rest[0] == "." and rest[1:].isdigit()):
            found.append((int(rest[1:]) if rest else 0, os.path.join(os.path.dirname(output), name)))
    return [p for _, p in sorted(found)]


def _row_text(row: dict, fmt: str) -> str:
    """A row read back from an output or partial file, written again as it was."""
    return _csv_text(row) if fmt == ".csv" else json.dumps(row) + "\n"


def _write_output(output: str, fmt: str, lines: list[str], fields: list = FIELDS) -> None:
    """Rewrite the output atomically with `lines` (each a formatted row, or a video's rows)."""

    def write(f) -> None:
        if fmt == ".csv":
            f.write(",".join(fields) + "\n")
        f.writelines(lines)

    atomic_write(output, write, binary=False)


def _finished_rows(path: str, fmt: str, fields: list) -> list[dict]:
    """The rows of a partial file; with timelines, only those of the videos whose rows reach the end of the video
    (a crash may have cut a video's rows short; a failure row is whole)."""
    rows = read_rows(path, fmt, partial=True, fields=fields)
    if fields is TIMELINE_FIELDS:
        whole = {
            r["path"] for r in rows if r["window"] in ("", None) or abs(float(r["end_s"]) - float(r["duration"])) < 2e-3
        }
        rows = [r for r in rows if r["path"] in whole]
    return rows


def _plan(inputs: list[str], output: str, fmt: str, fields: list = FIELDS) -> dict:
    """Rank 0's start: the rows of a crashed run's partial files join the output; then the videos, which of them
    are still to do `(position, path)`, and the output's rows (formatted)."""
    videos = collect_videos(inputs)
    partials = _partials(output)
    if partials:
        rows = read_rows(output, fmt, fields=fields) + [r for p in partials for r in _finished_rows(p, fmt, fields)]
        _write_output(output, fmt, [_row_text(r, fmt) for r in rows], fields)
        for p in partials:
            os.remove(p)
    earlier = read_rows(output, fmt, fields=fields)
    seen = {r["path"] for r in earlier}
    todo = [(i, v) for i, v in enumerate(videos) if v not in seen]
    return dict(total=len(videos), todo=todo, earlier=[_row_text(r, fmt) for r in earlier])


def _video_rows(model, videos: list[tuple[int, str]], topk: int, seconds) -> Iterator[tuple[int, list[dict]]]:
    """`(position, rows)` of each video as it finishes: its one row, or (with `seconds`) its timeline's rows."""
    if seconds:
        for pos, path in videos:
            yield pos, timeline_rows(model, path, seconds, topk)
    else:
        for pos, row in predicted_rows(model, videos, topk):
            yield pos, [row]


def _shared_plan(inputs: list[str], output: str, fmt: str, fields: list) -> dict:
    """Rank 0's `_plan`, given to every process; an error of the inputs or the output ends every process's run
    (with one process, as it was raised)."""
    rank, world = du.get_rank(), du.get_world_size()
    plan, error = None, None
    if rank == 0:
        try:
            plan = _plan(inputs, output, fmt, fields)
        except UserError as e:
            if world == 1:
                raise
            error = str(e)
    plan, error = du.broadcast_object((plan, error))
    if error:
        raise ConfigError(error)
    return plan


def _progress(stream, total: int, share: str, counts: dict):
    """`report(n)`, called as the n-th of `total` videos finishes: a progress line on `stream` for the first and
    the last video and at most one per PROGRESS_SECONDS in between."""
    start = last = time.perf_counter()

    def report(n: int) -> None:
        nonlocal last
        now = time.perf_counter()
        if n in (1, total) or now - last >= PROGRESS_SECONDS:
            last, per = now, (now - start) / n
            print(
                f"predict: {n}/{total} videos{share}, {counts['failed']} failed, {per:.2f} s/video, "
                f"eta {format_eta(per * (total - n))}",
                file=stream,
                flush=True,
            )

    return report


def _predict_share(model, mine, topk: int, seconds, fmt: str, partial: str, lines: list, counts: dict, report) -> None:
    """Predict this process's videos `mine` `(position, path)`: each video's rows are appended to `partial` as it
    finishes, and to `lines` `(position, text)`, its status counted in `counts` (ok / failed), then `report(n)`.
    `lines` and `counts` hold every finished video also when this stops on an error or an interruption."""
    with writing(partial):
        f = open(partial, "a", encoding="utf-8")
    with f:
        for n, (pos, rows) in enumerate(_video_rows(model, mine, topk, seconds), 1):
            text = "".join(format_row(row, fmt) for row in rows)  # a video's rows are written together
            with writing(partial):
                f.write(text)
                f.flush()
            lines.append((pos, text))
            counts["ok" if rows[0]["status"] == "ok" else "failed"] += 1
            report(n)


def _gather_output(output: str, fmt: str, fields: list, earlier: list, lines: list, counts: dict) -> None:
    """Several processes: every process's rows and counts gathered, the output written by rank 0 in the inputs'
    order, then each process's partial file removed (after the output holds every row)."""
    gathered = du.all_gather_object((lines, counts["ok"], counts["failed"]))
    counts["ok"], counts["failed"] = sum(g[1] for g in gathered), sum(g[2] for g in gathered)
    if du.get_rank() == 0:
        _write_output(output, fmt, earlier + [t for _, t in sorted(x for g in gathered for x in g[0])], fields)
    du.barrier()  # the output holds every row before any process removes its partial file
    os.remove(partial_path(output, du.get_rank()))


def run_predict(model, inputs: list[str], output: str, topk: int = 5, stream=None, timeline=None) -> dict:
    """Predict every video of `inputs` not yet in `output`; returns counts {total, skipped, ok, failed}.
    `timeline` (seconds): one row per window of each video instead (see the module's docstring).

    In a job of several processes (torchrun, launch_job) every process calls it: rank 0 reads the inputs and
    the output, each process predicts its share (rank::world of the videos still to do) into its own partial
    file, and rank 0 writes the output from every process's rows (gathered), in the inputs' order."""
    stream = stream or sys.stdout
    fmt = output_format(output)
    if topk < 1:
        raise ConfigError(f"--topk {topk}: give a positive number of classes")
    seconds = check_seconds(timeline) if timeline is not None else None
    fields = TIMELINE_FIELDS if seconds else FIELDS
    rank, world = du.get_rank(), du.get_world_size()
    plan = _shared_plan(inputs, output, fmt, fields)
    todo, total = plan["todo"], plan["total"]
    master = rank == 0
    counts = dict(total=total, skipped=total - len(todo), ok=0, failed=0)
    if counts["skipped"] and master:
        print(f"predict: {counts['skipped']} of {total} videos already in {output}: skipped", file=stream)
    mine = todo[rank::world]
    share = f" (this process's share of {world})" if world > 1 else ""
    report = _progress(stream, len(mine), share, counts) if master else (lambda n: None)
    partial = partial_path(output, rank)
    lines: list[tuple[int, str]] = []
    try:
        _predict_share(model, mine, topk, seconds, fmt, partial, lines, counts, report)
    finally:
        if world == 1:  # finished or interrupted: the output gets the finished rows; a rerun does the rest
            _write_output(output, fmt, plan["earlier"] + [t for _, t in sorted(lines)], fields)
            if os.path.exists(partial):
                os.remove(partial)
        # several processes: an error leaves the partial files, which the rerun's rank 0 takes in
    if world > 1:
        _gather_output(output, fmt, fields, plan["earlier"], lines, counts)
    if master:
        print(
            f"predict: wrote {output}: {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped",
            file=stream,
        )
    return counts


def prediction_job(cfg, inputs: list[str], output: str, topk: int, timeline=None) -> None:
    """What each process of tools/predict.py runs (through launch_job): the model on this process's device
    (NUM_GPUS 0: the CPU), then run_predict."""
    run_predict(from_config(cfg, du.device_for(cfg)), inputs, output, topk, timeline=timeline)


def prediction_job_for(inputs: list[str], output: str, topk: int, timeline=None):
    """`prediction_job` with its arguments bound: a picklable `func(cfg)` for launch_job's spawned processes."""
    return functools.partial(prediction_job, inputs=list(inputs), output=output, topk=topk, timeline=timeline)
