"""Kinetics-like synthetic videos for the data benchmarks (decode.py, resize.py), and the machine figures they print.

`render` draws a camera panning over a static texture (smooth gratings and fine grain) with a coloured square
moving across it, plus a little sensor noise: motion an encoder can predict, detail it has to keep, so that the
encoded files cost what real ones cost to decode. `write_video` encodes it with a given codec and options.
"""

import os
import resource

import numpy as np


def load_average() -> str:
    """The 1, 5 and 15-minute load averages (/proc/loadavg), or n/a."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its finished children (the worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def render(rng: np.random.Generator, width: int, height: int, num_frames: int):
    """Frames (uint8 RGB, one at a time) of the panning camera (see the module's docstring)."""
    pan = rng.uniform(0.5, 2.0, size=2) * rng.choice([-1, 1], size=2)  # pixels per frame, x and y
    margin_x, margin_y = int(abs(pan[0]) * num_frames) + 2, int(abs(pan[1]) * num_frames) + 2
    th, tw = height + margin_y, width + margin_x
    yy, xx = np.mgrid[0:th, 0:tw].astype(np.float32)
    texture = np.zeros((th, tw, 3), np.float32)
    for _ in range(6):
        fx, fy = rng.uniform(-0.06, 0.06, size=2)
        texture += (
            rng.uniform(10, 30, size=3) * np.sin(2 * np.pi * (fx * xx + fy * yy) + rng.uniform(0, 6.3))[..., None]
        )
    texture += 110 + rng.normal(0, 8, size=(th, tw, 1))
    color, side = rng.uniform(30, 230, size=3), int(rng.uniform(0.15, 0.3) * min(width, height))
    for t in range(num_frames):
        dx, dy = int(round(t * abs(pan[0]))), int(round(t * abs(pan[1])))
        x0 = dx if pan[0] > 0 else margin_x - 1 - dx
        y0 = dy if pan[1] > 0 else margin_y - 1 - dy
        img = texture[y0 : y0 + height, x0 : x0 + width].copy()
        sx = int((t * 3) % max(1, width - side))
        sy = int(height / 2 - side / 2 + np.sin(t / 10) * height / 4)
        img[sy : sy + side, sx : sx + side] = color
        img += rng.normal(0, 2, size=(height, width, 1))
        yield np.clip(img, 0, 255).astype(np.uint8)


def write_video(
    path: str,
    rng: np.random.Generator,
    size: tuple[int, int],
    num_frames: int,
    fps: int,
    codec: str = "libx264",
    options: dict = None,
    max_b_frames: int = None,
    bit_rate: int = None,
    thread_type: str = None,
) -> None:
    """Encode `num_frames` rendered frames of `size` (width, height). `thread_type` FRAME makes libx264 write
    one slice per frame, as the ffmpeg command line does (PyAV's default, SLICE, makes it cut each frame in
    slices, which a decoder's slice threads then share)."""
    import av  # heavy (FFmpeg libraries)

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    width, height = size
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if options:
            stream.options = dict(options)
        if max_b_frames is not None:
            stream.codec_context.max_b_frames = max_b_frames
        if bit_rate:
            stream.bit_rate = bit_rate
        if thread_type:
            stream.codec_context.thread_type = thread_type
        for frame in render(rng, width, height, num_frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
