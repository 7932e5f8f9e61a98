#!/usr/bin/env python
"""Classify a whole video with a trained VTN and print the top-5 classes:

    python tools/demo_net.py --cfg configs/Synthetic/VTN_TINY.yaml --video path.mp4 [--output out.mp4|out.png]
        [KEY VALUE ...]

The checkpoint is TEST.CHECKPOINT_FILE_PATH, else the newest one of OUTPUT_DIR (its path is printed). The video
streams through the backbone in chunks (TEST.FULL_VIDEO_FRAMES frames spread over the whole video; 0 = every
frame), so a long video needs no more memory than a short one. Works on CPU (NUM_GPUS 0).

`--timeline SECONDS` classifies consecutive windows of that length instead (DATA.NUM_FRAMES frames each, the
backbone once per frame; see vtn/inference/timeline.py), prints one line per window, writes their top-k to a CSV
(`--timeline-csv PATH`, else beside `--plot` with its name, `timeline.png` -> `timeline.csv`, or beside `--output`
as NAME.timeline.csv) and, with `--plot PATH`, a picture of the top classes' scores over time above a strip of
frames.
"""

from vtn.launch.cli import base_parser, config_from_args, parse, run_main
from vtn.utils.errors import ConfigError


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser("Classify a whole video with a trained VTN and print the top-5 classes.")
    parser.add_argument("--video", default="", help="The video to classify (default: DEMO.INPUT_VIDEO).")
    parser.add_argument(
        "--output",
        default="",
        help="Write the video (.mp4) or a strip of its frames (.png) with the prediction drawn on it.",
    )
    parser.add_argument("--top-k", type=int, default=None, help="How many classes to print (default: DEMO.TOP_K).")
    parser.add_argument(
        "--timeline",
        type=float,
        default=None,
        metavar="SECONDS",
        help="Classify consecutive windows of SECONDS each over the whole video (top-k per window).",
    )
    parser.add_argument("--timeline-csv", default="", help="With --timeline: the CSV of per-window top-k.")
    parser.add_argument(
        "--plot", default="", help="With --timeline: a PNG of the top classes' scores over time with a frame strip."
    )
    return parser


def main(argv=None):
    args = parse(build_parser(), argv)

    def demo():
        cfg = config_from_args(args)

        from vtn.inference.demo import run_demo, run_timeline

        if args.timeline is not None:
            video = args.video or cfg.DEMO.INPUT_VIDEO
            output = args.output or cfg.DEMO.OUTPUT_FILE
            run_timeline(cfg, video, args.timeline, args.timeline_csv, args.plot, args.top_k, output)
            return
        if args.timeline_csv or args.plot:
            raise ConfigError("--timeline-csv and --plot need --timeline SECONDS")
        run_demo(cfg, args.video or cfg.DEMO.INPUT_VIDEO, args.output or cfg.DEMO.OUTPUT_FILE, args.top_k)

    run_main("demo_net", demo)


if __name__ == "__main__":
    main()
