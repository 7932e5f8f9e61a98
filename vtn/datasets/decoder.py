"""Video decoding behind a registry (DATA.DECODING_BACKEND), PyAV by default.

A decoder answers two questions:
- `probe(path)`: fps, the number of frames (counted from the packets when the header is missing or wrong),
  duration and size;
- `decode(path, indices, size)`: the frames at the given frame indices, as uint8 `(N, H, W, 3)` RGB, plus the
  indices actually returned. It seeks once (to the keyframe before the first wanted frame), decodes forward,
  and converts to RGB (resizing to `size` in the same step) only the frames it keeps.

Frame indices are positions in the decoded stream (0-based), computed from each frame's timestamp, so they
stay right after a seek. Decoding problems raise `VideoDecodeError`, which names the file and the reason.
"""
import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np

from vtn.utils.errors import UserError
from vtn.utils.registry import Registry

logger = logging.getLogger(__name__)
DECODER_REGISTRY = Registry("video decoder")


class VideoDecodeError(UserError, RuntimeError):
    """A video that cannot be read; the message names the file and the reason."""


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    num_frames: int
    duration: float
    width: int
    height: int


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise VideoDecodeError(f"{path}: file does not exist")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(f"{path}: file is empty (0 bytes)")


@DECODER_REGISTRY.register_as("pyav")
class PyAVDecoder:
    """PyAV (FFmpeg) decoding with threaded decoding, one seek per request and conversion of kept frames only."""

    def __init__(self, threads: str = "AUTO"):
        self.threads = threads

    # ------------------------------------------------------------------ helpers
    def _open(self, path: str):
        import av

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

    @staticmethod
    def _start(stream) -> int:
        return stream.start_time if stream.start_time is not None else 0

    @staticmethod
    def _index_of(frame, stream, fps: Fraction, start: int, fallback: int) -> int:
        if frame.pts is None:
            return fallback
        return int(round((frame.pts - start) * stream.time_base * fps))

    # ------------------------------------------------------------------ API
    def probe(self, path: str) -> VideoInfo:
        container, stream = self._open(path)
        try:
            fps = self._fps(stream, path)
            # Count the packets of the stream without decoding them: headers may lack or misstate the count.
            try:
                count = sum(1 for p in container.demux(stream) if p.size > 0)
            except Exception as e:
                raise VideoDecodeError(f"{path}: cannot read the stream ({e.__class__.__name__}: {e})") from e
            if count == 0:
                raise VideoDecodeError(f"{path}: the video stream has no frames")
            return VideoInfo(float(fps), count, count / float(fps), stream.codec_context.width,
                             stream.codec_context.height)
        finally:
            container.close()

    def decode(
        self, path: str, indices: Sequence[int], size: Optional[Tuple[int, int]] = None
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Frames at `indices` (any order, repeats allowed) as uint8 (N, H, W, 3), and the indices returned.

        `size` = (width, height) resizes while converting. Indices beyond the end of the stream are not
        returned; the caller decides how to fill them (see sampling.py).
        """
        wanted = np.unique(np.asarray(indices, dtype=np.int64))
        if wanted.size == 0:
            raise ValueError("decode() needs at least one frame index")
        wanted_set = set(wanted.tolist())
        kept = {}
        for idx, frame in self._frames_from(path, int(wanted[0]), int(wanted[-1])):
            if idx in kept or idx not in wanted_set:
                continue
            kept[idx] = self._to_rgb(frame, size)
        if not kept:
            raise VideoDecodeError(f"{path}: no frame could be decoded at indices {int(wanted[0])}..{int(wanted[-1])}")
        order = [int(i) for i in np.asarray(indices) if int(i) in kept]
        return np.stack([kept[i] for i in order]), np.asarray(order, dtype=np.int64)

    def iter_frames(
        self, path: str, indices: Sequence[int], size: Optional[Tuple[int, int]] = None, chunk: int = 32
    ) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        """Like `decode`, for sorted `indices`, yielding chunks of at most `chunk` frames: memory stays bounded
        by the chunk however long the video is."""
        wanted = np.asarray(indices, dtype=np.int64)
        if wanted.size == 0 or np.any(np.diff(wanted) < 0):
            raise ValueError("iter_frames() needs sorted frame indices")
        uniq = np.unique(wanted)
        pos = 0
        buf, buf_idx = [], []
        for idx, frame in self._frames_from(path, int(uniq[0]), int(uniq[-1])):
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

    def _frames_from(self, path: str, first: int, last: int):
        """(index, av.VideoFrame) for frames first..last, after one seek to the keyframe before `first`.

        Packets that fail to decode (corrupt data in the middle of a file) are skipped and counted; a file
        where most packets fail is an error.
        """
        container, stream = self._open(path)
        bad = good = 0
        try:
            fps = self._fps(stream, path)
            start = self._start(stream)
            if first > 0:
                target = start + int(first / fps / stream.time_base)
                container.seek(target, stream=stream, backward=True, any_frame=False)
            count = 0
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except Exception:  # av.error.InvalidDataError and friends: a corrupt packet
                    bad += 1
                    if bad > 10 and bad > good:
                        raise VideoDecodeError(f"{path}: most packets are corrupt ({bad} failed to decode)")
                    continue
                good += 1
                for frame in frames:
                    idx = self._index_of(frame, stream, fps, start, count if first == 0 else -1)
                    count += 1
                    if idx < 0:
                        raise VideoDecodeError(f"{path}: frames carry no timestamps; cannot seek in this file")
                    if idx > last:
                        return
                    if idx >= first:
                        yield idx, frame
        except VideoDecodeError:
            raise
        except Exception as e:  # a broken container (truncated index, unreadable data)
            raise VideoDecodeError(f"{path}: decoding failed ({e.__class__.__name__}: {e})") from e
        finally:
            if bad:
                logger.warning("%s: skipped %d corrupt packets", path, bad)
            container.close()

    @staticmethod
    def _to_rgb(frame, size: Optional[Tuple[int, int]]) -> np.ndarray:
        if size is None:
            return frame.to_ndarray(format="rgb24")
        return frame.to_ndarray(format="rgb24", width=int(size[0]), height=int(size[1]))


def build_decoder(cfg):
    return DECODER_REGISTRY.get(cfg.DATA.DECODING_BACKEND)()
