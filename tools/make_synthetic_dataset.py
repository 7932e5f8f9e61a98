#!/usr/bin/env python
"""Write the synthetic video dataset (Kinetics csv layout, real encoded videos) that the demo and tests use:

    python tools/make_synthetic_dataset.py --out data/synthetic [--workers 2] [KEY VALUE ...]
    python tools/make_synthetic_dataset.py --cfg configs/Synthetic/VTN_TINY.yaml
    python tools/make_synthetic_dataset.py --out data/my_videos --layout folder   # train/<class>/*.mp4 ...
    python tools/make_synthetic_dataset.py --long-video data/long.mp4 --classes square_growing,stripes

With --cfg, the SYNTHETIC settings and the folder (DATA.PATH_TO_DATA_DIR) come from the config; --out
overrides the folder. The same settings always give the same videos.
"""

import os
import time

from vtn.launch.cli import base_parser, config_from_args, parse, run_main


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser(
        "Write the synthetic video dataset (Kinetics csv layout, real encoded videos) that the demo and the tests use."
    )
    parser.add_argument("--out", default="", help="The output folder (default: DATA.PATH_TO_DATA_DIR of the config).")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="Videos encoded in parallel (default: up to 2).",
    )
    parser.add_argument(
        "--layout",
        default="csv",
        help="What to write: csv, the lists that TRAIN.DATASET synthetic reads (default); folder, the same "
        "videos as {train,val,test}/<class>/<name>.mp4 for TRAIN.DATASET folder.",
    )
    parser.add_argument(
        "--long-video",
        default="",
        metavar="PATH",
        help="Write only one video that shows each of --classes in turn (for timelines), instead of a dataset.",
    )
    parser.add_argument(
        "--classes",
        default="square_growing,stripes",
        help="Comma-separated classes of --long-video, in order (default: square_growing,stripes).",
    )
    parser.add_argument(
        "--segment-seconds", type=float, default=20.0, help="Seconds of each class in --long-video (default: 20)."
    )
    return parser


def make(cfg, out: str, workers: int, layout: str = "csv") -> None:
    from vtn.datasets.synthetic import CLASSES, SyntheticSpec, make_synthetic_dataset

    spec = SyntheticSpec.from_cfg(cfg)
    start = time.time()
    make_synthetic_dataset(out, spec, workers=workers, layout=layout)
    counts = {s: spec.per_class(s) * len(CLASSES) for s in ("train", "val", "test")}
    print(
        f"wrote {sum(counts.values())} videos ({counts}) of {len(CLASSES)} classes to {out} "
        f"in {time.time() - start:.1f} s"
    )


def main(argv=None):
    parser = build_parser()
    args = parse(parser, argv)

    def body():
        cfg = config_from_args(args)

        from vtn.datasets.synthetic import SyntheticSpec, make_long_video
        from vtn.utils.logging import setup_logging

        setup_logging()  # the progress lines on the console
        if args.long_video:
            classes = [c.strip() for c in args.classes.split(",") if c.strip()]
            make_long_video(args.long_video, classes, args.segment_seconds, SyntheticSpec.from_cfg(cfg))
            print(f"wrote {args.long_video}: {', '.join(classes)}, {args.segment_seconds:g} s each")
            return
        out = args.out or cfg.DATA.PATH_TO_DATA_DIR
        if not out:
            parser.error("give --out DIR or a config with DATA.PATH_TO_DATA_DIR")
        make(cfg, out, args.workers, args.layout)

    run_main("make_synthetic_dataset", body)


if __name__ == "__main__":
    main()
