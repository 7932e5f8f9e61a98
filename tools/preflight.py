#!/usr/bin/env python
"""Know before you launch: run the real config on the real devices and data for a few steps, then print the
step time and its split, throughput, peak memory and the projected epoch and run time, and write
OUTPUT_DIR/preflight.json (nothing else of OUTPUT_DIR is touched):

    python tools/preflight.py --cfg configs/Kinetics/VIT_B_VTN.yaml [--steps 30] [--find-batch] [KEY VALUE ...]
    torchrun --nproc_per_node 8 tools/preflight.py --cfg FILE [KEY VALUE ...]

See "Preflight" in GETTING_STARTED.md.
"""

from vtn.launch.cli import add_launch_arguments, base_parser, config_from_args, launch_overrides, parse, run_main
from vtn.launch.preflight import DEFAULT_CPU_STEPS, DEFAULT_STEPS, Options, preflight_main


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser("Measure a training config on the real devices and data, and project its run.")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"Training steps to measure; the first few are warm-up and left out of the medians (default: "
        f"{DEFAULT_STEPS} on a GPU, {DEFAULT_CPU_STEPS} on the CPU).",
    )
    parser.add_argument(
        "--find-batch",
        dest="find_batch",
        action="store_true",
        help="Also find the largest per-process training batch that fits: tried on CUDA, estimated on the CPU.",
    )
    add_launch_arguments(parser)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parse(parser, argv)
    if args.steps is not None and args.steps < 2:
        parser.error(f"--steps {args.steps}: expected at least 2 (the first steps are warm-up)")
    extra = launch_overrides(args)
    options = Options(steps=args.steps, find_batch=args.find_batch)
    run_main(
        "preflight",
        lambda: preflight_main(config_from_args(args, extra), options, init_method=args.init_method),
    )


if __name__ == "__main__":
    main()
