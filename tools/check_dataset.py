#!/usr/bin/env python
"""Check a dataset before training: unreadable videos (with reasons), durations and an fps histogram.

    python tools/check_dataset.py --cfg configs/Kinetics/VIT_B_VTN.yaml DATA.PATH_TO_DATA_DIR /data/k400 \
        [--splits train val test]

Exits with status 1 when a video is unreadable (training would skip it with a warning).
"""
import sys

from vtn.datasets.check import format_report, scan_split
from vtn.utils.cli import base_parser, config_from_args, parse


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--splits", nargs="+", default=["train", "val", "test"], choices=["train", "val", "test"])
    return parser


def main(argv=None):
    parser = build_parser()
    args = parse(parser, argv)
    cfg = config_from_args(args)
    unreadable = 0
    for split in args.splits:
        report = scan_split(cfg, split)
        unreadable += len(report["unreadable"])
        print(format_report(report))
    sys.exit(1 if unreadable else 0)


if __name__ == "__main__":
    main()
