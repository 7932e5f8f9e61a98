#!/usr/bin/env python
"""Classify many videos with a trained VTN and write one row per video to a CSV or JSON-lines file:

    python tools/predict.py --cfg configs/Synthetic/VTN_TINY.yaml --input VIDEOS_DIR|LIST.csv|VIDEO...
        --output predictions.csv|predictions.jsonl [--topk 5] [--workers 4] [KEY VALUE ...]
    torchrun --nproc_per_node 8 tools/predict.py --cfg FILE --input ... --output ... NUM_GPUS 1 [KEY VALUE ...]

The checkpoint is found as the test phase finds it (TEST.CHECKPOINT_FILE_PATH, else OUTPUT_DIR's). Each row holds
the path, the top-k labels and scores, the frames used, the duration and a status (`ok` or why the video failed; a
bad video never stops the run). A rerun skips the videos already in the output, so an interrupted run resumes.
--workers N decodes in N DataLoader workers per process (it sets DATA_LOADER.NUM_WORKERS; default 0: in the
process) while the model runs; several processes (torchrun, or NUM_GPUS > 1 and --num_shards / --shard_id /
--init_method as tools/run_net.py) each take a share of the videos, and rank 0 writes the one output.
"""

from vtn.engine.cli import add_launch_arguments, base_parser, config_from_args, launch_overrides, parse, run_main


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
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="DataLoader workers that decode the videos while the model runs, per process (sets "
        "DATA_LOADER.NUM_WORKERS; default: 0, decode in the process).",
    )
    add_launch_arguments(parser)
    return parser


def main(argv=None):
    args = parse(build_parser(), argv)

    def predict():
        from vtn.engine.distributed import launch_job
        from vtn.engine.predict import output_format, prediction_job_for

        output_format(args.output)  # a bad output fails before the model loads
        cfg = config_from_args(args, ["DATA_LOADER.NUM_WORKERS", args.workers] + launch_overrides(args))
        launch_job(cfg, prediction_job_for(args.input, args.output, args.topk), init_method=args.init_method)

    run_main("predict", predict, on_interrupt="rerun the same command to resume")


if __name__ == "__main__":
    main()
