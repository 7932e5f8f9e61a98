#!/usr/bin/env python
"""Draw training curves from json_stats.log to a PNG, without TensorBoard:

    python tools/plot_curves.py --log output/run/json_stats.log --output curves.png
    python tools/plot_curves.py --log a/json_stats.log --label learned --log b/json_stats.log --label uniform \
        --output fig4.png --title "learned vs uniform attention"
"""

import argparse

from vtn.launch.cli import run_main
from vtn.visualization.curves import plot_curves


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    p = argparse.ArgumentParser(
        description="Draw training curves (accuracy, loss, learning rate) from json_stats.log "
        "to a PNG, without TensorBoard."
    )
    p.add_argument(
        "--log", action="append", required=True, help="A json_stats.log of a training run; repeat to compare runs."
    )
    p.add_argument(
        "--label",
        action="append",
        default=None,
        help="A name per --log, in the same order (default: the folder of each log).",
    )
    p.add_argument("--output", required=True, help="The PNG file to write.")
    p.add_argument("--title", default="", help="A title above the three panels (default: none).")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    run_main("plot_curves", lambda: print(f"wrote {plot_curves(args.log, args.output, args.label, args.title)}"))


if __name__ == "__main__":
    main()
