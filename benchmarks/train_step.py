#!/usr/bin/env python
"""Training step speed: clips per second of forward + backward + optimizer step, on random input tensors.

    python benchmarks/train_step.py                          # every model below (~22 min on the loaded 2 cores)
    python benchmarks/train_step.py --models tiny            # the demo config only (seconds)
    python benchmarks/train_step.py --models vitb --repeats 3

Models (configs read at run time, random weights, VTN.PRETRAINED False, NUM_GPUS 0):
- tiny: configs/Synthetic/VTN_TINY.yaml at its own TRAIN.BATCH_SIZE, DATA.NUM_FRAMES and DATA.TRAIN_CROP_SIZE;
- vitb: configs/Kinetics/VIT_B_VTN.yaml, 16 frames 224x224, batch --batch (1 by default on this CPU);
- r50:  configs/Kinetics/R50_VTN.yaml, 16 frames 224x224, batch --batch, with and without channels_last
  memory format for the backbone (weights and input frames).
Each runs once per temporal encoder registered in TEMPORAL_ENCODER_REGISTRY (listed at run time), except
that r50 only uses the config's encoder (the memory format concerns the backbone).

A step is what the trainer does: `model(frames, frame_idx)`, the loss of MODEL.LOSS_FUNC (vtn.engine.losses),
backward, the optimizer of vtn.engine.optimizer.build_optimizer (the config's SOLVER), zero_grad. No data
loading or decoding: the input is a random (B, C, T, H, W) tensor. Reported: the median step time over
--repeats steps after --warmup steps, and clips/s = batch / median; the variants of one model take their steps
in turn (interleaved), so that a shared machine's load hits them alike, and are compared by the CPU time of
the process per step (all threads), which counts only the cycles the step got, as the wall time on a shared
machine does not.
"""

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CONFIGS = {
    "tiny": os.path.join(ROOT, "configs", "Synthetic", "VTN_TINY.yaml"),
    "vitb": os.path.join(ROOT, "configs", "Kinetics", "VIT_B_VTN.yaml"),
    "r50": os.path.join(ROOT, "configs", "Kinetics", "R50_VTN.yaml"),
}


class StepRunner:
    """One model, its optimizer and a random batch; `step()` runs one training step."""

    def __init__(self, cfg, batch, frames, crop):
        import torch

        from vtn.engine.losses import build_loss
        from vtn.engine.optimizer import build_optimizer
        from vtn.models import build_model

        torch.manual_seed(0)
        self.model = build_model(cfg).train()
        self.optimizer = build_optimizer(self.model, cfg)
        self.loss_fn = build_loss(cfg)
        self.clip = torch.randn(batch, 3, frames, crop, crop)
        self.frame_idx = torch.arange(frames).expand(batch, frames) * 8
        self.labels = torch.randint(0, cfg.MODEL.NUM_CLASSES, (batch,))
        self.walls, self.cpus = [], []

    def step(self, record=True):
        wall, cpu = time.perf_counter(), time.process_time()
        logits = self.model(frames=self.clip, frame_idx=self.frame_idx)
        loss = self.loss_fn(logits.float(), self.labels)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if record:
            self.walls.append(time.perf_counter() - wall)
            self.cpus.append(time.process_time() - cpu)
        if not bool(loss.isfinite()):
            raise RuntimeError("non-finite loss in the benchmark")


def build_parser():
    """The command line of this benchmark (tests/test_docs.py parses the documented commands with it)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    p.add_argument("--batch", type=int, default=1, help="batch of the ViT-B and R50 rows")
    p.add_argument("--frames", type=int, default=16, help="frames of the ViT-B and R50 rows")
    p.add_argument("--repeats", type=int, default=0, help="timed steps (0: 10 tiny, 2 vitb, 3 r50)")
    p.add_argument("--warmup", type=int, default=1)
    return p


def main():
    args = build_parser().parse_args()

    import torch

    from vtn.config import load_config
    from vtn.models.temporal_encoders import TEMPORAL_ENCODER_REGISTRY

    encoders = TEMPORAL_ENCODER_REGISTRY.names()
    print(
        f"machine: {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, load average "
        f"{os.getloadavg()[0]:.1f} (shared: timings are noisy); registered temporal encoders: {', '.join(encoders)}"
    )
    rows = []
    for name in args.models:
        base = load_config(CONFIGS[name], ["NUM_GPUS", 0, "VTN.PRETRAINED", False])
        if name == "tiny":
            batch, frames, crop = base.TRAIN.BATCH_SIZE, base.DATA.NUM_FRAMES, base.DATA.TRAIN_CROP_SIZE
            repeats = args.repeats or 10
        else:
            batch, frames, crop = args.batch, args.frames, 224
            repeats = args.repeats or (2 if name == "vitb" else 3)
        if name == "r50":
            variants = [(base.VTN.TEMPORAL_ENCODER, cl) for cl in (False, True)]
        else:
            variants = [(enc, False) for enc in encoders]
        runners = []
        for encoder, channels_last in variants:
            opts = [
                "NUM_GPUS",
                0,
                "VTN.PRETRAINED",
                False,
                "DATA.NUM_FRAMES",
                frames,
                "VTN.TEMPORAL_ENCODER",
                encoder,
                "VTN.CHANNELS_LAST",
                channels_last,
            ]
            cfg = load_config(CONFIGS[name], opts)
            runners.append((encoder, channels_last, cfg, StepRunner(cfg, batch, frames, crop)))
        for _ in range(args.warmup):
            for *_, runner in runners:
                runner.step(record=False)
        for _ in range(repeats):  # interleaved: the machine's load hits every variant alike
            for *_, runner in runners:
                runner.step()
        ref_cpu = None
        for encoder, channels_last, cfg, runner in runners:
            wall, cpu = statistics.median(runner.walls), statistics.median(runner.cpus)
            ref_cpu = ref_cpu or cpu
            rows.append(
                (
                    name,
                    cfg.VTN.BACKBONE,
                    encoder,
                    channels_last,
                    batch,
                    frames,
                    crop,
                    wall,
                    batch / wall,
                    cpu,
                    ref_cpu / cpu,
                )
            )
            r = rows[-1]
            print(
                f"  {r[0]:<5} {r[1]:<22} {r[2]:<14} channels_last={r[3]!s:<5} B={r[4]} T={r[5]} {r[6]}px: "
                f"median {wall:.3f} s/step wall ({min(runner.walls):.3f}-{max(runner.walls):.3f}), "
                f"{cpu:.3f} CPU s/step, {r[8]:.3g} clips/s, speed vs first row {r[10]:.2f}x (CPU time), "
                f"n={len(runner.walls)}",
                flush=True,
            )
        del runners
    print()
    print(
        "| model | backbone | temporal encoder | channels_last | batch x frames x px | wall s/step | clips/s "
        "(wall) | CPU s/step | speed vs first row of the model (CPU) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} x {r[5]} x {r[6]} | {r[7]:.3f} | {r[8]:.3g} | "
            f"{r[9]:.3f} | {r[10]:.2f}x |"
        )


if __name__ == "__main__":
    main()
