#!/usr/bin/env python
"""Print a model's parameters (total, backbone, temporal encoder, head) and fvcore GFLOPs.

    python tools/model_info.py --cfg configs/Kinetics/VIT_B_VTN.yaml [--frames 16] [KEY VALUE ...]

Builds on the CPU with random weights (no download): the counts do not depend on the weights.
"""

from vtn.launch.cli import base_parser, config_from_args, parse, run_main


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser("Print a model's parameters (total, backbone, temporal encoder, head) and fvcore GFLOPs.")
    parser.add_argument("--frames", type=int, default=None, help="Frames per view (default: DATA.NUM_FRAMES).")
    return parser


def report(args) -> None:
    cfg = config_from_args(
        args, ["NUM_GPUS", 0, "NUM_SHARDS", 1, "SHARD_ID", 0, "VTN.PRETRAINED", False, "VTN.PRETRAINED_PATH", ""]
    )
    from vtn.models import build_model
    from vtn.models.model_stats import model_report

    model = build_model(cfg)
    print(model_report(model, cfg, args.frames or cfg.DATA.NUM_FRAMES, cfg.TEST.FULL_VIDEO_FRAMES))


def main(argv=None):
    args = parse(build_parser(), argv)
    run_main("model_info", lambda: report(args))


if __name__ == "__main__":
    main()
