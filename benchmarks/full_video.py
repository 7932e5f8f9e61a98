#!/usr/bin/env python
"""Whole-video inference at bounded memory: peak RSS by video length, and end-to-end MAC rate against a GEMM.

    python benchmarks/full_video.py                      # both parts (~10-15 min on the loaded 2 cores)
    python benchmarks/full_video.py --part memory        # peak RSS only
    python benchmarks/full_video.py --part throughput    # MAC rate only
    python benchmarks/full_video.py --part memory --memory-cfg configs/Kinetics/VIT_B_VTN.yaml \
        --memory-frames 64 --sampled-only                # ViT-B/16 at 224 (~0.6 s a frame here)

Memory. Two generated videos of the same size (320x240, 25 fps): 10 seconds (250 frames) and 10 minutes
(15,000 frames), written frame by frame with PyAV into data_cache/benchmarks/ (cached). Each case runs
`VideoPredictor.predict` (vtn/inference/streaming.py: decode in chunks of VTN.BACKBONE_CHUNK_SIZE, backbone per
chunk, keep only the frame embeddings, temporal encoder once) in a fresh Python process, which reports its
peak RSS (VmHWM of /proc/self/status; the peak of one process only grows, hence one process per case), its
RSS before the video is touched (model built), and the peak of the predict call alone (the kernel's peak
counter is reset with /proc/self/clear_refs just before it). Cases: 250 frames spread over each video
(TEST.FULL_VIDEO_FRAMES 250), every frame (0: 15,000 tokens for 10 minutes) and 1 fps. The default model
is the demo config (configs/Synthetic/VTN_TINY.yaml, read at run time), so that 15,000 frames go through
the backbone in seconds; --memory-cfg picks another (ViT-B: ~0.6 s a frame here).

Throughput. ViT-B/16 at 224 (configs/Kinetics/VIT_B_VTN.yaml, VTN.PRETRAINED False, random weights) on the
10-second video with --frames frames (default 32): fvcore MACs of the model (vtn.utils.model_stats, one
multiply-add = one flop) divided by the end-to-end time of `predict` (probe, decode, resize, crop,
normalise, backbone, temporal encoder, head), next to the median rate of a 2048x2048 fp32 matrix product
measured in the same process, interleaved with the model runs. Also printed: the split of the time into
decoding + transforms, backbone and temporal encoder + head, each timed alone.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CACHE = os.path.join(ROOT, "data_cache", "benchmarks")
TINY_CFG = os.path.join(ROOT, "configs", "Synthetic", "VTN_TINY.yaml")
VITB_CFG = os.path.join(ROOT, "configs", "Kinetics", "VIT_B_VTN.yaml")


# ----------------------------------------------------------------------------- videos
def synthetic_long_video(seconds: float, fps: int = 25, width: int = 320, height: int = 240) -> str:
    """A video of a moving, pulsing square over a static background, written frame by frame (never more than
    one frame in memory), cached by its parameters."""
    import av

    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, f"moving_square_{int(seconds)}s_{width}x{height}_{fps}fps.mp4")
    if os.path.exists(path):
        return path
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    background = (rng.integers(40, 90, size=(height, width, 1)) + np.array([0, 20, 40])).astype(np.uint8)
    tmp = path + ".tmp.mp4"
    n = int(round(seconds * fps))
    with av.open(tmp, "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = int(width * height * fps * 0.3)
        for t in range(n):
            phase = (t % (4 * fps)) / (4 * fps)  # a 4-second cycle
            cx = width * (0.2 + 0.6 * phase)
            cy = height * (0.5 + 0.2 * np.sin(2 * np.pi * phase))
            half = min(width, height) * (0.08 + 0.12 * phase)
            img = background.copy()
            img[(np.abs(xx - cx) <= half) & (np.abs(yy - cy) <= half)] = (230, 200, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------- helpers
def proc_status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def load_cfg(cfg_file, opts):
    from vtn.config import load_config

    return load_config(cfg_file, ["NUM_GPUS", 0, "VTN.PRETRAINED", False] + list(opts))


def timed(fn, *args, **kwargs):
    """(wall seconds, CPU seconds of this process, all threads, result) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def gemm_rate(n: int = 2048, repeats: int = 7):
    """Median multiply-adds per wall second and per CPU second of an n x n fp32 matrix product."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu, _ = timed(torch.mm, a, b)
        walls.append(wall)
        cpus.append(cpu)
    return n**3 / statistics.median(walls), n**3 / statistics.median(cpus)


# ----------------------------------------------------------------------------- memory: one case per process
def child_memory(args) -> None:
    import torch

    from vtn.inference.streaming import VideoPredictor
    from vtn.models import build_model

    cfg = load_cfg(args.cfg, args.opts)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    predictor = VideoPredictor(cfg, model)
    rss_before = proc_status_kb("VmRSS")
    hwm_before = proc_status_kb("VmHWM")
    was_reset = reset_peak_rss()
    start = time.perf_counter()
    pred = predictor.predict(args.video, num_frames=args.frames, fps=args.fps)
    seconds = time.perf_counter() - start
    peak_predict = proc_status_kb("VmHWM")
    print(
        json.dumps(
            {
                "rss_model_kb": rss_before,
                "peak_predict_kb": peak_predict if was_reset else None,
                "peak_process_kb": max(hwm_before, peak_predict),
                "tokens": int(len(pred.frame_idx)),
                "video_frames": pred.info.num_frames,
                "seconds": seconds,
                "finite": bool(torch.isfinite(pred.scores).all()),
            }
        )
    )


def run_child(cfg_file, video, frames, fps, opts):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child-memory",
        "--cfg",
        cfg_file,
        "--video",
        video,
        "--frames",
        str(frames),
        "--fps",
        str(fps),
        *[str(o) for o in opts],
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_memory(args) -> None:
    short = synthetic_long_video(10)
    t = time.perf_counter()
    long = synthetic_long_video(600)
    made = time.perf_counter() - t
    cfg_file = args.memory_cfg
    cfg = load_cfg(cfg_file, args.opts)
    print(
        f"memory: {os.path.relpath(cfg_file, ROOT)}  backbone {cfg.VTN.BACKBONE} at {cfg.DATA.TEST_CROP_SIZE}, "
        f"encoder {cfg.VTN.TEMPORAL_ENCODER}, chunk {cfg.VTN.BACKBONE_CHUNK_SIZE or 64} frames, pos embed "
        f"{cfg.VTN.POS_EMBED}; videos 320x240 25 fps (10-min video ready in {made:.0f} s)"
    )
    n = args.memory_frames
    cases = [
        (f"10 s, {n} frames", short, n, 0.0),
        (f"10 min, {n} frames", long, n, 0.0),
    ]
    if not args.sampled_only:
        cases += [
            ("10 s, every frame", short, 0, 0.0),
            ("10 min, every frame", long, 0, 0.0),
            ("10 min, 1 fps", long, 0, 1.0),
        ]
    print(f"{'case':<22}{'tokens':>8}{'RSS model MB':>14}{'peak predict MB':>17}{'peak process MB':>17}{'time s':>8}")
    results = {}
    for label, video, frames, fps in cases:
        r = run_child(cfg_file, video, frames, fps, args.opts)
        results[label] = r
        pp = "n/a" if r["peak_predict_kb"] is None else f"{r['peak_predict_kb'] / 1024:.0f}"
        print(
            f"{label:<22}{r['tokens']:>8}{r['rss_model_kb'] / 1024:>14.0f}{pp:>17}"
            f"{r['peak_process_kb'] / 1024:>17.0f}{r['seconds']:>8.1f}" + ("" if r["finite"] else "  NON-FINITE"),
            flush=True,
        )
    a, b = results[cases[0][0]], results[cases[1][0]]
    ratio = b["peak_process_kb"] / a["peak_process_kb"]
    print(f"peak RSS 10 min / 10 s at {n} frames: {ratio:.3f}x (goal <= 1.2x: {'met' if ratio <= 1.2 else 'NOT met'})")
    if a["peak_predict_kb"] and b["peak_predict_kb"]:
        grow_a = (a["peak_predict_kb"] - a["rss_model_kb"]) / 1024
        grow_b = (b["peak_predict_kb"] - b["rss_model_kb"]) / 1024
        print(
            f"growth of RSS during predict (peak - RSS with the model built): 10 s {grow_a:.0f} MB, "
            f"10 min {grow_b:.0f} MB"
        )
    if args.sampled_only:
        return
    c, d = results["10 s, every frame"], results["10 min, every frame"]
    print(
        f"every frame, 10 min ({d['tokens']} tokens) / 10 s ({c['tokens']} tokens): "
        f"{d['peak_process_kb'] / c['peak_process_kb']:.3f}x"
    )


# ----------------------------------------------------------------------------- throughput
def bench_throughput(args) -> None:
    import torch

    from vtn.datasets import transforms
    from vtn.inference.streaming import VideoPredictor, frame_indices
    from vtn.models import build_model
    from vtn.models.model_stats import view_gflops

    video = synthetic_long_video(10)
    cfg = load_cfg(VITB_CFG, ["TEST.FULL_VIDEO_FRAMES", args.frames, *args.opts])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    predictor = VideoPredictor(cfg, model)
    info = predictor.decoder.probe(video)
    n = args.frames
    flops = view_gflops(model, n, cfg.DATA.TEST_CROP_SIZE)
    macs = flops["total"] * 1e9  # fvcore: one multiply-add counts as one flop
    print(
        f"throughput: ViT-B/16 VTN (random weights), {n} frames of a 320x240 video -> {cfg.DATA.TEST_SCALE} -> "
        f"{cfg.DATA.TEST_CROP_SIZE}, chunk {predictor.chunk}, encoder {cfg.VTN.TEMPORAL_ENCODER}, "
        f"{torch.get_num_threads()} threads; fvcore GMACs {flops['total']:.1f} (backbone {flops['backbone']:.1f})"
    )

    # the parts alone: decode + transforms, backbone, temporal encoder + head
    d = cfg.DATA
    params = transforms.test_params(info.width, info.height, d.TEST_SCALE, d.TEST_CROP_SIZE, 0, 1)
    indices = frame_indices(info, n)

    def decode_only():
        clips = []
        for frames, _ in predictor.decoder.iter_frames(
            video, indices, size=(params.width, params.height), chunk=predictor.chunk
        ):
            clip = transforms.to_normalized_tensor(transforms.apply_crop_flip(frames, params), d.MEAN, d.STD)
            clips.append(clip.transpose(0, 1))
        return torch.cat(clips)

    def backbone(frames):
        with torch.no_grad():
            return model.embed_frames(frames)

    def temporal(emb, idx):
        with torch.no_grad():
            return model.forward_embeddings(emb[None], idx[None])

    gemm = [gemm_rate()]
    runs = {"e2e": [], "decode": [], "backbone": [], "temporal": []}
    predictor.predict(video)  # warm-up
    for _ in range(args.repeats):  # interleaved, so that the machine's load hits every part alike
        gemm.append(gemm_rate())
        wall, cpu, pred = timed(predictor.predict, video)
        runs["e2e"].append((wall, cpu))
        wall, cpu, frames = timed(decode_only)
        runs["decode"].append((wall, cpu))
        wall, cpu, emb = timed(backbone, frames)
        runs["backbone"].append((wall, cpu))
        wall, cpu, _ = timed(temporal, emb, pred.frame_idx)
        runs["temporal"].append((wall, cpu))
    gemm.append(gemm_rate())
    g_wall = statistics.median(g[0] for g in gemm)
    g_cpu = statistics.median(g[1] for g in gemm)
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
    threads = torch.get_num_threads()
    gmacs = {"e2e": macs, "backbone": flops["backbone"] * 1e9, "temporal": flops["temporal_and_head"] * 1e9}
    print(f"{'':<32}{'wall s':>8}{'CPU s':>8}{'GMAC/s':>8}{'GMAC/CPU-s x' + str(threads):>16}{'share':>7}")
    labels = {
        "e2e": "end to end (predict)",
        "decode": "  decode + resize + normalise",
        "backbone": "  backbone",
        "temporal": "  temporal encoder + head",
    }
    for k, label in labels.items():
        wall, cpu = med[k]
        rate = f"{gmacs[k] / wall / 1e9:.1f}" if k in gmacs else ""
        rate_cpu = f"{gmacs[k] / cpu * threads / 1e9:.1f}" if k in gmacs else ""
        print(f"{label:<32}{wall:>8.2f}{cpu:>8.2f}{rate:>8}{rate_cpu:>16}{cpu / med['e2e'][1]:>7.0%}")
    print(f"{'fp32 GEMM 2048^3 (median)':<32}{'':>16}{g_wall / 1e9:>8.1f}{g_cpu * threads / 1e9:>16.1f}")
    ratio_wall = macs / med["e2e"][0] / g_wall
    ratio_cpu = macs / med["e2e"][1] / g_cpu
    print(
        f"end-to-end / GEMM: {ratio_cpu:.2f}x per CPU second, {ratio_wall:.2f}x per wall second "
        f"(goal >= 0.8x: {'met' if ratio_cpu >= 0.8 else 'NOT met'} per CPU second); backbone alone / GEMM "
        f"{gmacs['backbone'] / med['backbone'][1] / g_cpu:.2f}x per CPU second; GEMM wall rate min/max over the "
        f"run {min(g[0] for g in gemm) / 1e9:.1f}/{max(g[0] for g in gemm) / 1e9:.1f} GMAC/s; median of "
        f"{args.repeats} runs. Shares are of the end-to-end CPU time."
    )


def build_parser():
    """The command line of this benchmark (tests/test_docs.py parses the documented commands with it)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("all", "memory", "throughput"), default="all")
    p.add_argument("--memory-cfg", default=TINY_CFG, help="model of the memory cases (default: the demo config)")
    p.add_argument("--memory-frames", type=int, default=250, help="frames spread over each video (memory)")
    p.add_argument("--sampled-only", action="store_true", help="memory: only the two spread-frames cases")
    p.add_argument("--frames", type=int, default=32, help="frames of the throughput run (ViT-B)")
    p.add_argument("--repeats", type=int, default=3, help="timed throughput runs (median)")
    p.add_argument("--child-memory", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cfg", help=argparse.SUPPRESS)
    p.add_argument("--video", help=argparse.SUPPRESS)
    p.add_argument("--fps", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides (KEY VALUE ...) for every model")
    return p


def main():
    args = build_parser().parse_args()
    if args.child_memory:
        return child_memory(args)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (shared: timings are noisy)")
    if args.part in ("all", "memory"):
        bench_memory(args)
    if args.part in ("all", "throughput"):
        bench_throughput(args)


if __name__ == "__main__":
    main()
