#!/usr/bin/env python
"""Extract per-video frame embeddings into a feature cache (DATA.FEATURES_DIR), once per video:

    python tools/extract_features.py --cfg FILE [--splits train,val,test] [--checkpoint CKPT] [KEY VALUE ...]

Frames: DATA.FEATURES_FPS per second (>= the video's fps: every frame), else TEST.FULL_VIDEO_FRAMES spread
over the video. Videos: the splits of DATA.FEATURES_SOURCE (or TRAIN.DATASET / TEST.DATASET). The backbone is
the config's (pretrained weights, or RNG_SEED's random initialisation), or that of --checkpoint. Resumable:
run it again after an interruption and it does only what is missing. Then train and test on the cache with
TRAIN.DATASET features TEST.DATASET features VTN.FREEZE_BACKBONE True (see GETTING_STARTED.md).
"""
import os
import sys

from vtn.datasets.build import SPLITS
from vtn.engine.launch import USER_ERRORS
from vtn.utils.cli import base_parser, config_from_args, parse


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--splits", default=",".join(SPLITS), help="comma-separated splits to extract (default: all)")
    parser.add_argument("--checkpoint", default="", help="take the backbone weights from this checkpoint")
    return parser


def main(argv=None):
    args = parse(build_parser(), argv)
    try:
        from vtn.engine.extract import extract_features
        from vtn.utils.logging import setup_logging

        cfg = config_from_args(args)
        setup_logging(cfg.DATA.FEATURES_DIR or None)
        results = extract_features(cfg, [x for x in args.splits.split(",") if x], args.checkpoint)
    except USER_ERRORS as e:
        if os.environ.get("VTN_TRACEBACK"):
            raise
        sys.exit(f"extract_features: error: {e} (set VTN_TRACEBACK=1 for the traceback)")
    for split, c in results.items():
        print(f"{split}: {c['videos']} videos: {c['extracted']} extracted, {c['cached']} already cached, "
              f"{c['failed']} failed")
    print(f"feature cache: {cfg.DATA.FEATURES_DIR}")


if __name__ == "__main__":
    main()
