"""Video decoding behind a registry (DATA.DECODING_BACKEND), PyAV by default.

A decoder answers two questions:
- `probe(path)`: the video's timeline and size. Frames are counted from the packets (headers may lack or misstate
  the count); each frame's display time comes from the packet timestamps, so the duration is the real one also
  when frames are unevenly spaced (dropped frames, variable frame rate); the size is the displayed one, after
  the rotation of the file's display matrix (portrait phone videos).
- `decode(path, indices, size, info)`: the frames at the given frame indices, as uint8 `(N, H, W, 3)` RGB the right
  way up, plus the indices actually returned. It seeks once (to the keyframe before the first wanted frame),
  decodes forward, and converts to RGB (resizing to `size` in the same step) only the frames it keeps.

Frame index k is the k-th frame the decoder outputs: the display order. After a seek a frame's index comes from
its timestamp, checked against the probe's timeline; where timestamps are missing, repeated or out of order
(AVI files with packed B-frames), the decoder counts frames from the start of the file instead, with the
declared rate (said once per video at debug level), and never returns one frame in place of another.
Decoding problems raise `VideoDecodeError`, which names the file and the reason.
"""

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import numpy as np

from vtn.config import register_choices
from vtn.utils.errors import UserError
from vtn.utils.registry import Registry

logger = logging.getLogger(__name__)
DECODER_REGISTRY = Registry("video decoder")
register_choices("DATA.DECODING_BACKEND", DECODER_REGISTRY.names)

# Frames whose spacing differs from the median spacing by more than this fraction make a timeline uneven.
UNEVEN_SPACING = 0.25


class VideoDecodeError(UserError, RuntimeError):
    """A video that cannot be read; the message names the file and the reason."""


class _OutOfOrder(Exception):
    """Frame timestamps that do not follow the display order: decode again, counting frames."""


class _SeekOvershot(Exception):
    """The seek landed after the first wanted frame (keyframes indexed by decode time): seek earlier."""


@dataclass(frozen=True)
class VideoInfo:
    """What sampling needs of a video. `fps`: the stream's rate when frames are evenly spaced, else frames per
    second on average (num_frames / duration). `times`: display time in seconds of each frame from the first
    one, only when frames are unevenly spaced (None: frame k is shown at k / fps). `start_pts`: the first frame's
    timestamp (None: the file's timestamps cannot be used, frames are counted). `rotation`: quarter turns
    counterclockwise that put the decoded picture the right way up; width and height are those after it."""

    fps: float
    num_frames: int
    duration: float
    width: int
    height: int
    times: Optional[tuple[float, ...]] = None
    start_pts: Optional[int] = None
    rotation: int = 0


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise VideoDecodeError(f"{path}: file does not exist")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(f"{path}: file is empty (0 bytes)")


def quarter_turns(degrees) -> int:
    """Counterclockwise quarter turns (0-3) of a display-matrix rotation in degrees (FFmpeg's convention)."""
    return int(round((degrees or 0) / 90.0)) % 4


def timeline(
    pts: Sequence[int], time_base: Fraction, rate: Fraction, declared: Optional[float] = None
) -> tuple[float, Optional[tuple[float, ...]], float]:
    """(fps, times or None, duration) from the sorted timestamps of a stream's frames. Evenly spaced frames keep
    the stream's rate (or the rate of their spacing when the header's differs); unevenly spaced ones keep their
    times, and the duration runs to the end of the last frame (`declared`: the stream's own duration in seconds
    from the first frame, when the container gives one)."""
    times = (np.asarray(pts, dtype=np.float64) - pts[0]) * float(time_base)
    steps = np.diff(times)
    positive = steps[steps > 0]
    if len(times) < 3 or len(positive) < len(steps):
        return float(rate), None, len(times) / float(rate)
    step = float(np.median(steps))
    if np.all(np.abs(steps - step) <= UNEVEN_SPACING * step):
        fps = float(rate) if abs(float(rate) * step - 1.0) < 0.01 else 1.0 / step
        return fps, None, len(times) / fps
    end = float(times[-1]) + float(positive.min())
    duration = declared if declared is not None and declared >= end - 1e-6 else end
    return len(times) / duration, tuple(float(t) for t in times), duration


@DECODER_REGISTRY.register_as("pyav")
class PyAVDecoder:
    """PyAV (FFmpeg) decoding with threaded decoding, one seek per request and conversion of kept frames only."""

    def __init__(self, threads: str = "AUTO"):
        self.threads = threads
        self._counted = set()  # files whose timestamps proved out of order: frames are counted from the start

    # ------------------------------------------------------------------ helpers
    def _open(self, path: str):
        import av  # heavy (FFmpeg libraries): only when a video is opened

        _check_file(path)
        try:
            container = av.open(path)
        except Exception as e:  # av.error.* and OSError: not a video, truncated header, ...
            raise VideoDecodeError(f"{path}: cannot be opened as a video ({e.__class__.__name__}: {e})") from e
        if not container.streams.video:
            container.close()
            raise VideoDecodeError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = self.threads
        return container, stream

    @staticmethod
    def _fps(stream, path: str) -> Fraction:
        for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
            if rate and rate > 0:
                return Fraction(rate)
        raise VideoDecodeError(f"{path}: the video stream has no frame rate")

    # ------------------------------------------------------------------ API
    def probe(self, path: str) -> VideoInfo:
        container, stream = self._open(path)
        try:
            rate = self._fps(stream, path)
            pts, rotation, first_frame = [], None, None
            # Read the packets without decoding them (headers may lack or misstate the count), and decode only
            # until the first frame, which carries the rotation of the display matrix and the coded size.
            try:
                for packet in container.demux(stream):
                    if packet.size <= 0:
                        continue
                    pts.append(packet.pts)
                    if first_frame is None and len(pts) <= 32:
                        try:
                            frames = packet.decode()
                        except Exception:  # a corrupt first packet: the size then comes from the header
                            frames = []
                        if frames:
                            first_frame = frames[0]
            except Exception as e:
                raise VideoDecodeError(f"{path}: cannot read the stream ({e.__class__.__name__}: {e})") from e
            if not pts:
                raise VideoDecodeError(f"{path}: the video stream has no frames")
            count = len(pts)
            usable = None not in pts and len(set(pts)) == count
            if usable:
                ordered = sorted(pts)
                declared = None
                if stream.duration:
                    declared = float((stream.duration + (stream.start_time or 0) - ordered[0]) * stream.time_base)
                fps, times, duration = timeline(ordered, stream.time_base, rate, declared)
                start = ordered[0]
            else:
                logger.debug("%s: frame timestamps missing or repeated; frames are counted at %s fps", path, rate)
                fps, times, duration, start = float(rate), None, count / float(rate), None
            width, height = stream.codec_context.width, stream.codec_context.height
            if first_frame is not None:
                width, height = first_frame.width, first_frame.height
                rotation = quarter_turns(getattr(first_frame, "rotation", 0))
            rotation = rotation or 0
            if rotation % 2:
                width, height = height, width
            return VideoInfo(fps, count, duration, width, height, times, start, rotation)
        finally:
            container.close()

    def decode(
        self,
        path: str,
        indices: Sequence[int],
        size: Optional[tuple[int, int]] = None,
        info: Optional[VideoInfo] = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Frames at `indices` (any order, repeats allowed) as uint8 (N, H, W, 3), and the indices returned.

        `size` = (width, height) of the displayed picture resizes while converting; `info` is the video's probe
        (probed here when not given). Indices beyond the end of the stream are not returned; the caller decides
        how to fill them (see sampling.py).
        """
        wanted = np.unique(np.asarray(indices, dtype=np.int64))
        if wanted.size == 0:
            raise ValueError("decode() needs at least one frame index")
        wanted_set = set(wanted.tolist())
        kept = {}
        for idx, frame in self._frames_from(path, int(wanted[0]), int(wanted[-1]), info):
            if idx in kept or idx not in wanted_set:
                continue
            kept[idx] = self._to_rgb(frame, size)
        if not kept:
            raise VideoDecodeError(f"{path}: no frame could be decoded at indices {int(wanted[0])}..{int(wanted[-1])}")
        order = [int(i) for i in np.asarray(indices) if int(i) in kept]
        return np.stack([kept[i] for i in order]), np.asarray(order, dtype=np.int64)

    def iter_frames(
        self,
        path: str,
        indices: Sequence[int],
        size: Optional[tuple[int, int]] = None,
        chunk: int = 32,
        info: Optional[VideoInfo] = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Like `decode`, for sorted `indices`, yielding chunks of at most `chunk` frames: memory stays bounded
        by the chunk however long the video is."""
        wanted = np.asarray(indices, dtype=np.int64)
        if wanted.size == 0 or np.any(np.diff(wanted) < 0):
            raise ValueError("iter_frames() needs sorted frame indices")
        uniq = np.unique(wanted)
        pos = 0
        buf, buf_idx = [], []
        for idx, frame in self._frames_from(path, int(uniq[0]), int(uniq[-1]), info):
            while pos < len(wanted) and wanted[pos] < idx:
                pos += 1  # a frame missing from the stream: skipped
            if pos >= len(wanted) or wanted[pos] != idx:
                continue
            rgb = self._to_rgb(frame, size)
            while pos < len(wanted) and wanted[pos] == idx:
                buf.append(rgb)
                buf_idx.append(idx)
                pos += 1
                if len(buf) == chunk:
                    yield np.stack(buf), np.asarray(buf_idx, dtype=np.int64)
                    buf, buf_idx = [], []
        if buf:
            yield np.stack(buf), np.asarray(buf_idx, dtype=np.int64)

    def _frames_from(self, path: str, first: int, last: int, info: Optional[VideoInfo] = None):
        """(index, av.VideoFrame) for frames first..last in display order, each index once, in increasing order.

        Seeks when the file's timestamps allow it and maps each frame's timestamp to its index on the probe's
        timeline; a frame whose timestamp does not follow the previous one's (packed B-frames) switches the file
        to counting frames from the start, before any frame of the wrong index is returned.
        """
        info = info or self.probe(path)
        if info.start_pts is not None and path not in self._counted:
            try:
                seek = first
                while True:
                    try:
                        yield from self._decode_frames(path, first, last, info, by_timestamp=True, seek=seek)
                        return
                    except _SeekOvershot:
                        seek = max(0, seek - max(1, int(2 * info.fps)))  # two seconds earlier
            except _OutOfOrder:
                self._counted.add(path)
                logger.debug(
                    "%s: frame timestamps are out of display order; frames are counted from the start at %g fps",
                    path,
                    info.fps,
                )
        yield from self._decode_frames(path, first, last, info, by_timestamp=False)

    def _decode_frames(self, path: str, first: int, last: int, info: VideoInfo, by_timestamp: bool, seek: int = 0):
        """Frames first..last (see `_frames_from`); `by_timestamp`: after a seek to the keyframe before frame
        `seek`, indices from timestamps; else counted from the start."""
        container, stream = self._open(path)
        bad = good = 0
        try:
            index_of = self._indexer(stream, info) if by_timestamp else None
            if by_timestamp and seek > 0:
                target = info.start_pts + self._ticks(stream, info, seek)
                container.seek(target, stream=stream, backward=True, any_frame=False)
            count = 0
            previous = None  # (index, frame), held back until the next frame confirms its index
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except Exception as e:  # av.error.InvalidDataError and friends: a corrupt packet
                    bad += 1
                    if bad > 10 and bad > good:
                        raise VideoDecodeError(f"{path}: most packets are corrupt ({bad} failed to decode)") from e
                    continue
                good += 1
                for frame in frames:
                    if not by_timestamp:
                        idx = count
                    elif frame.pts is None:
                        raise _OutOfOrder
                    else:
                        idx = index_of(frame.pts)
                        if previous is not None and idx <= previous[0]:
                            raise _OutOfOrder  # before `previous`, maybe a frame of another index, is returned
                        if previous is None and count == 0 and idx > first and seek > 0:
                            raise _SeekOvershot  # nothing was returned yet
                    count += 1
                    if previous is not None and first <= previous[0] <= last:
                        yield previous
                    # past the range: done, unless the index skipped one that may still come out of order
                    if idx > last and (previous is None or previous[0] >= last or idx == previous[0] + 1):
                        return
                    previous = (idx, frame)
            if previous is not None and first <= previous[0] <= last:
                yield previous
        except (VideoDecodeError, _OutOfOrder, _SeekOvershot):
            raise
        except Exception as e:  # a broken container (truncated index, unreadable data)
            raise VideoDecodeError(f"{path}: decoding failed ({e.__class__.__name__}: {e})") from e
        finally:
            if bad:
                logger.warning("%s: skipped %d corrupt packets", path, bad)
            container.close()

    @staticmethod
    def _ticks(stream, info: VideoInfo, index: int) -> int:
        """Timestamp ticks from the first frame to frame `index` (its display time)."""
        t = info.times[min(index, info.num_frames - 1)] if info.times is not None else index / info.fps
        return int(t / stream.time_base)

    @staticmethod
    def _indexer(stream, info: VideoInfo):
        """Frame timestamp -> frame index on the probe's timeline."""
        tb = float(stream.time_base)
        if info.times is None:
            return lambda pts: int(round((pts - info.start_pts) * tb * info.fps))
        times = np.asarray(info.times)

        def index_of(pts: int) -> int:
            t = (pts - info.start_pts) * tb
            return int(np.clip(np.searchsorted(times, t + 0.5 * tb, side="right") - 1, 0, info.num_frames - 1))

        return index_of

    @staticmethod
    def _to_rgb(frame, size: Optional[tuple[int, int]]) -> np.ndarray:
        """The frame as RGB the right way up, resized so that its displayed size is `size` (width, height)."""
        turns = quarter_turns(getattr(frame, "rotation", 0))
        if size is None:
            rgb = frame.to_ndarray(format="rgb24")
        else:
            width, height = (int(size[1]), int(size[0])) if turns % 2 else (int(size[0]), int(size[1]))
            rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
        return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def build_decoder(cfg):
    return DECODER_REGISTRY.get(cfg.DATA.DECODING_BACKEND)()
