#!/usr/bin/env python
"""How long a tool takes to answer `--help` and to end on a bad config key: this checkout against another git
revision (extracted into a temporary folder), side by side, interleaved, medians of --repeats.

    python benchmarks/cli_startup.py                      # against the revision before issue 23 (52835db)
    python benchmarks/cli_startup.py --rev HEAD~3 --repeats 5

Each run is a fresh `python tools/<tool>.py ...` process with PYTHONPATH set to the checkout it times, so the
figures are what a user waits for, imports included.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ["run_net", "predict", "export_model", "demo_net", "extract_features", "check_dataset", "model_info"]
BAD_KEY = ["--cfg", "configs/Synthetic/VTN_TINY.yaml", "VTN.NUM_LAYRS", "2"]


def build_parser():
    parser = argparse.ArgumentParser(description="Time --help and a one-line config error of the tools.")
    parser.add_argument("--rev", default="52835db", help="The git revision to compare with (default: 52835db).")
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each command per checkout (default: 3).")
    return parser


def timed(root: str, argv: list) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, os.path.join(root, "tools", argv[0] + ".py"), *argv[1:]],
        cwd=root,
        env=dict(os.environ, PYTHONPATH=root),
        capture_output=True,
    )
    return time.perf_counter() - start


def main(argv=None):
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory() as old:
        archive = subprocess.run(["git", "archive", args.rev], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "x", "-C", old], input=archive, check=True)
        commands = [[tool, "--help"] for tool in TOOLS] + [["run_net", *BAD_KEY]]
        times = {}
        for _ in range(args.repeats):
            for command in commands:
                for name, root in ((args.rev, old), ("this checkout", REPO)):
                    times.setdefault((" ".join(command), name), []).append(timed(root, command))
    print(f"{'command':60s} {args.rev:>12s} {'this checkout':>14s}  ratio   (median of {args.repeats}, seconds)")
    for command in commands:
        text = " ".join(command)
        before, after = (statistics.median(times[(text, name)]) for name in (args.rev, "this checkout"))
        print(f"{text:60s} {before:12.2f} {after:14.2f}  {before / after:5.1f}x")


if __name__ == "__main__":
    main()
