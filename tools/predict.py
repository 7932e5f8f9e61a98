#!/usr/bin/env python
"""Classify many videos with a trained VTN and write one row per video to a CSV or JSON-lines file:

    python tools/predict.py --cfg configs/Synthetic/VTN_TINY.yaml --input VIDEOS_DIR|LIST.csv|VIDEO...
        --output predictions.csv|predictions.jsonl [--topk 5] [KEY VALUE ...]

The checkpoint is found as the test phase finds it (TEST.CHECKPOINT_FILE_PATH, else OUTPUT_DIR's). Each row holds
the path, the top-k labels and scores, the frames used, the duration and a status (`ok` or why the video failed; a
bad video never stops the run). A rerun skips the videos already in the output, so an interrupted run resumes.
"""

from vtn.engine.cli import base_parser, config_from_args, parse, run_main


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser("Classify many videos with a trained VTN and write one row per video.")
    parser.add_argument(
        "--input",
        nargs="+",
        required=True,
        metavar="DIR|CSV|FILE",
        help="Videos to classify: video files, folders (their videos, recursively) or CSV/TXT lists of paths.",
    )
    parser.add_argument(
        "--output",
        required=True,
        help="The predictions file, .csv or .jsonl; the videos it already holds are skipped.",
    )
    parser.add_argument("--topk", type=int, default=5, help="How many classes to write per video (default: 5).")
    return parser


def main(argv=None):
    args = parse(build_parser(), argv)

    def predict():
        from vtn.api import from_config
        from vtn.engine.predict import output_format, run_predict

        output_format(args.output)  # a bad output fails before the model loads
        cfg = config_from_args(args)
        model = from_config(cfg, "cuda" if cfg.NUM_GPUS > 0 else "cpu")  # NUM_GPUS 0 runs on the CPU
        run_predict(model, args.input, args.output, args.topk)

    run_main("predict", predict, on_interrupt="rerun the same command to resume")


if __name__ == "__main__":
    main()
