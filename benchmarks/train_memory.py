#!/usr/bin/env python
"""Training memory with and without activation checkpointing (VTN.GRAD_CHECKPOINTING): peak memory and time of
one training step (forward + backward + optimizer step) on random input tensors.

    python benchmarks/train_memory.py                    # tiny and ViT-B, on CUDA when available (~4 min on 2 cores)
    python benchmarks/train_memory.py --models tiny      # the demo config only
    python benchmarks/train_memory.py --models vitb --batch 2 --frames 32 --device cuda

Models (configs read at run time, random weights, VTN.PRETRAINED False):
- tiny: configs/Synthetic/VTN_TINY.yaml at its own TRAIN.BATCH_SIZE, DATA.NUM_FRAMES and DATA.TRAIN_CROP_SIZE;
- vitb: configs/Kinetics/VIT_B_VTN.yaml, --frames frames (16) at 224x224, batch --batch (1 by default);
- r50 (only when asked for): configs/Kinetics/R50_VTN.yaml, as vitb.

Memory: each case (model x checkpointing off/on) in a fresh process (multiprocessing spawn), so that one case's
memory does not hide the other's. Time: a third process with both models, whose steps are taken in turn
(interleaved), so that a shared machine's load hits both alike. Every process builds the model(s), the optimizer
(the config's SOLVER) and the batch, and takes one warm-up step (the optimizer allocates its state). A memory
process then measures one step against the memory it holds at that point (model, optimizer state, input):
"forward" is the peak growth up to the end of the forward pass (the activations kept for the backward pass,
which checkpointing cuts), "step" the peak growth of the whole step (activations, gradients, temporaries). The
timing process takes --repeats timed steps per model; reported: the median wall and CPU time (CPU time: all
threads of the process, less distorted by a shared machine's load than wall time).

Memory on the CPU: the resident set (VmRSS / VmHWM of /proc/self/status), with the peak reset through
/proc/self/clear_refs before the measured step. glibc keeps freed blocks in its heap, so a peak of the resident
set would hide most of the savings: the memory process sets glibc's mmap threshold to 64 KiB at its start
(mallopt, as MALLOC_MMAP_THRESHOLD_=65536 would), so that freed tensors go back to the system at once (which
slows allocation down: that process is not timed). On CUDA: the caching allocator's
torch.cuda.max_memory_allocated after torch.cuda.reset_peak_memory_stats.
"""

import argparse
import ctypes
import multiprocessing
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
DEFAULT_MODELS = ["tiny", "vitb"]
MB = 2**20


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


class CpuMemory:
    """Resident-set bytes of this process: now, and the peak since `reset()`."""

    def __init__(self):
        self.resettable = True
        self.follows_frees = False

    def follow_frees(self) -> None:
        """Make glibc return freed blocks of 64 KiB and more to the system at once (call it before allocating)."""
        try:
            self.follows_frees = bool(ctypes.CDLL("libc.so.6").mallopt(-3, 65536))  # M_MMAP_THRESHOLD
        except (OSError, AttributeError):  # not glibc
            pass

    def reset(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        except OSError:
            self.resettable = False  # then the peak is since the process started: growth can only be understated

    def current(self) -> int:
        return _status_kb("VmRSS") * 1024

    def peak(self) -> int:
        return _status_kb("VmHWM") * 1024


class CudaMemory:
    def __init__(self, device):
        import torch

        self.torch, self.device, self.resettable, self.follows_frees = torch, device, True, True

    def follow_frees(self) -> None:
        pass  # the caching allocator counts what tensors hold, not what it keeps

    def reset(self) -> None:
        self.torch.cuda.synchronize(self.device)
        self.torch.cuda.reset_peak_memory_stats(self.device)

    def current(self) -> int:
        self.torch.cuda.synchronize(self.device)
        return self.torch.cuda.memory_allocated(self.device)

    def peak(self) -> int:
        self.torch.cuda.synchronize(self.device)
        return self.torch.cuda.max_memory_allocated(self.device)


def run_case(what, name, batch, frames, crop, device, repeats, queue):
    """One measurement in this (fresh) process, put on `queue` as {checkpointing: figures} (or an error line).

    "memory off" / "memory on": the memory of one step without / with checkpointing. "time": both models, their
    steps taken in turn (interleaved), so that a shared machine's load hits both alike."""
    try:
        memory = CudaMemory(device) if device == "cuda" else CpuMemory()
        if what.startswith("memory"):
            memory.follow_frees()  # before anything is allocated
        modes = [what == "memory on"] if what.startswith("memory") else [False, True]
        runners = {on: StepRunner(name, on, batch, frames, crop, device) for on in modes}
        for runner in runners.values():
            runner.step()  # warm-up: the optimizer state now exists, as in every later step
        if what.startswith("memory"):
            queue.put({on: runner.measure_memory(memory) for on, runner in runners.items()})
            return
        for _ in range(repeats):
            for runner in runners.values():
                runner.timed_step()
        queue.put({on: runner.timing() for on, runner in runners.items()})
    except Exception as e:  # reported by the parent; a crash of the child is seen there too
        queue.put(f"{e.__class__.__name__}: {e}")


class StepRunner:
    """One model, its optimizer and a random batch; `step()` runs one training step."""

    def __init__(self, name, checkpointing, batch, frames, crop, device):
        import torch

        from vtn.config import load_config
        from vtn.engine.losses import build_loss
        from vtn.engine.optimizer import build_optimizer
        from vtn.models import build_model

        opts = ["NUM_GPUS", 0, "VTN.PRETRAINED", False, "DATA.NUM_FRAMES", frames]
        self.cfg = cfg = load_config(CONFIGS[name], opts + ["VTN.GRAD_CHECKPOINTING", checkpointing])
        self.torch, self.device = torch, torch.device(device)
        torch.manual_seed(0)
        self.model = build_model(cfg).to(self.device).train()
        self.optimizer = build_optimizer(self.model, cfg)
        self.loss_fn = build_loss(cfg)
        self.clip = torch.randn(batch, 3, frames, crop, crop, device=self.device)
        self.frame_idx = (torch.arange(frames, device=self.device) * 8).expand(batch, frames)
        self.labels = torch.randint(0, cfg.MODEL.NUM_CLASSES, (batch,), device=self.device)
        self.walls, self.cpus = [], []

    def sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def step(self, after_forward=None):
        logits = self.model(frames=self.clip, frame_idx=self.frame_idx)
        loss = self.loss_fn(logits.float(), self.labels)
        if after_forward is not None:
            after_forward()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if not bool(loss.isfinite()):
            raise RuntimeError("non-finite loss in the benchmark")

    def describe(self):
        return dict(backbone=self.cfg.VTN.BACKBONE, encoder=self.cfg.VTN.TEMPORAL_ENCODER)

    def measure_memory(self, memory):
        base = memory.current()
        forward_peak = []
        memory.reset()
        self.step(after_forward=lambda: forward_peak.append(memory.peak()))
        step_peak = memory.peak()
        return dict(
            self.describe(),
            base=base,
            forward=forward_peak[0] - base,
            step=step_peak - base,
            resettable=memory.resettable,
            follows_frees=memory.follows_frees,
        )

    def timed_step(self):
        self.sync()
        wall, cpu = time.perf_counter(), time.process_time()
        self.step()
        self.sync()
        self.walls.append(time.perf_counter() - wall)
        self.cpus.append(time.process_time() - cpu)

    def timing(self):
        return dict(wall=statistics.median(self.walls), cpu=statistics.median(self.cpus), n=len(self.walls))


def run_in_fresh_process(ctx, *args):
    queue = ctx.Queue()
    proc = ctx.Process(target=run_case, args=(*args, queue))
    proc.start()
    proc.join()
    label = f"{args[1]} ({args[0]})"
    if proc.exitcode != 0 or queue.empty():
        raise SystemExit(f"{label}: the case's process died (exit code {proc.exitcode})")
    result = queue.get()
    if isinstance(result, str):
        raise SystemExit(f"{label}: {result}")
    return result


def build_parser():
    """The command line of this benchmark (tests/test_docs.py parses the documented commands with it)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", choices=list(CONFIGS), default=DEFAULT_MODELS)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: CUDA when available")
    p.add_argument("--batch", type=int, default=1, help="batch of the ViT-B and R50 rows")
    p.add_argument("--frames", type=int, default=16, help="frames of the ViT-B and R50 rows")
    p.add_argument("--repeats", type=int, default=0, help="timed steps (0: 5 tiny, 2 vitb and r50)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)

    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available here (use --device cpu)")
    where = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU, {torch.get_num_threads()} torch threads"
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    print(f"device: {where}; load average {load} (1, 5, 15 min)", flush=True)
    ctx = multiprocessing.get_context("spawn")
    rows = []
    for name in args.models:
        cfg_frames, crop, batch = args.frames, 224, args.batch
        repeats = args.repeats or (5 if name == "tiny" else 2)
        if name == "tiny":
            from vtn.config import load_config

            base = load_config(CONFIGS[name], ["NUM_GPUS", 0])
            cfg_frames, crop, batch = base.DATA.NUM_FRAMES, base.DATA.TRAIN_CROP_SIZE, base.TRAIN.BATCH_SIZE
        case = (name, batch, cfg_frames, crop, device, repeats)
        results = run_in_fresh_process(ctx, "memory off", *case)
        results.update(run_in_fresh_process(ctx, "memory on", *case))
        for checkpointing, times in run_in_fresh_process(ctx, "time", *case).items():
            results[checkpointing].update(times)
        for checkpointing, r in results.items():
            if not r["resettable"]:
                print("  (the peak could not be reset: figures are lower bounds)")
            if not r["follows_frees"]:
                print("  (not glibc: the resident set may keep freed memory, which hides savings)")
            print(
                f"  {name:<4} {r['backbone']:<22} {r['encoder']:<13} B={batch} T={cfg_frames} {crop}px "
                f"checkpointing={checkpointing!s:<5}: held {r['base'] / MB:,.0f} MB; forward +{r['forward'] / MB:,.0f} "
                f"MB, step +{r['step'] / MB:,.0f} MB; {r['wall']:.3f} s/step wall, {r['cpu']:.3f} CPU s (n={r['n']})",
                flush=True,
            )
        off, on = results[False], results[True]
        rows.append((name, off, on, batch, cfg_frames, crop))
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    print(f"\nload average at the end: {load}\n")
    print(
        "| model | batch x frames x px | forward MB off / on | ratio | step peak MB off / on | ratio | "
        "s/step off / on | time ratio (wall) | time ratio (CPU) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, off, on, batch, frames, crop in rows:
        fwd = f"{off['forward'] / MB:,.0f} / {on['forward'] / MB:,.0f}"
        stp = f"{off['step'] / MB:,.0f} / {on['step'] / MB:,.0f}"
        print(
            f"| {name} ({off['backbone']}, {off['encoder']}) | {batch} x {frames} x {crop} | {fwd} | "
            f"**{off['forward'] / max(on['forward'], 1):.1f}x** | {stp} | {off['step'] / max(on['step'], 1):.1f}x | "
            f"{off['wall']:.2f} / {on['wall']:.2f} | **{on['wall'] / off['wall']:.2f}x** | "
            f"{on['cpu'] / off['cpu']:.2f}x |"
        )


if __name__ == "__main__":
    main()
