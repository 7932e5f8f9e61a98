#!/usr/bin/env python
"""Draw the [CLS] token's first-layer attention over the frames of a video (the paper's Fig. 3):

    python tools/visualize_attention.py --cfg FILE --video path.mp4 --output attn.png [--frames 16]
        [--heads mean|all] [--layer 0] [KEY VALUE ...]
    python tools/visualize_attention.py --cfg FILE --csv DATA/val.csv --output-dir attention/ [--limit 20]

With --csv (Kinetics `path label` lines, paths resolved like the dataset's), one PNG per video; --limit N
draws at most N of them, taken round-robin over the classes of the csv.
"""

import os

from vtn.launch.cli import base_parser, config_from_args, parse, run_main


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser(
        "Draw the [CLS] token's attention over the frames of a video, under a strip of the frames (the paper's Fig. 3)."
    )
    parser.add_argument("--video", default="", help="The video to draw (give --video or --csv).")
    parser.add_argument(
        "--output", default="attention.png", help="The PNG file to write for --video (default: attention.png)."
    )
    parser.add_argument("--csv", default="", help="A csv of videos (`path label` per line), drawn one PNG per video.")
    parser.add_argument(
        "--output-dir",
        default="attention",
        help="The folder of the PNGs of --csv, named after the videos (default: attention).",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=0,
        help="At most this many videos of the csv, taken round-robin over its classes (default: 0, all of them).",
    )
    parser.add_argument(
        "--frames", type=int, default=16, help="How many frames to spread over the video (default: 16, as in Fig. 3)."
    )
    parser.add_argument(
        "--heads",
        choices=["mean", "all"],
        default="mean",
        help="One heatmap row averaged over the heads, or one row per head with 'all' (default: mean).",
    )
    parser.add_argument(
        "--layer", type=int, default=0, help="The Longformer layer to draw, 0 being the first (default: 0)."
    )
    return parser


def main(argv=None):
    parser = build_parser()
    args = parse(parser, argv)
    if not args.video and not args.csv:
        parser.error("give --video or --csv")

    def draw():
        cfg = config_from_args(args)

        from vtn.datasets.annotations import find_class_names, read_path_label_csv, resolve_path
        from vtn.inference.demo import describe, load_predictor
        from vtn.visualization.attention import plot_attention, spread_over_classes

        predictor = load_predictor(cfg)
        names = find_class_names(cfg)
        jobs = [(args.video, args.output)] if args.video else []
        if args.csv:
            paths, labels = read_path_label_csv(
                args.csv, cfg.DATA.PATH_LABEL_SEPARATOR, None if not names else {n: i for i, n in enumerate(names)}
            )
            for p in (paths[i] for i in spread_over_classes(labels, args.limit)):
                full = resolve_path(p, cfg.DATA.PATH_PREFIX, cfg.DATA.PATH_TO_DATA_DIR)
                jobs.append((full, os.path.join(args.output_dir, os.path.splitext(os.path.basename(p))[0] + ".png")))
        for video, out in jobs:
            pred = predictor.predict(video, num_frames=args.frames, return_attention=True)
            top = describe(pred, names, 1)[0]
            plot_attention(pred, out, f"{os.path.basename(video)}: {top}", args.heads, args.layer)
            print(f"{video} -> {out} ({top})")

    run_main("visualize_attention", draw)


if __name__ == "__main__":
    main()
