#!/usr/bin/env python
"""Print a model's parameters (total, backbone, temporal encoder, head) and fvcore GFLOPs.

    python tools/model_info.py --cfg configs/Kinetics/VIT_B_VTN.yaml [--frames 16] [KEY VALUE ...]

Builds on the CPU with random weights (no download): the counts do not depend on the weights.
"""
from vtn.models import build_model
from vtn.utils.cli import base_parser, config_from_args, parse
from vtn.utils.model_stats import model_report


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=None, help="frames per view (default DATA.NUM_FRAMES)")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parse(parser, argv)
    cfg = config_from_args(args, ["NUM_GPUS", 0, "NUM_SHARDS", 1, "SHARD_ID", 0, "VTN.PRETRAINED", False,
                                  "VTN.PRETRAINED_PATH", ""])
    model = build_model(cfg)
    frames = args.frames or cfg.DATA.NUM_FRAMES
    print(model_report(model, cfg, frames, cfg.TEST.FULL_VIDEO_FRAMES))


if __name__ == "__main__":
    main()
