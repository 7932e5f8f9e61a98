"""Resize a folder of videos to a short side (e.g. Kinetics to 320 px before training), with PyAV only.

Every video under the input folder becomes an H.264 .mp4 (libx264; `mpeg4` where this PyAV build lacks it) at
the same relative path in the output folder:

- Size: the short side of the displayed picture becomes `short_side`, the long side follows the aspect ratio
  rounded to the nearest even number (4:2:0 chroma needs even sizes); a video whose short side is already at or
  below `short_side` is never upscaled: it keeps its size (an odd side rounded down to even) and is re-encoded
  all the same, so every output is an H.264 .mp4. Non-square pixels (a sample aspect ratio) are resized to
  square ones; a display-matrix rotation (portrait phone videos) is applied to the pixels, so the output is
  stored the right way up without rotation metadata.
- Timing: frame k of the output is frame k of the input in display order. Evenly spaced frames are written at
  exactly the stream's rate (or the rate of their spacing where the header's differs); unevenly spaced ones
  (dropped frames, variable rate) keep their display times. As in `vtn.video.decoder`, the times are the
  sorted packet timestamps of the stream; where timestamps are missing or repeated, frames are counted at the
  declared rate. So the frame count, the rate and the duration are kept.
- Audio is dropped, or with `keep_audio` re-encoded to AAC at its sample rate, starting with the first frame.
- Outputs are whole or absent: each is written to a hidden temporary file next to it (`.NAME.mp4.part`) and
  renamed when finished, so an output that exists is complete, a rerun skips it, and a temporary file left by a
  killed run is removed (or overwritten) by the next run.
- A video that cannot be resized (not a video, no frames, truncated, ...) is reported with the reason and the
  others go on; with several workers, a worker process that dies (a crash inside FFmpeg) costs only the video
  it was resizing.
"""

import math
import os
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Optional

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vtn.utils.errors import UserError
from vtn.video.timestamps import quarter_turns, timeline

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
CODECS = ("auto", "libx264", "mpeg4")
TEMP_SUFFIX = ".part"
MAX_MPEG4_TIME_BASE = 65535  # the mpeg4 encoder refuses a finer time base
FINE_TIME_BASE = Fraction(1, 60000)  # for unevenly spaced frames whose own time base is finer than that
# A stream that ends this much before the duration its header declares is truncated (both must hold).
TRUNCATED_FRACTION, TRUNCATED_SECONDS = 0.1, 1.0
# A video is broken when more of its frames than this cannot be decoded (corrupt packets).
LOST_FRACTION = 0.05
BT601, LIMITED_RANGE = 6, 1  # AVCOL_SPC_SMPTE170M, AVCOL_RANGE_MPEG: what the output is converted to and tagged


class ResizeError(Exception):
    """One video that cannot be resized; the message says why (the path is reported next to it)."""


@dataclass(frozen=True)
class ResizeOptions:
    short_side: int = 320
    crf: int = 23
    preset: str = "medium"
    codec: str = "auto"  # auto: libx264 when this PyAV build has it, else mpeg4
    keep_audio: bool = False
    threads: int = 0  # decoder and encoder threads per video; 0: FFmpeg's choice

    def resolved(self) -> "ResizeOptions":
        """These options with the codec chosen and checked against this PyAV build (a UserError if missing)."""
        codec = self.codec
        if codec == "auto":
            codec = "libx264" if has_encoder("libx264") else "mpeg4"
        if codec not in CODECS[1:] or not has_encoder(codec):
            raise UserError(
                f"--codec {self.codec}: this PyAV build has no {codec} encoder; use one of {', '.join(CODECS)}"
            )
        if self.keep_audio and not has_encoder("aac"):
            raise UserError("--keep-audio: this PyAV build has no aac encoder; run without --keep-audio")
        if self.short_side < 2 or self.short_side % 2:
            raise UserError(f"--short-side {self.short_side}: must be even and at least 2 (4:2:0 chroma)")
        if not 0 <= self.crf <= 51:
            raise UserError(f"--crf {self.crf}: must be between 0 and 51")
        if self.preset not in X264_PRESETS:
            raise UserError(f"--preset {self.preset}: must be one of {', '.join(X264_PRESETS)}")
        return replace(self, codec=codec)


def has_encoder(name: str) -> bool:
    """Whether this PyAV build (its FFmpeg libraries) can encode with the codec `name`."""
    try:
        av.Codec(name, "w")
    except Exception:  # av.codec.codec.UnknownCodecError, or a decoder only
        return False
    return True


def _even(x: float) -> int:
    """The nearest even integer (halves up), at least 2."""
    return max(2, 2 * int(math.floor(x / 2 + 0.5)))


def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) of the output for a displayed picture of `width` x `height`: the short side at
    `short_side` and the long side in proportion, rounded to even; never larger than the input (a smaller one
    keeps its size, an odd side rounded down to even)."""
    if min(width, height) <= short_side:
        return max(2, width - width % 2), max(2, height - height % 2)
    if width <= height:
        return short_side, _even(height * short_side / width)
    return _even(width * short_side / height), short_side


def mpeg4_quantiser(crf: int) -> int:
    """The fixed quantiser (FFmpeg's -q:v, 2 best .. 31) of the mpeg4 fallback for a libx264 --crf."""
    return int(min(31, max(2, round((crf - 8) / 3))))


def temp_path(dst: str) -> str:
    """The hidden temporary file an output is written to before it is renamed: `.NAME.mp4.part`."""
    folder, name = os.path.split(dst)
    return os.path.join(folder, f".{name}{TEMP_SUFFIX}")


# ----------------------------------------------------------------------------- one video
@dataclass
class _Timing:
    """Output time base, the output timestamp of frame k (`pts(k)`), and the duration of the last frame."""

    rate: Fraction  # frames per second given to the encoder (exact for evenly spaced frames)
    time_base: Fraction
    ticks: Optional[list[int]]  # None: frame k at k ticks
    last_duration: int
    start: float  # display time (s) of the input's first frame: the output's (and the audio's) zero
    num_frames: int

    def pts(self, k: int) -> int:
        if self.ticks is None:
            return k
        if k < len(self.ticks):
            return self.ticks[k]
        return self.ticks[-1] + (k - len(self.ticks) + 1) * self.last_duration


def _stream_rate(stream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    raise ResizeError("the video stream has no frame rate")


def _open(path: str):
    try:
        container = av.open(path)
    except Exception as e:  # av.error.*: not a video, truncated header, ...
        raise ResizeError(f"cannot be opened as a video ({describe_error(e)})") from e
    if not container.streams.video:
        container.close()
        raise ResizeError("has no video stream")
    return container


def describe_error(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return f"{e.__class__.__name__}: {text}"


def _header_seconds(container, stream) -> Optional[float]:
    """The video's duration (s) as its header declares it, where it does: the stream's duration, else a
    Matroska DURATION tag, else the container's duration when the video is its only stream."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION", "")
    try:
        h, m, sec = tag.split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        pass
    if container.duration and len(container.streams) == 1:
        return container.duration / 1e6
    return None


def _timing(path: str) -> _Timing:
    """Read the stream's packets (no decoding), place every frame of the output in time, and check that the
    stream lasts as long as its header says (a file cut short, e.g. an interrupted download, fails)."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = _stream_rate(stream)
        try:
            pts = [p.pts for p in container.demux(stream) if p.size > 0 and not getattr(p, "is_discard", False)]
        except Exception as e:
            raise ResizeError(f"cannot read the video stream ({describe_error(e)})") from e
        if not pts:
            raise ResizeError("the video stream has no frames")
        tb, length, first = stream.time_base, stream.duration, stream.start_time or 0
        header, expected = _header_seconds(container, stream), stream.frames or 0
    finally:
        container.close()
    count, declared = len(pts), None
    if tb and None not in pts and len(set(pts)) == count:
        ordered = sorted(pts)
        if length:  # the stream's own duration, from its first frame (as vtn.video.decoder reads it)
            declared = float((length + first - ordered[0]) * tb)
        fps, times, duration = timeline(ordered, tb, rate, declared)
        start = float(ordered[0] * tb)
        end = float((ordered[-1] - ordered[0]) * tb) + 1 / float(rate)  # where the frames end
        header = header - float((ordered[0] - first) * tb) if header else None
    else:  # timestamps missing or repeated: count frames at the declared rate
        ordered, start = None, float(first * tb) if tb else 0.0
        fps, times, duration = float(rate), None, count / float(rate)
        end = duration
    # the header's frame count only for evenly spaced frames (an AVI counts its dropped frames in it)
    should = max(header or 0.0, expected / fps if times is None else 0.0)
    if should - end > max(TRUNCATED_SECONDS, TRUNCATED_FRACTION * should):
        raise ResizeError(f"truncated: its frames end at {end:.2f} s of the {should:.2f} s its header declares")
    if times is None:  # evenly spaced: frame k at k / rate exactly
        exact = rate if abs(float(rate) - fps) <= 1e-6 * fps else Fraction(fps).limit_denominator(1001)
        return _Timing(exact, 1 / exact, None, 1, start, count)
    time_base = Fraction(tb)
    if time_base.denominator > MAX_MPEG4_TIME_BASE:
        time_base = FINE_TIME_BASE
    ticks, last = [], -1
    for p in ordered:
        tick = max(round((p - ordered[0]) * tb / time_base), last + 1)
        ticks.append(tick)
        last = tick
    last_duration = max(1, round((Fraction(duration) - Fraction(times[-1])) / time_base))
    return _Timing(Fraction(fps).limit_denominator(1001), time_base, ticks, last_duration, start, count)


def _display_size(frame, stream) -> tuple[int, int, int]:
    """(width, height, quarter turns) of the picture as displayed: sample aspect ratio and rotation applied."""
    width, height = frame.width, frame.height
    sar = stream.codec_context.sample_aspect_ratio or stream.sample_aspect_ratio
    if sar and sar > 0 and sar != 1:
        width = max(1, int(round(width * float(sar))))
    turns = quarter_turns(getattr(frame, "rotation", 0))
    return (height, width, turns) if turns % 2 else (width, height, turns)


def _add_video_stream(out, options: ResizeOptions, timing: _Timing, width: int, height: int):
    stream = out.add_stream(options.codec, rate=timing.rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_context.colorspace, stream.codec_context.color_range = BT601, LIMITED_RANGE
    stream.codec_context.time_base = timing.time_base
    stream.time_base = timing.time_base
    if options.threads:
        stream.codec_context.thread_count = options.threads
    if options.codec == "libx264":
        stream.options = {"crf": str(options.crf), "preset": options.preset}
    else:  # mpeg4: a fixed quantiser, as ffmpeg -q:v
        q = mpeg4_quantiser(options.crf)
        stream.options = {"flags": "+qscale", "global_quality": str(q * 118)}  # FF_QP2LAMBDA = 118
    return stream


def _color_range(frame) -> str:
    """The frame's range of YUV values: full (JPEG) or limited (MPEG); yuvj formats are full range."""
    if int(getattr(frame, "color_range", 0) or 0) == 2 or frame.format.name.startswith("yuvj"):
        return "JPEG"
    return "MPEG"


def _reformat(reformatter, frame, width: int, height: int, fmt: str, **colors):
    try:
        return reformatter.reformat(frame, width, height, fmt, interpolation="BICUBIC", **colors)
    except TypeError:  # a PyAV without colour ranges in reformat: swscale's defaults
        colors = {k: v for k, v in colors.items() if k.endswith("colorspace")}
        return reformatter.reformat(frame, width, height, fmt, interpolation="BICUBIC", **colors)


def _scaled(reformatter, frame, width: int, height: int, turns: int):
    """The frame at the output size, the right way up, ready for the encoder: BT.601 limited-range yuv420p (the
    output's tags), converted from the frame's own colour matrix and range."""
    source = _color_range(frame)
    if not turns:
        out = _reformat(
            reformatter,
            frame,
            width,
            height,
            "yuv420p",
            dst_colorspace="ITU601",
            src_color_range=source,
            dst_color_range="MPEG",
        )
    else:  # resize the coded picture to the rotated size, then turn the pixels (the encoder converts to BT.601)
        w, h = (height, width) if turns % 2 else (width, height)
        rgb = _reformat(reformatter, frame, w, h, "rgb24", src_color_range=source, dst_color_range="JPEG")
        out = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(rgb.to_ndarray(), turns)), format="rgb24")
    out.pict_type = 0  # let the encoder choose the frame types
    return out


class _AudioCopy:
    """Re-encodes the input's first audio stream to AAC, its timestamps shifted by the video's start."""

    def __init__(self, out, stream, start: float):
        self.start = start
        self.output = out.add_stream("aac", rate=stream.codec_context.sample_rate or stream.rate)
        layout = stream.codec_context.layout
        if layout is not None and layout.nb_channels:
            self.output.layout = layout
        self.next_pts = None

    def encode(self, frame):
        rate = self.output.codec_context.sample_rate
        t = float(frame.pts * frame.time_base) - self.start if frame.pts is not None and frame.time_base else None
        if t is not None and t + frame.samples / max(frame.sample_rate, 1) <= 0:
            return []  # entirely before the first video frame
        if self.next_pts is None:
            self.next_pts = max(0, round(t * rate)) if t is not None else 0
        frame.pts, frame.time_base = self.next_pts, Fraction(1, rate)
        self.next_pts += round(frame.samples * rate / max(frame.sample_rate, 1))
        return self.output.encode(frame)

    def flush(self):
        return self.output.encode(None)


def resize_video(src: str, dst: str, options: ResizeOptions) -> dict:
    """Resize `src` into `dst` (an .mp4, written through its temporary file); `options` must be resolved.
    Returns {frames, width, height}. Raises ResizeError (the reason) when the video cannot be resized."""
    if not os.path.isfile(src):
        raise ResizeError("file does not exist")
    if os.path.getsize(src) == 0:
        raise ResizeError("file is empty (0 bytes)")
    folder = os.path.dirname(dst)
    os.makedirs(folder or ".", exist_ok=True)
    tmp = temp_path(dst)
    try:
        result = _encode(src, tmp, options)
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return result


def _encode(src: str, tmp: str, options: ResizeOptions) -> dict:
    timing = _timing(src)
    container = _open(src)
    try:
        with av.open(tmp, "w", format="mp4") as out:  # the format by name: the temporary name ends in .part
            return _transcode(container, out, timing, options)
    finally:
        container.close()


def _transcode(container, out, timing: _Timing, options: ResizeOptions) -> dict:
    vin = container.streams.video[0]
    vin.thread_type = "AUTO"
    if options.threads:
        vin.codec_context.thread_count = options.threads
    ain = container.streams.audio[0] if options.keep_audio and container.streams.audio else None
    state = {"video": None, "audio": None, "size": None, "frames": 0}
    reformatter = VideoReformatter()
    pending_audio = []  # audio decoded before the first video frame, which creates the output's streams

    def mux(packets):
        for packet in packets:
            if packet.stream_index == state["video"].index and not packet.duration:
                packet.duration = timing.last_duration
            out.mux(packet)

    def video(frames):
        for frame in frames:
            if state["video"] is None:  # the first frame tells the size and the rotation
                width, height, turns = _display_size(frame, vin)
                state["size"] = (*output_size(width, height, options.short_side), turns)
                state["video"] = _add_video_stream(out, options, timing, *state["size"][:2])
                if ain is not None:
                    state["audio"] = _AudioCopy(out, ain, timing.start)
            scaled = _scaled(reformatter, frame, *state["size"])
            scaled.pts, scaled.time_base = timing.pts(state["frames"]), timing.time_base
            state["frames"] += 1
            mux(state["video"].encode(scaled))

    errors = 0
    for packet in container.demux(*([vin] + ([ain] if ain is not None else []))):
        is_video = packet.stream_index == vin.index
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            errors += is_video
            continue  # a corrupt packet: its frames are lost (a video that loses too many fails below)
        if is_video:
            video(frames)
        else:
            pending_audio.extend(frames)
        if state["audio"] is not None and pending_audio:
            for frame in pending_audio:
                mux(state["audio"].encode(frame))
            pending_audio = []
    if state["video"] is None:
        raise ResizeError("no frame can be decoded" + (f" ({errors} corrupt packets)" if errors else ""))
    lost = timing.num_frames - state["frames"]
    if lost > max(1, LOST_FRACTION * timing.num_frames):
        raise ResizeError(f"{lost} of its {timing.num_frames} frames cannot be decoded (corrupt or truncated)")
    mux(state["video"].encode(None))
    if state["audio"] is not None:
        mux(state["audio"].flush())
    width, height = state["size"][:2]
    return {"frames": state["frames"], "width": width, "height": height}
