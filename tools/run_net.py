#!/usr/bin/env python
"""Train and/or test a VTN, as PySlowFast's run_net.py:

    python tools/run_net.py --cfg configs/Kinetics/VIT_B_VTN.yaml [KEY VALUE ...]
    python tools/run_net.py --cfg FILE --num_shards 2 --shard_id 0 --init_method tcp://host:9999 [KEY VALUE ...]
    torchrun --nproc_per_node 8 tools/run_net.py --cfg FILE [KEY VALUE ...]

Phases follow TRAIN.ENABLE and TEST.ENABLE; see GETTING_STARTED.md.
"""

from vtn.engine.cli import base_parser, config_from_args, parse, run_main
from vtn.engine.distributed import launch_job
from vtn.engine.run import run_process


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser("Train and test a Video Transformer Network.")
    parser.add_argument("--num_shards", type=int, default=None, help="Machines in the job (sets NUM_SHARDS).")
    parser.add_argument("--shard_id", type=int, default=None, help="Index of this machine (sets SHARD_ID).")
    parser.add_argument(
        "--init_method",
        default="tcp://localhost:9999",
        help="Rendezvous address of a multi-machine job, e.g. tcp://10.0.0.1:9999.",
    )
    return parser


def main(argv=None):
    args = parse(build_parser(), argv)
    extra = []
    if args.num_shards is not None:
        extra += ["NUM_SHARDS", args.num_shards]
    if args.shard_id is not None:
        extra += ["SHARD_ID", args.shard_id]
    run_main(
        "run_net",
        lambda: launch_job(config_from_args(args, extra), run_process, init_method=args.init_method),
        on_interrupt="run the same command again to continue from the newest checkpoint of OUTPUT_DIR",
    )


if __name__ == "__main__":
    main()
