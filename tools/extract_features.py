#!/usr/bin/env python
"""Extract per-video frame embeddings into a feature cache (DATA.FEATURES_DIR), once per video:

    python tools/extract_features.py --cfg FILE [--splits train,val,test] [--checkpoint CKPT] [KEY VALUE ...]

Frames: DATA.FEATURES_FPS per second (>= the video's fps: every frame), else TEST.FULL_VIDEO_FRAMES spread
over the video. Videos: the splits of DATA.FEATURES_SOURCE (or TRAIN.DATASET / TEST.DATASET). The backbone is
the config's (pretrained weights, or RNG_SEED's random initialisation), or that of --checkpoint. Resumable:
run it again after an interruption and it does only what is missing. Then train and test on the cache with
TRAIN.DATASET features TEST.DATASET features VTN.FREEZE_BACKBONE True (see GETTING_STARTED.md).
"""

from vtn.datasets.build import SPLITS
from vtn.engine.cli import add_splits_argument, base_parser, config_from_args, parse, parse_splits, run_main


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser("Extract per-video frame embeddings into a feature cache (DATA.FEATURES_DIR), once per video.")
    add_splits_argument(parser, SPLITS, "extract")
    parser.add_argument("--checkpoint", default="", help="Take the backbone weights from this checkpoint.")
    return parser


def extract(args, splits) -> None:
    from vtn.engine.extract import extract_features
    from vtn.utils.logging import setup_logging

    cfg = config_from_args(args)
    setup_logging(cfg.DATA.FEATURES_DIR or None)
    results = extract_features(cfg, splits, args.checkpoint)
    for split, c in results.items():
        print(
            f"{split}: {c['videos']} videos: {c['extracted']} extracted, {c['cached']} already cached, "
            f"{c['failed']} failed"
        )
    print(f"feature cache: {cfg.DATA.FEATURES_DIR}")


def main(argv=None):
    parser = build_parser()
    args = parse(parser, argv)
    splits = parse_splits(parser, args, SPLITS)
    run_main("extract_features", lambda: extract(args, splits))


if __name__ == "__main__":
    main()
