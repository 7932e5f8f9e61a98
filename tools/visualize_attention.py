#!/usr/bin/env python
"""Draw the [CLS] token's first-layer attention over the frames of a video (the paper's Fig. 3):

    python tools/visualize_attention.py --cfg FILE --video path.mp4 --output attn.png [--frames 16]
        [--heads mean|all] [--layer 0] [KEY VALUE ...]
    python tools/visualize_attention.py --cfg FILE --csv DATA/val.csv --output-dir attention/ [--limit 20]

With --csv (Kinetics `path label` lines, paths resolved like the dataset's), one PNG per video.
"""
import os
import sys

from vtn.datasets.annotations import find_class_names, read_path_label_csv, resolve_path
from vtn.engine.demo import describe, load_predictor
from vtn.engine.launch import USER_ERRORS
from vtn.utils.cli import base_parser, config_from_args, parse
from vtn.visualization.attention import plot_attention


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--video", default="")
    parser.add_argument("--output", default="attention.png")
    parser.add_argument("--csv", default="", help="a csv of videos (path label per line)")
    parser.add_argument("--output-dir", default="attention")
    parser.add_argument("--limit", type=int, default=0, help="at most this many videos of the csv (0: all)")
    parser.add_argument("--frames", type=int, default=16, help="frames spread over the video (Fig. 3 uses 16)")
    parser.add_argument("--heads", choices=["mean", "all"], default="mean")
    parser.add_argument("--layer", type=int, default=0, help="Longformer layer (0 = the first)")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parse(parser, argv)
    try:
        cfg = config_from_args(args)
        if not args.video and not args.csv:
            parser.error("give --video or --csv")
        predictor = load_predictor(cfg)
        names = find_class_names(cfg)
        jobs = [(args.video, args.output)] if args.video else []
        if args.csv:
            paths, _ = read_path_label_csv(args.csv, cfg.DATA.PATH_LABEL_SEPARATOR, None if not names else
                                           {n: i for i, n in enumerate(names)})
            paths = paths[: args.limit] if args.limit else paths
            for p in paths:
                full = resolve_path(p, cfg.DATA.PATH_PREFIX, cfg.DATA.PATH_TO_DATA_DIR)
                jobs.append((full, os.path.join(args.output_dir, os.path.splitext(os.path.basename(p))[0] + ".png")))
        for video, out in jobs:
            pred = predictor.predict(video, num_frames=args.frames, return_attention=True)
            top = describe(pred, names, 1)[0]
            plot_attention(pred, out, f"{os.path.basename(video)}: {top}", args.heads, args.layer)
            print(f"{video} -> {out} ({top})")
    except USER_ERRORS as e:
        if os.environ.get("VTN_TRACEBACK"):
            raise
        sys.exit(f"visualize_attention: error: {e}")


if __name__ == "__main__":
    main()
