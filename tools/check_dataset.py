#!/usr/bin/env python
"""Check a dataset before training, in any layout vtn reads: per split what is listed, present, missing and
unreadable (with reasons), the classes, and the spread of durations, frame rates and resolutions.

    python tools/check_dataset.py --cfg configs/Kinetics/VIT_B_VTN.yaml DATA.PATH_TO_DATA_DIR /data/k400 \
        [--splits train,val,test] [--workers 8] [--quarantine OUTPUT_DIR/quarantine.txt]

`--quarantine FILE` also decodes the centre clip of each video under DATA.DECODE_TIMEOUT and appends the unreadable
and too slow videos to FILE: a run whose OUTPUT_DIR holds it never decodes them.

Exits with status 1 when a video is unreadable or too slow (training would skip it with a warning), 2 on a user
error (e.g. a missing csv file). Missing videos (listed, not on disk) are reported, not an error: every Kinetics
download lacks some.
"""

import os

from vtn.config import SPLITS
from vtn.launch.cli import add_splits_argument, base_parser, config_from_args, parse, parse_splits, run_main


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser(
        "Check a dataset before training: listed, present, missing and unreadable videos per split, classes, "
        "durations, frame rates and resolutions."
    )
    add_splits_argument(parser, SPLITS, "check")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="Processes that probe videos (default: the CPU count, at most 8).",
    )
    parser.add_argument("--show", type=int, default=10, help="Missing and unreadable videos listed per split.")
    parser.add_argument(
        "--quarantine",
        metavar="FILE",
        default="",
        help="Also decode each video's centre clip under DATA.DECODE_TIMEOUT, and append the unreadable and too slow "
        "videos to FILE (e.g. OUTPUT_DIR/quarantine.txt: a run with that OUTPUT_DIR never decodes them).",
    )
    return parser


def check(cfg, splits, workers: int, show: int, quarantine: str = "") -> int:
    from vtn.datasets.quarantine import append_quarantine
    from vtn.preparation.check import Progress, format_report, scan_split

    bad = 0
    for split in splits:
        report = scan_split(cfg, split, workers, Progress(split), decode=bool(quarantine))
        bad += len(report["unreadable"]) + len(report["too_slow"])
        print(format_report(report, show), flush=True)
        if quarantine:
            written = append_quarantine(quarantine, report["quarantine"])
            listed = len(report["quarantine"]) - len(written)
            print(f"  quarantine: {len(written)} videos added to {quarantine} ({listed} listed already)", flush=True)
    return 1 if bad else 0


def main(argv=None):
    parser = build_parser()
    args = parse(parser, argv)
    splits = parse_splits(parser, args, SPLITS)
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    folder = os.path.dirname(os.path.abspath(args.quarantine)) if args.quarantine else ""
    if folder and not os.path.isdir(folder):
        parser.error(f"--quarantine {args.quarantine}: the folder {folder} does not exist")
    run_main("check_dataset", lambda: check(config_from_args(args), splits, args.workers, args.show, args.quarantine))


if __name__ == "__main__":
    main()
