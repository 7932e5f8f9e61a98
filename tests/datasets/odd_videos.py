"""Generated videos with the timestamp troubles of real files: B-frames in AVI and MP4, frames whose timestamps
are out of display order (as AVI files with packed B-frames give them), unevenly spaced frames (dropped frames,
variable frame rate) and a display-matrix rotation (portrait phone videos). Each frame shows its index in
display order as 8 black/white blocks, so a test reads back which frame it got."""

import fractions

import av
import numpy as np

W, H = 64, 48


def index_frame(i: int) -> np.ndarray:
    img = np.full((H, W, 3), 90, np.uint8)
    img[: H // 2, : W // 2] = (200, 40, 40)  # an asymmetric corner: a rotation shows
    for bit in range(8):
        img[H - 16 :, bit * 8 : (bit + 1) * 8] = 255 if (i >> bit) & 1 else 0
    return img


def read_index(rgb: np.ndarray) -> int:
    """The index a frame of `index_frame` shows (the frame must be upright and at its own size)."""
    return sum(1 << bit for bit in range(8) if rgb[H - 8, bit * 8 + 4].mean() > 127)


def write_video(
    path: str,
    fmt: str,
    codec: str,
    n: int,
    rate: int = 25,
    bframes: int = 0,
    pts=None,
    rotation=None,
    retime=None,
    noise: bool = False,
) -> None:
    """`n` index frames; `pts` (in 1/rate) places them unevenly; `rotation` sets the display matrix (degrees
    counterclockwise); `retime(packet_number, display_index)` replaces each packet's timestamp (both timestamps
    where it returns a pair: presentation, decoding), as files with broken timestamps have them; `noise` paints
    random pixels above the index blocks, at a high bit rate: frames of a few KiB, as real ones (else a frame is
    some 50 bytes)."""
    rng = np.random.default_rng(0)
    with av.open(path, "w", format=fmt) as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.codec_context.gop_size = 12
        s.codec_context.max_b_frames = bframes  # also 0: libx264's default preset has B-frames
        if noise:
            s.codec_context.bit_rate = 4_000_000
        if rotation is not None:
            s.set_display_rotation(rotation)
        count = 0

        def mux(packets):
            nonlocal count
            for p in packets:
                if retime is not None:
                    stamp = retime(count, p.pts)
                    p.pts, p.dts = stamp if isinstance(stamp, tuple) else (stamp, p.dts)
                count += 1
                c.mux(p)

        for i in range(n):
            img = index_frame(i)
            if noise:
                img[: H - 16] = rng.integers(0, 256, (H - 16, W, 3), dtype=np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pts is not None or retime is not None:
                f.pts, f.time_base = (pts[i] if pts is not None else i), fractions.Fraction(1, rate)
            mux(s.encode(f))
        mux(s.encode())


def write_out_of_order_timestamps(path: str, n: int = 30, rate: int = 25) -> None:
    """Intra-only frames in display order whose timestamps swap every fourth pair (0, 1, 2, 4, 3, 5, ...), the
    pattern AVI files with packed B-frames show."""
    stamps = list(range(n))
    for i in range(3, n - 1, 4):
        stamps[i], stamps[i + 1] = stamps[i + 1], stamps[i]
    with av.open(path, "w", format="matroska") as c:
        s = c.add_stream("mjpeg", rate=rate)
        s.width, s.height, s.pix_fmt = W, H, "yuvj420p"
        for i in range(n):
            f = av.VideoFrame.from_ndarray(index_frame(i), format="rgb24").reformat(format="yuvj420p")
            f.pts, f.time_base = i, fractions.Fraction(1, rate)
            for p in s.encode(f):
                p.pts, p.dts = stamps[i], max(i - 1, 0)
                c.mux(p)
        for p in s.encode():
            c.mux(p)


# frame timestamps (in 1/15 s) of a file with dropped frames: 18 frames over 29.6 s, declared 15 fps
DROPPED_PTS = [0, 1, 2, 5, 9, 10, 30, 31, 32, 60, 90, 100, 130, 200, 210, 300, 420, 443]


def make_odd_videos(folder) -> dict:
    """name -> (path, display time in seconds of each frame, or None for evenly spaced frames at the rate)."""
    folder = str(folder)
    files = {
        "avi_bframes": (f"{folder}/bframes.avi", None),
        "mp4_bframes": (f"{folder}/bframes.mp4", None),
        "mkv_out_of_order": (f"{folder}/out_of_order.mkv", None),
        "avi_dropped": (f"{folder}/dropped.avi", [p / 15 for p in DROPPED_PTS]),
        "mp4_dropped": (f"{folder}/dropped.mp4", [p / 15 for p in DROPPED_PTS]),
    }
    write_video(files["avi_bframes"][0], "avi", "mpeg4", 40, bframes=2)
    write_video(files["mp4_bframes"][0], "mp4", "mpeg4", 40, bframes=2)
    write_out_of_order_timestamps(files["mkv_out_of_order"][0])
    write_video(files["avi_dropped"][0], "avi", "mpeg4", len(DROPPED_PTS), rate=15, pts=DROPPED_PTS)
    write_video(files["mp4_dropped"][0], "mp4", "mpeg4", len(DROPPED_PTS), rate=15, pts=DROPPED_PTS)
    return files
