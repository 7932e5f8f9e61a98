#!/usr/bin/env python
"""Feature-extraction throughput (videos/s) with 0, 1 and 2 DataLoader decoding workers:

    python benchmarks/extract_features.py                   # the demo's backbone, 24 synthetic videos
    python benchmarks/extract_features.py --workers 0 2 --repeats 3

The extraction is the project's (vtn/inference/extract.py, what tools/extract_features.py runs): the workers
(DATA_LOADER.NUM_WORKERS; 0: in the main process) probe, decode, resize and center-crop each video, the main
process normalises and runs the backbone. Config: the demo's (configs/Synthetic/VTN_TINY.yaml: ResNet-10-T at
half width, 64x64 crops, TEST.FULL_VIDEO_FRAMES 250 frames per video, VTN.BACKBONE_CHUNK_SIZE 256) with random
weights, on the training split of a synthetic dataset generated into data_cache/bench_extract/ (4 videos per
class, 4-10 s). Each pass extracts every video into a fresh folder (worker start-up included); reported: the
median over --repeats passes of each setting, settings interleaved, and the load average.
"""

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(data_dir, features_dir, workers, per_class, dtype="float32"):
    from vtn.config import load_config

    opts = [
        "DATA.PATH_TO_DATA_DIR",
        data_dir,
        "DATA.FEATURES_DIR",
        features_dir,
        "DATA.FEATURES_SOURCE",
        "synthetic",
        "SYNTHETIC.TRAIN_PER_CLASS",
        per_class,
        "SYNTHETIC.VAL_PER_CLASS",
        1,
        "SYNTHETIC.TEST_PER_CLASS",
        1,
        "DATA_LOADER.NUM_WORKERS",
        workers,
        "FEATURES.DTYPE",
        dtype,
        "LOG_PERIOD",
        100000,
    ]
    return load_config(os.path.join(REPO, "configs", "Synthetic", "VTN_TINY.yaml"), opts)


def build_parser():
    """The command line of this benchmark (tests/test_docs.py parses the documented commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DATA_LOADER.NUM_WORKERS to time")
    parser.add_argument("--repeats", type=int, default=3, help="passes per setting (median reported)")
    parser.add_argument("--per-class", type=int, default=4, help="training videos per class (6 classes)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads of the main process (0: default)")
    parser.add_argument(
        "--data-dir",
        default=os.path.join(REPO, "data_cache", "bench_extract"),
        help="synthetic dataset folder (generated when missing)",
    )
    return parser


def main():
    args = build_parser().parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    from vtn.datasets.synthetic import ensure_synthetic_dataset
    from vtn.inference.extract import build_extraction_model, extract_features

    if args.threads:
        torch.set_num_threads(args.threads)
    ensure_synthetic_dataset(config(args.data_dir, "", 0, args.per_class))
    model = build_extraction_model(config(args.data_dir, "", 0, args.per_class))
    loads = [os.getloadavg()[0]]
    times = {w: [] for w in args.workers}
    videos = frames = 0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for w in args.workers:
                features_dir = os.path.join(tmp, f"w{w}-{r}")
                cfg = config(args.data_dir, features_dir, w, args.per_class)
                start = time.perf_counter()
                counts = extract_features(cfg, ["train"], model=model)["train"]
                times[w].append(time.perf_counter() - start)
                videos = counts["extracted"]
                if not frames:
                    frames = sum(
                        int(torch.load(os.path.join(features_dir, "train", f), weights_only=True)["frame_idx"].numel())
                        for f in os.listdir(os.path.join(features_dir, "train"))
                        if f.endswith(".pt")
                    )
                loads.append(os.getloadavg()[0])
    print(
        f"Feature extraction: {videos} synthetic videos ({frames} frames), the demo's backbone (resnet10t, 64x64, "
        f"random weights), fp32 on the CPU; torch {torch.__version__}, {torch.get_num_threads()} threads in the "
        f"main process, {os.cpu_count()} cores; median of {args.repeats} passes; 1-minute load average "
        f"{min(loads):.1f}-{max(loads):.1f}"
    )
    print(f"{'DATA_LOADER.NUM_WORKERS':<26}{'s/pass':>8}{'videos/s':>10}{'frames/s':>10}{'vs 0':>7}   all passes (s)")
    base = statistics.median(times[args.workers[0]])
    for w in args.workers:
        m = statistics.median(times[w])
        print(
            f"{w:<26}{m:>8.2f}{videos / m:>10.2f}{frames / m:>10.0f}{base / m:>6.2f}x   "
            + " ".join(f"{t:.2f}" for t in times[w])
        )


if __name__ == "__main__":
    main()
