#!/usr/bin/env python
"""Train and/or test a VTN, as PySlowFast's run_net.py:

    python tools/run_net.py --cfg configs/Kinetics/VIT_B_VTN.yaml [KEY VALUE ...]
    python tools/run_net.py --cfg FILE --num_shards 2 --shard_id 0 --init_method tcp://host:9999 [KEY VALUE ...]
    torchrun --nproc_per_node 8 tools/run_net.py --cfg FILE [KEY VALUE ...]

Phases follow TRAIN.ENABLE and TEST.ENABLE; see GETTING_STARTED.md.
"""

from vtn.launch.cli import add_launch_arguments, base_parser, config_from_args, launch_overrides, parse, run_main


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser("Train and test a Video Transformer Network.")
    add_launch_arguments(parser)
    return parser


def run(args) -> None:
    cfg = config_from_args(args, launch_overrides(args))

    from vtn.launch.processes import launch_job
    from vtn.launch.run import run_process

    launch_job(cfg, run_process, init_method=args.init_method)


def main(argv=None):
    parser = build_parser()
    args = parse(parser, argv)
    if not args.cfg_files and not args.all_opts:
        parser.error("give a config: --cfg FILE, e.g. --cfg configs/Synthetic/VTN_TINY.yaml (the demo)")
    run_main(
        "run_net",
        lambda: run(args),
        on_interrupt="run the same command again to continue from the newest checkpoint of OUTPUT_DIR",
    )


if __name__ == "__main__":
    main()
