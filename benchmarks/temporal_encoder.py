"""Temporal encoder speed: the pure-PyTorch Longformer ("longformer") against transformers' ("longformer_hf").

Both get the same weights (ViT-B sizes: hidden 768, 12 heads, FFN 3072, 3 layers, window 32; dropout 0) and
the same input ([CLS] global + frame tokens). For each length the script prints the median wall time of
forward (no grad) and forward+backward, the ratio hf / ours, the largest output difference, and the share
of CPU time that goes to linear layers (aten::addmm / aten::mm, forward and backward), LayerNorm + GELU,
and the rest (attention: score/value products, softmax, masks, copies). Then it checks torch.export and
torch.compile(fullgraph=True) (graph capture) for both.

    python benchmarks/temporal_encoder.py            # ~10 min on an idle 2-core CPU
    python benchmarks/temporal_encoder.py --quick    # fewer repeats (one run at 4,001 and 16,001 tokens)
    python benchmarks/temporal_encoder.py --lengths 17 251 --compile   # also time torch.compile (inductor)

Runs of the two implementations alternate so that a busy machine slows both alike; every size gets one
warm-up run first. Where a size has a single run, the forward+backward run is timed under the profiler
(negligible overhead for such long runs). The page-fault column is the memory the kernel had to map and
zero during one forward+backward (minor faults x page size): glibc serves every block over its mmap
threshold (at most 32 MB) with fresh pages, which is why ours cuts long sequences into chunks on the CPU.
"""

import argparse
import contextlib
import io
import logging
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vtn.config import load_config  # noqa: E402
from vtn.models.temporal_encoders import GLOBAL, LOCAL, build_temporal_encoder  # noqa: E402

BATCH = {17: 16}  # the paper's clip (16 frames + [CLS]) in a batch of 16; longer sequences: batch 1
REPEATS = {17: 7, 251: 7, 1001: 7, 4001: 3, 16001: 3}
QUICK_REPEATS = {17: 5, 251: 3, 1001: 3, 4001: 1, 16001: 1}
NAMES = ("longformer_hf", "longformer")


def build(name):
    cfg = load_config(
        None,
        [
            "NUM_GPUS",
            0,
            "VTN.TEMPORAL_ENCODER",
            name,
            "VTN.NUM_LAYERS",
            3,
            "VTN.NUM_HEADS",
            12,
            "VTN.ATTENTION_WINDOW",
            32,
            "VTN.ATTENTION_DROPOUT",
            0.0,
            "VTN.HIDDEN_DROPOUT",
            0.0,
        ],
    )
    torch.manual_seed(0)
    return build_temporal_encoder(cfg, 768, 3072)


def inputs(batch, length, grad):
    g = torch.Generator().manual_seed(length)
    tokens = torch.randn(batch, length, 768, generator=g).requires_grad_(grad)
    idx = torch.arange(length - 1).expand(batch, -1)
    mask = torch.full((batch, length), LOCAL)
    mask[:, 0] = GLOBAL
    return tokens, idx, mask


def step(model, args, backward):
    if backward:
        model(*args).square().mean().backward()
    else:
        with torch.no_grad():
            model(*args)


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def faulted_mb(since):
    """MB of memory page-faulted in since the minor-fault count `since`."""
    return (minor_faults() - since) * resource.getpagesize() / 2**20


def timed(model, args, backward):
    """(wall seconds, CPU seconds of this process, MB page-faulted in): the CPU time suffers less when other
    jobs share the machine."""
    t0, c0, f0 = time.perf_counter(), time.process_time(), minor_faults()
    step(model, args, backward)
    return time.perf_counter() - t0, time.process_time() - c0, faulted_mb(f0)


def profile_shares(model, args, backward=True):
    """Wall and CPU time of one run under the profiler, and the CPU-time shares (%) of linear / norm+GELU / rest."""
    from torch.profiler import ProfilerActivity, profile

    t0, c0 = time.perf_counter(), time.process_time()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(model, args, backward)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    linear = norm = total = 0.0
    for evt in prof.key_averages():
        t = evt.self_cpu_time_total
        total += t
        if evt.key in ("aten::addmm", "aten::mm"):
            linear += t
        elif "layer_norm" in evt.key or "gelu" in evt.key:
            norm += t
    total = total or 1.0
    return wall, cpu, (100 * linear / total, 100 * norm / total, 100 * (total - linear - norm) / total)


def capture_checks(models):
    """torch.export and torch.compile(fullgraph=True) at 17 tokens x 2: 'ok' or the exception's name."""
    args = inputs(2, 17, False)
    results = {}
    logging.disable(logging.CRITICAL)  # torch prints the whole graph when a capture fails
    for name, model in models.items():
        model.eval()
        row = {}
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                program = torch.export.export(model, args)
            with torch.no_grad():
                diff = (program.module()(*args) - model(*args)).abs().max().item()
            row["torch.export"] = f"ok (max diff {diff:.1e})"
        except Exception as e:  # noqa: BLE001 - we report whatever stops it
            row["torch.export"] = f"fails: {type(e).__name__}"
        try:
            torch._dynamo.reset()
            compiled = torch.compile(model, fullgraph=True, backend="eager")
            with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                compiled(*args)
            row["torch.compile(fullgraph=True)"] = "ok"
        except Exception as e:  # noqa: BLE001
            row["torch.compile(fullgraph=True)"] = f"fails: {type(e).__name__}"
        results[name] = row
    torch._dynamo.reset()
    logging.disable(logging.NOTSET)
    return results


def build_parser():
    """The command line of this benchmark (tests/test_docs.py parses the documented commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[17, 251, 1001, 4001, 16001])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (the figures get noisier)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--no-profile", action="store_true", help="skip the linear/attention time shares")
    parser.add_argument("--compile", action="store_true", help="also time ours under torch.compile (inductor)")
    return parser


def main():
    opts = build_parser().parse_args()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    repeats = QUICK_REPEATS if opts.quick else REPEATS
    start = time.perf_counter()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
        f"{os.getloadavg()[0]:.1f}; ViT-B sizes (768-d, 12 heads, FFN 3072, 3 layers, window 32), fp32, CPU"
    )

    models = {name: build(name) for name in NAMES}
    models["longformer"].load_state_dict(models["longformer_hf"].state_dict(), strict=True)

    rows = []
    for length in opts.lengths:
        batch = BATCH.get(length, 1)
        n = repeats.get(length, 3)
        row = {"length": length, "batch": batch}
        for mode, backward in (("fwd", False), ("fwd+bwd", True)):
            args = inputs(batch, length, backward)
            for model in models.values():
                model.train(backward)
            for model in models.values():  # warm-up (allocator, lazy init)
                step(model, args, backward)
            times = {name: [] for name in NAMES}
            for _ in range(n):
                for name, model in models.items():
                    if backward and n == 1 and not opts.no_profile:
                        # one long run: time it under the profiler (its overhead is negligible at this size)
                        f0 = minor_faults()
                        wall, cpu, row[("share", name)] = profile_shares(model, args)
                        times[name].append((wall, cpu, faulted_mb(f0)))
                    else:
                        times[name].append(timed(model, args, backward))
            for name in NAMES:
                row[(mode, name)] = statistics.median(t[0] for t in times[name])
                row[(mode, name, "cpu")] = statistics.median(t[1] for t in times[name])
                row[(mode, name, "faults")] = statistics.median(t[2] for t in times[name])
        with torch.no_grad():
            args = inputs(batch, length, False)
            for model in models.values():
                model.eval()
            row["diff"] = (models["longformer"](*args) - models["longformer_hf"](*args)).abs().max().item()
        if not opts.no_profile and ("share", NAMES[0]) not in row:
            args = inputs(batch, length, True)
            for name, model in models.items():
                model.train()
                row[("share", name)] = profile_shares(model, args)[2]
        rows.append(row)
        hf, ours = row[("fwd+bwd", "longformer_hf")], row[("fwd+bwd", "longformer")]
        print(
            f"  {length:>6} tokens x {batch:<2}: fwd+bwd hf {hf:7.3f} s, ours {ours:7.3f} s "
            f"({hf / ours:.2f}x)  [{time.perf_counter() - start:.0f} s so far]",
            flush=True,
        )

    print()
    print("Median wall time (s); ratio = hf / ours (> 1: ours is faster); CPU ratio: the same by process CPU time")
    print()
    print(
        "| tokens x batch | fwd hf | fwd ours | fwd ratio | fwd+bwd hf | fwd+bwd ours | fwd+bwd ratio "
        "| CPU ratio fwd / fwd+bwd | page faults fwd+bwd hf / ours (MB) | max abs diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        f_hf, f_us = r[("fwd", "longformer_hf")], r[("fwd", "longformer")]
        b_hf, b_us = r[("fwd+bwd", "longformer_hf")], r[("fwd+bwd", "longformer")]
        cf = r[("fwd", "longformer_hf", "cpu")] / r[("fwd", "longformer", "cpu")]
        cb = r[("fwd+bwd", "longformer_hf", "cpu")] / r[("fwd+bwd", "longformer", "cpu")]
        print(
            f"| {r['length']:,} x {r['batch']} | {f_hf:.3f} | {f_us:.3f} | {f_hf / f_us:.2f}x | {b_hf:.3f} "
            f"| {b_us:.3f} | {b_hf / b_us:.2f}x | {cf:.2f}x / {cb:.2f}x | "
            f"{r[('fwd+bwd', 'longformer_hf', 'faults')]:,.0f} / "
            f"{r[('fwd+bwd', 'longformer', 'faults')]:,.0f} | {r['diff']:.1e} |"
        )
    if not opts.no_profile:
        print()
        print(
            "Share of CPU time, forward+backward (torch.profiler self time): linear / LayerNorm+GELU / "
            "attention and the rest"
        )
        print()
        print(
            "| tokens x batch | hf linear | hf norm+GELU | hf attention+rest | ours linear | ours norm+GELU "
            "| ours attention+rest |"
        )
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            a, b = r[("share", "longformer_hf")], r[("share", "longformer")]
            print(f"| {r['length']:,} x {r['batch']} | " + " | ".join(f"{v:.0f}%" for v in (*a, *b)) + " |")
    lengths = {r["length"]: r for r in rows}
    if 1001 in lengths and 16001 in lengths:
        print()
        for name in NAMES:
            k = ("fwd+bwd", name)
            print(f"time(16,001) / time(1,001), forward+backward, {name}: {lengths[16001][k] / lengths[1001][k]:.1f}")

    print()
    print("| | torch.export | torch.compile(fullgraph=True) |")
    print("|---|---|---|")
    for name, row in capture_checks(models).items():
        print(f"| {name} | {row['torch.export']} | {row['torch.compile(fullgraph=True)']} |")

    if opts.compile:
        print()
        ours = models["longformer"].train()
        compiled = torch.compile(ours, fullgraph=True)
        for length in opts.lengths[:2]:
            args = inputs(BATCH.get(length, 1), length, True)
            t0 = time.perf_counter()
            step(compiled, args, True)
            first = time.perf_counter() - t0
            times = [timed(compiled, args, True)[0] for _ in range(3)]
            eager = [timed(ours, args, True)[0] for _ in range(3)]
            print(
                f"torch.compile (inductor) ours, {length} tokens, fwd+bwd: {statistics.median(times):.3f} s "
                f"(eager {statistics.median(eager):.3f} s; first call with compilation {first:.0f} s)"
            )
    print(f"\ntotal {time.perf_counter() - start:.0f} s, load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
