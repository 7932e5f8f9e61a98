#!/usr/bin/env python
"""Write a split of a dataset (any layout vtn reads) as tar shards in the WebDataset layout, with an index:

    python tools/make_shards.py --cfg configs/Kinetics/VIT_B_VTN.yaml DATA.PATH_TO_DATA_DIR /data/k400 \
        --split train --output s3://bucket/k400-shards/train [--shard-size-mb 1000] [--workers 8] [--seed 0]

A sample is the video file's bytes (`<key>.mp4`, the source's extension) and `<key>.json` (label, class name,
source path, frame count, fps, duration); the videos are shuffled across the shards with --seed. --output is a
folder or an object-storage URL; `index.json` (shard names, sample counts, classes, the videos' fingerprint, the
unreadable and missing ones) is written last. Run it once per split into PREFIX/train, PREFIX/val and PREFIX/test.

The run is resumable: a shard appears under its name only whole, finished shards are never rewritten, and a rerun
of the same command redoes the rest. A rerun with another --seed, --shard-size-mb or other videos into the same
--output stops with an error before writing anything. Exits with status 1 when some videos were unreadable (they
are listed and left out; the shards are complete without them), 2 on a user error.
"""

import os
import sys

from vtn.launch.cli import base_parser, config_from_args, parse, run_main

TOOL = "make_shards"


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser(
        "Write a split of a dataset as tar shards in the WebDataset layout (the video's bytes and a json of its "
        "facts per sample), shuffled with a seed, with an index.json. Resumable: rerun the same command."
    )
    parser.add_argument("--split", required=True, choices=("train", "val", "test"), help="The split to write.")
    parser.add_argument(
        "--output",
        required=True,
        metavar="DIR_OR_URL",
        help="The folder or URL prefix (s3://bucket/prefix/train) of the split's shards and index.json.",
    )
    parser.add_argument(
        "--shard-size-mb",
        type=float,
        default=1000,
        metavar="MB",
        help="The most bytes of videos per shard, in MB of 10^6 bytes (default: 1000); a larger video is a shard "
        "alone. Large enough for long sequential reads: WebDataset recommends shards of hundreds of MB to a few GB.",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 1),
        metavar="N",
        help="Shards written in parallel, one process each (default: the CPU count, at most 8).",
    )
    parser.add_argument("--seed", type=int, default=0, help="The seed of the shuffle across shards (default: 0).")
    parser.add_argument("--show", type=int, default=10, help="Unreadable videos listed (default: 10).")
    return parser


def _log(line: str) -> None:
    print(f"{TOOL}: {line}", file=sys.stderr, flush=True)


def make_shards(args) -> int:
    from vtn.preparation.shards import write_shards

    cfg = config_from_args(args)
    report = write_shards(cfg, args.split, args.output, args.shard_size_mb, args.workers, args.seed, log=_log)
    print("\n".join(report.lines(args.show)), flush=True)
    return 1 if report.unreadable else 0


def main(argv=None):
    parser = build_parser()
    args = parse(parser, argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if not args.shard_size_mb > 0:
        parser.error("--shard-size-mb must be above 0")
    run_main(
        TOOL,
        lambda: make_shards(args),
        on_interrupt="run the same command again to resume (finished shards are kept)",
    )


if __name__ == "__main__":
    main()
