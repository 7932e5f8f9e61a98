"""Resizing a whole folder of videos (tools/resize_videos.py): the plan (what to do, what is done, what cannot be
done), the jobs run in this process or in worker processes that may die without taking the others along, and the
progress line. One video's resize is resize.py."""

import os
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from typing import Callable

from vtn.datasets.files import VIDEO_EXTENSIONS
from vtn.preparation.resize import ResizeError, ResizeOptions, describe_error, resize_video, temp_path
from vtn.utils.errors import UserError
from vtn.utils.logging import format_eta


@dataclass(frozen=True)
class Job:
    rel: str  # the input's path relative to the input folder
    src: str
    dst: str


@dataclass
class Plan:
    """The videos of an input folder: to resize, already done (skipped), and what cannot be done."""

    todo: list[Job] = field(default_factory=list)
    done: list[Job] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    ignored: int = 0  # files without a video extension


def _normalized_extensions(extensions: Iterable[str]) -> tuple[str, ...]:
    return tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def plan(input_dir: str, output_dir: str, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> Plan:
    """Walk `input_dir` (sorted, so the order is the same every run) and sort its files into a Plan. Raises a
    UserError when the folders cannot be used: a missing input, or an output inside the input (the outputs
    would be read as inputs by the next run)."""
    if not os.path.isdir(input_dir):
        raise UserError(f"--input {input_dir}: no such folder")
    if _inside(output_dir, input_dir):
        raise UserError(
            f"--output {output_dir} is inside --input {input_dir} (or the same folder): the next run would read "
            "the outputs as inputs; choose an output folder outside the input folder"
        )
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise UserError(f"--output {output_dir}: exists and is not a folder")
    exts = _normalized_extensions(extensions)
    result, claimed = Plan(), {}
    for root, dirs, files in os.walk(input_dir):
        dirs.sort()
        for name in sorted(files):
            src = os.path.join(root, name)
            rel = os.path.relpath(src, input_dir)
            if not name.lower().endswith(exts):
                result.ignored += 1
                continue
            dst = os.path.join(output_dir, os.path.splitext(rel)[0] + ".mp4")
            if dst in claimed:
                result.failed.append((rel, f"has the same output as {claimed[dst]} ({dst}); rename one of them"))
                continue
            claimed[dst] = rel
            job = Job(rel, src, dst)
            if os.path.exists(dst):
                result.done.append(job)
                if os.path.exists(temp_path(dst)):  # next to a finished output: a leftover of a killed run
                    os.unlink(temp_path(dst))
            else:
                result.todo.append(job)
    return result


@dataclass
class Outcome:
    rel: str
    ok: bool
    reason: str = ""
    seconds: float = 0.0


def _run_job(job: Job, options: ResizeOptions) -> Outcome:
    start = time.monotonic()
    try:
        resize_video(job.src, job.dst, options)
    except ResizeError as e:
        return Outcome(job.rel, False, str(e), time.monotonic() - start)
    except Exception as e:  # anything else FFmpeg or the disk raises: this video fails, the others go on
        return Outcome(job.rel, False, describe_error(e), time.monotonic() - start)
    return Outcome(job.rel, True, "", time.monotonic() - start)


def _run_parallel(jobs: Sequence[Job], options: ResizeOptions, workers: int):
    """Outcomes as the workers finish them. When a worker process dies, every video then pending is run again
    alone in a fresh process: the one that kills its process again fails, the others are resized."""
    context = get_context("fork")
    queue, suspects = deque(jobs), []
    while queue or suspects:
        if suspects:
            job = suspects.pop(0)
            with ProcessPoolExecutor(1, mp_context=context) as pool:
                try:
                    yield pool.submit(_run_job, job, options).result()
                except BrokenProcessPool:
                    if os.path.exists(temp_path(job.dst)):  # the half-written output of the dead process
                        os.unlink(temp_path(job.dst))
                    yield Outcome(job.rel, False, "the process resizing it died (a crash inside FFmpeg?)")
            continue
        pool = ProcessPoolExecutor(workers, mp_context=context)
        in_flight = {}
        try:
            while queue or in_flight:
                while queue and len(in_flight) < 2 * workers:
                    job = queue.popleft()
                    in_flight[pool.submit(_run_job, job, options)] = job
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    outcome = future.result()  # BrokenProcessPool when a worker died
                    del in_flight[future]
                    yield outcome
        except BrokenProcessPool:
            for future, job in in_flight.items():
                if future.done() and not future.cancelled() and future.exception() is None:
                    yield future.result()
                else:
                    suspects.append(job)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def run_jobs(
    jobs: Sequence[Job],
    options: ResizeOptions,
    workers: int = 1,
    log: Callable[[str], None] = print,
    progress_seconds: float = 5.0,
) -> list[Outcome]:
    """Resize every job (in this process with one worker, else in `workers` processes), logging a progress line
    at most every `progress_seconds`. Returns the outcomes in the order they finished."""
    options = options.resolved()
    if not options.threads:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        options = replace(options, threads=max(1, cpus // max(1, workers)))
    start = last = time.monotonic()
    outcomes = []
    results = map(lambda j: _run_job(j, options), jobs) if workers <= 1 else _run_parallel(jobs, options, workers)
    for outcome in results:
        outcomes.append(outcome)
        now = time.monotonic()
        if now - last >= progress_seconds and len(outcomes) < len(jobs):
            log(progress_line(len(outcomes), len(jobs), sum(not o.ok for o in outcomes), now - start))
            last = now
    return outcomes


def progress_line(done: int, total: int, failed: int, seconds: float) -> str:
    rate = done / seconds if seconds > 0 else 0.0
    eta = format_eta((total - done) / rate) if rate > 0 else "?"
    return f"{done}/{total} videos ({failed} failed), {rate:.2f} videos/s, ETA {eta}"
