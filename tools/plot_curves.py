#!/usr/bin/env python
"""Draw training curves from json_stats.log to a PNG, without TensorBoard:

    python tools/plot_curves.py --log output/run/json_stats.log --output curves.png
    python tools/plot_curves.py --log a/json_stats.log --label learned --log b/json_stats.log --label uniform \
        --output fig4.png --title "learned vs uniform attention"
"""
import argparse
import sys

from vtn.visualization.curves import plot_curves


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--log", action="append", required=True, help="a json_stats.log; repeat to compare runs")
    p.add_argument("--label", action="append", default=None, help="a name per --log, in the same order")
    p.add_argument("--output", required=True, help="PNG file to write")
    p.add_argument("--title", default="")
    return p


def main(argv=None):
    p = build_parser()
    args = p.parse_args(argv)
    try:
        out = plot_curves(args.log, args.output, args.label, args.title)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"plot_curves: {e}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
