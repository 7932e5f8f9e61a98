#!/usr/bin/env python
"""Check a dataset before training: unreadable videos (with reasons), durations and an fps histogram.

    python tools/check_dataset.py --cfg configs/Kinetics/VIT_B_VTN.yaml DATA.PATH_TO_DATA_DIR /data/k400 \
        [--splits train,val,test]

Exits with status 1 when a video is unreadable (training would skip it with a warning), 2 on a user error
(e.g. a missing csv file).
"""

from vtn.datasets.build import SPLITS
from vtn.datasets.check import format_report, scan_split
from vtn.engine.cli import add_splits_argument, base_parser, config_from_args, parse, parse_splits, run_main


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser(
        "Check a dataset before training: unreadable videos (with reasons), durations and an fps histogram."
    )
    add_splits_argument(parser, SPLITS, "check")
    return parser


def check(cfg, splits) -> int:
    unreadable = 0
    for split in splits:
        report = scan_split(cfg, split)
        unreadable += len(report["unreadable"])
        print(format_report(report))
    return 1 if unreadable else 0


def main(argv=None):
    parser = build_parser()
    args = parse(parser, argv)
    splits = parse_splits(parser, args, SPLITS)
    run_main("check_dataset", lambda: check(config_from_args(args), splits))


if __name__ == "__main__":
    main()
