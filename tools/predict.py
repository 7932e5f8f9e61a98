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
--timeline SECONDS writes one row per window of that many seconds of each video instead (window, start_s, end_s,
the window's top-k; the windows of demo_net.py --timeline), decoding in each process (--workers is not used).
"""

from vtn.launch.cli import add_launch_arguments, base_parser, config_from_args, launch_overrides, parse, run_main


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
        "DATA_LOADER.NUM_WORKERS; default: 0, decode in the process). It is not used with --timeline.",
    )
    parser.add_argument(
        "--timeline",
        type=float,
        default=None,
        metavar="SECONDS",
        help="Write one row per window of SECONDS of each video (columns path, window, start_s, end_s, labels, "
        "scores, frames, duration and status; a bad video gets one row with an empty window) instead of one row "
        "per video. Each video streams through the model in its process, as in tools/demo_net.py --timeline, "
        "so --workers is not used; several processes still share the videos.",
    )
    add_launch_arguments(parser)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parse(parser, argv, lists=["input"])

    def predict():
        from vtn.inference.predict import output_format, prediction_job_for
        from vtn.inference.timeline import check_seconds
        from vtn.launch.processes import launch_job
        from vtn.utils.files import check_writable

        output_format(args.output)  # a bad output or window fails before the model loads
        check_writable(args.output, "--output")
        if args.timeline is not None:
            check_seconds(args.timeline)
        cfg = config_from_args(args, ["DATA_LOADER.NUM_WORKERS", args.workers] + launch_overrides(args))
        job = prediction_job_for(args.input, args.output, args.topk, args.timeline)
        launch_job(cfg, job, init_method=args.init_method)

    run_main("predict", predict, on_interrupt="rerun the same command to resume")


if __name__ == "__main__":
    main()
