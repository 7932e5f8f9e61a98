#!/usr/bin/env python
"""Extract per-video frame embeddings into a feature cache (DATA.FEATURES_DIR), once per video:

    python tools/extract_features.py --cfg FILE [--splits train,val,test] [--checkpoint CKPT] [KEY VALUE ...]
    torchrun --nproc_per_node 8 tools/extract_features.py --cfg FILE NUM_GPUS 1 [KEY VALUE ...]

Decoding runs in DATA_LOADER.NUM_WORKERS loader workers per process, the backbone in the process (under
mixed precision on GPUs with TRAIN.MIXED_PRECISION True); several processes (torchrun, or NUM_GPUS > 1 and
--num_shards / --shard_id / --init_method as tools/run_net.py) each take a share of the videos. FEATURES.DTYPE
float16 stores half the bytes.
Frames: DATA.FEATURES_FPS per second (>= the video's fps: every frame), else TEST.FULL_VIDEO_FRAMES spread
over the video. Videos: the splits of DATA.FEATURES_SOURCE (or TRAIN.DATASET / TEST.DATASET). The backbone is
the config's (pretrained weights, or RNG_SEED's random initialisation), or that of --checkpoint. Resumable:
run it again after an interruption and it does only what is missing. Then train and test on the cache with
TRAIN.DATASET features TEST.DATASET features VTN.FREEZE_BACKBONE True (see GETTING_STARTED.md).
"""

from vtn.config import SPLITS
from vtn.launch.cli import (
    add_launch_arguments,
    add_splits_argument,
    base_parser,
    config_from_args,
    launch_overrides,
    parse,
    parse_splits,
    run_main,
)


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser("Extract per-video frame embeddings into a feature cache (DATA.FEATURES_DIR), once per video.")
    add_splits_argument(parser, SPLITS, "extract")
    parser.add_argument("--checkpoint", default="", help="Take the backbone weights from this checkpoint.")
    add_launch_arguments(parser)
    return parser


def extract(args, splits) -> None:
    from vtn.inference.extract import extraction_job_for
    from vtn.launch.processes import launch_job

    extra = launch_overrides(args)
    cfg = config_from_args(args, extra)
    launch_job(cfg, extraction_job_for(splits, args.checkpoint), init_method=args.init_method)


def main(argv=None):
    parser = build_parser()
    args = parse(parser, argv)
    splits = parse_splits(parser, args, SPLITS)
    run_main(
        "extract_features",
        lambda: extract(args, splits),
        on_interrupt="run the same command again: it extracts only what is missing",
    )


if __name__ == "__main__":
    main()
