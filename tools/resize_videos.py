#!/usr/bin/env python
"""Resize every video of a folder to a short side, as H.264 .mp4 files in the same layout (PyAV only, no ffmpeg
binary needed):

    python tools/resize_videos.py --input data/kinetics400/videos --output data/kinetics400/videos_320 \
        [--short-side 320] [--workers 2] [--keep-audio] [--crf 23]

Files with a video extension (any case) under --input are resized; other files are counted and ignored. Each
output keeps the input's relative path with the extension .mp4; the frame rate, frame count and duration are
kept (also for dropped frames and variable rates); a display rotation is applied to the pixels; audio is
dropped unless --keep-audio. The run is resumable: outputs are written under a temporary name and renamed when
complete, so a rerun skips every output that exists (to redo them with other settings, use a new --output).

Exits with status 1 when a video could not be resized (each is listed with the reason; the others are done),
2 on a user error (e.g. a missing --input folder).
"""

import argparse
import os
import sys
import time

from vtn.launch.cli import run_main
from vtn.preparation.resize import CODECS, X264_PRESETS, ResizeOptions
from vtn.preparation.resize_jobs import VIDEO_EXTENSIONS, plan, run_jobs

TOOL = "resize_videos"


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = argparse.ArgumentParser(
        description="Resize every video of a folder to a short side, as H.264 .mp4 files in the same layout. "
        "Outputs that exist are complete (written under a temporary name, then renamed) and are skipped: rerun "
        "the same command to resume. Frame rate, frame count and duration are kept; a display rotation is "
        "applied to the pixels; audio is dropped unless --keep-audio."
    )
    parser.add_argument("--input", required=True, metavar="DIR", help="The folder of videos, walked recursively.")
    parser.add_argument(
        "--output",
        required=True,
        metavar="DIR",
        help="The folder of the resized videos (created; not inside --input): the same relative paths, with the "
        "extension .mp4.",
    )
    parser.add_argument(
        "--short-side",
        type=int,
        default=320,
        metavar="PIXELS",
        help="The short side of the outputs in pixels, even (default: 320); the long side keeps the aspect ratio, "
        "rounded to even. Videos already at or below it keep their size (an odd side rounded down to even) and "
        "are re-encoded all the same, never upscaled.",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="Videos resized in parallel, one process each (default: 1); each process gives its decoder and "
        "encoder cpu_count / N threads.",
    )
    parser.add_argument(
        "--keep-audio",
        action="store_true",
        help="Keep the first audio stream, re-encoded to AAC (default: the outputs have no audio).",
    )
    parser.add_argument(
        "--crf",
        type=int,
        default=23,
        metavar="CRF",
        help="H.264 quality, 0 (lossless) to 51 (worst), as ffmpeg's -crf (default: 23). With the mpeg4 codec it "
        "sets a fixed quantiser instead (crf 23: q 5).",
    )
    parser.add_argument(
        "--preset",
        default="medium",
        choices=X264_PRESETS,
        metavar="PRESET",
        help=f"The libx264 speed / compression trade-off, as ffmpeg's -preset: {', '.join(X264_PRESETS)} (default: "
        "medium, as ffmpeg); faster presets such as veryfast take a fraction of the CPU time, at some loss of "
        "quality for the same --crf.",
    )
    parser.add_argument(
        "--codec",
        default="auto",
        choices=CODECS,
        help="The video encoder: auto (default) is libx264 when this PyAV build has it, else mpeg4.",
    )
    parser.add_argument(
        "--extensions",
        nargs="+",
        default=list(VIDEO_EXTENSIONS),
        metavar="EXT",
        help=f"The extensions of the videos to resize, any case (default: {' '.join(VIDEO_EXTENSIONS)}).",
    )
    return parser


def _log(line: str) -> None:
    print(f"{TOOL}: {line}", file=sys.stderr, flush=True)


def resize_folder(args) -> int:
    start = time.monotonic()
    options = ResizeOptions(args.short_side, args.crf, args.preset, args.codec, args.keep_audio).resolved()
    jobs = plan(args.input, args.output, args.extensions)
    _log(
        f"{len(jobs.todo)} videos to resize ({len(jobs.done)} already done, {jobs.ignored} non-video files "
        f"ignored) into {args.output}: {options.codec}, short side {options.short_side}, {args.workers} worker(s)"
    )
    outcomes = run_jobs(jobs.todo, options, args.workers, log=_log)
    failed = list(jobs.failed) + [(o.rel, o.reason) for o in outcomes if not o.ok]
    for rel, reason in failed:
        print(f"failed: {os.path.join(args.input, rel)}: {reason}")
    print(
        f"{TOOL}: resized {sum(o.ok for o in outcomes)}, skipped (already done) {len(jobs.done)}, failed "
        f"{len(failed)}, ignored non-video files {jobs.ignored}, {time.monotonic() - start:.1f} s"
    )
    return 1 if failed else 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.short_side < 2 or args.short_side % 2:
        parser.error("--short-side must be even and at least 2 (H.264 in 4:2:0 needs even sizes)")
    if not 0 <= args.crf <= 51:
        parser.error("--crf must be between 0 and 51")
    run_main(
        TOOL,
        lambda: resize_folder(args),
        on_interrupt="run the same command again to resume (finished videos are skipped)",
    )


if __name__ == "__main__":
    main()
