#!/usr/bin/env python
"""Training epoch time on the feature cache vs end to end with a frozen backbone (Table 2d), side by side in
one process on the same synthetic videos:

    python benchmarks/feature_cache.py                     # DeiT-S/16 at 112x112, 3-layer Longformer
    python benchmarks/feature_cache.py --repeats 5 --backbone vit_small_patch16_224

Both runs are the project's Trainer with the same config, model and seed, VTN.FREEZE_BACKBONE True: the end-to-end
one decodes, transforms and embeds every clip's frames each epoch (the backbone in eval mode, no gradients);
the cached one reads each clip's embeddings from DATA.FEATURES_DIR and runs only the temporal encoder and head.
Reported: the median over --repeats epochs of each, their ratio, and the one-off extraction time (with the
number of epochs after which the cache has paid for itself). Data loading is in the main process
(DATA_LOADER.NUM_WORKERS 0) for both, fp32, on the CPU with the threads torch chooses (or --threads). Small
operations suffer most when other processes compete for the cores: the output states the load average.
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


def config(data_dir, features_dir, output_dir, backbone, size, features: bool, encoder="longformer_hf"):
    from vtn.config import load_config

    opts = [
        "NUM_GPUS",
        0,
        "OUTPUT_DIR",
        output_dir,
        "LOG_PERIOD",
        1000,
        "LOG_MODEL_INFO",
        False,
        "TRAIN.DATASET",
        "features" if features else "synthetic",
        "TEST.DATASET",
        "synthetic",
        "TRAIN.BATCH_SIZE",
        4,
        "TRAIN.EVAL_PERIOD",
        0,
        "TRAIN.CHECKPOINT_PERIOD",
        1000,
        "DATA.PATH_TO_DATA_DIR",
        data_dir,
        "DATA.FEATURES_DIR",
        features_dir,
        "DATA.FEATURES_SOURCE",
        "synthetic",
        "DATA.FEATURES_FPS",
        4.0,
        "DATA.NUM_FRAMES",
        16,
        "DATA.TEMPORAL_FOOTPRINT",
        5.12,
        "DATA.TRAIN_CROP_SIZE",
        size,
        "DATA.TRAIN_JITTER_SCALES",
        [size, size * 5 // 4],
        "DATA.TEST_SCALE",
        size,
        "DATA.TEST_CROP_SIZE",
        size,
        "SYNTHETIC.AUTO_GENERATE",
        True,
        "SYNTHETIC.TRAIN_PER_CLASS",
        4,
        "SYNTHETIC.VAL_PER_CLASS",
        1,
        "SYNTHETIC.TEST_PER_CLASS",
        1,
        "SYNTHETIC.DURATION_RANGE",
        [4.0, 8.0],
        "MODEL.NUM_CLASSES",
        6,
        "VTN.BACKBONE",
        backbone,
        "VTN.BACKBONE_KWARGS.img_size",
        size,
        "VTN.PRETRAINED",
        False,
        "VTN.FREEZE_BACKBONE",
        True,
        "VTN.NUM_LAYERS",
        3,
        "VTN.NUM_HEADS",
        6,
        "VTN.ATTENTION_WINDOW",
        8,
        "VTN.BACKBONE_CHUNK_SIZE",
        64,
        "VTN.TEMPORAL_ENCODER",
        encoder,
        "SOLVER.OPTIMIZING_METHOD",
        "adamw",
        "SOLVER.BASE_LR",
        1e-4,
        "SOLVER.MAX_EPOCH",
        1000,
        "DATA_LOADER.NUM_WORKERS",
        0,
    ]
    return load_config(None, opts)


def epoch_times(cfg, repeats, warmup):
    from vtn.engine.trainer import Trainer
    from vtn.utils.rng import seed_everything

    seed_everything(cfg.RNG_SEED)
    trainer = Trainer(cfg)
    trainer.before_train()
    times = []
    for epoch in range(warmup + repeats):
        start = time.perf_counter()
        trainer.run_epoch(epoch)
        if epoch >= warmup:
            times.append(time.perf_counter() - start)
    return times, trainer.epoch_iters * cfg.TRAIN.BATCH_SIZE


def build_parser():
    """The command line of this benchmark (tests/test_docs.py parses the documented commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--backbone", default="deit_small_patch16_224", help="timm backbone (random weights)")
    parser.add_argument("--size", type=int, default=112, help="frame crop size")
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed per variant (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs first (the video dataset caches probes)")
    parser.add_argument("--encoder", default="longformer_hf", help="VTN.TEMPORAL_ENCODER of both runs")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--data-dir",
        default=os.path.join(REPO, "data_cache", "bench_feature_cache"),
        help="synthetic dataset folder (generated when missing)",
    )
    return parser


def main():
    args = build_parser().parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    from vtn.inference.extract import extract_features

    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        features_dir = os.path.join(tmp, "features")
        common = (args.backbone, args.size)
        video_cfg = config(args.data_dir, features_dir, os.path.join(tmp, "e2e"), *common, False, args.encoder)
        cache_cfg = config(args.data_dir, features_dir, os.path.join(tmp, "cache"), *common, True, args.encoder)
        from vtn.datasets.synthetic import ensure_synthetic_dataset

        ensure_synthetic_dataset(video_cfg)
        start = time.perf_counter()
        counts = extract_features(cache_cfg, ["train"])["train"]
        extraction = time.perf_counter() - start
        frames = sum(
            int(torch.load(os.path.join(features_dir, "train", f), weights_only=True)["frame_idx"].numel())
            for f in os.listdir(os.path.join(features_dir, "train"))
            if f.endswith(".pt")
        )
        e2e, clips = epoch_times(video_cfg, args.repeats, args.warmup)
        cached, _ = epoch_times(cache_cfg, args.repeats, args.warmup)

    e2e_m, cached_m = statistics.median(e2e), statistics.median(cached)
    print(
        f"Feature cache vs end to end, frozen backbone: {args.backbone} at {args.size}x{args.size} (random weights), "
        f"3-layer Longformer ({args.encoder}); {counts['videos']} training videos, {clips} clips per epoch of 16 "
        f"frames over 5.12 s (the paper's clips), "
        f"batch 4; torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores; median of {args.repeats} epochs after {args.warmup} untimed"
    )
    print(f"{'':<28}{'epoch (s)':>10}{'clips/s':>10}   all epochs (s)")
    print(f"{'end to end (frozen)':<28}{e2e_m:>10.2f}{clips / e2e_m:>10.1f}   {' '.join(f'{t:.2f}' for t in e2e)}")
    print(f"{'feature cache':<28}{cached_m:>10.3f}{clips / cached_m:>10.1f}   {' '.join(f'{t:.3f}' for t in cached)}")
    print(f"{'speed-up':<28}{e2e_m / cached_m:>9.1f}x")
    saved = e2e_m - cached_m
    print(
        f"{'extraction (once)':<28}{extraction:>10.2f}   {frames} frames at DATA.FEATURES_FPS 4; pays for itself "
        f"after {extraction / saved:.1f} epochs"
    )


if __name__ == "__main__":
    main()
