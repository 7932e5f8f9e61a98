"""What a video stream's timestamps say, for the decoder (vtn/video/decoder.py): the timeline of a stream (fps,
uneven frame times, duration), the rotation of its display matrix, whether frames may be skipped, the mapping from
a timestamp to a frame index, the per-packet skipping of non-reference frames (`Skipper`) and the frame indices
after a seek in MPEG program streams (`StoredStamps`). The decoder's module docstring says why each exists."""

import logging
from collections.abc import Sequence
from fractions import Fraction
from typing import Optional

import numpy as np

from vtn.utils.logging import log_once

logger = logging.getLogger("vtn.video.decoder")  # one logger for what decoding says, wherever it is decided


# Frames whose spacing differs from the median spacing by more than this fraction make a timeline uneven.
UNEVEN_SPACING = 0.25


class OutOfOrder(Exception):
    """Frame timestamps that do not follow the display order: decode again, counting frames."""


class SeekOvershot(Exception):
    """The seek landed after the first wanted frame (keyframes indexed by decode time): seek earlier."""


class SkipMissed(Exception):
    """A wanted frame did not come out while non-reference frames were skipped: decode in full from `index`."""

    def __init__(self, index: int):
        super().__init__(index)
        self.index = index


# Containers whose packets carry presentation timestamps of their own (FFmpeg format names): in others (AVI,
# raw streams) the demuxer makes them up, and a packet's timestamp cannot say which frame it holds.
SKIP_CONTAINERS = frozenset({"mov", "mp4", "matroska", "webm"})
# Containers whose demuxer makes up the timestamps of the frames that do not start a pack of their own (MPEG
# program streams: one stored timestamp per pack of 2 KiB, shared by the small frames that start in it), and makes
# them up wrong after a seek: there decoding after a seek reads only the stored ones (see `StoredStamps`).
PARTLY_STAMPED_CONTAINERS = frozenset({"mpeg"})
# Codecs whose files carry a history of timestamps swapped between neighbouring frames (DivX/Xvid remuxes): the
# neighbours of each wanted frame are decoded too, so that such a swap shows as frames out of order.
SWAPPED_TIMESTAMP_CODECS = frozenset({"mpeg4", "msmpeg4v1", "msmpeg4v2", "msmpeg4v3"})


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


def keyframes_start_display_order(pts: Sequence[int], keys: Sequence[bool]) -> bool:
    """Whether every keyframe is shown after every packet decoded before it, as a point where decoding can start
    must be: timestamps that break this are out of display order (packed B-frames, a bad muxer)."""
    shown_before = None
    for p, key in zip(pts, keys):
        if key and shown_before is not None and p <= shown_before:
            return False
        shown_before = p if shown_before is None else max(shown_before, p)
    return True


def packed_b_frames(stream, packet) -> bool:
    """Whether an MPEG-4 part 2 packet holds two pictures (DivX/Xvid "packed B-frames", whose timestamps belong to
    other frames than the ones decoded from them)."""
    return stream.codec_context.name == "mpeg4" and bytes(packet).count(b"\x00\x00\x01\xb6") > 1


def skippable(path: str, container, stream, pts: Sequence[int], packed: bool) -> bool:
    """Whether frames may be skipped: the stream has B-frames (without them nearly every frame is a reference,
    and skipping would only cost its bookkeeping) and the packets' timestamps say which frame each holds (see
    SKIP_CONTAINERS). Files in other containers are said once per container format; the rest at debug level (a
    file whose timestamps are out of display order is said when decoding finds it out, see `fall_back`)."""
    if not SKIP_CONTAINERS.intersection(container.format.name.split(",")):
        log_once(
            logger,
            logging.INFO,
            f"videos that are in {container.format.name} containers are decoded without skipping frames: the "
            f"demuxer makes up their timestamps (first: {path})",
            key=container.format.name,
        )
        return False
    if not stream.codec_context.has_b_frames:
        reason = "has no B-frames, so (nearly) every frame is a reference"
    elif packed:
        reason = "has packed B-frames (DivX/Xvid)"
    elif all(b > a for a, b in zip(pts, pts[1:])):
        reason = "may have B-frames but has timestamps in decoding order"
    else:
        return True
    logger.debug("%s: frames are not skipped: the video %s", path, reason)
    return False


def fall_back(path: str, problem: str, fps: float) -> None:
    """One line for a file decoded in full because of its timestamps: at info level for the first such file of
    the process (datasets of old AVI files have thousands of them), at debug level for each."""
    logger.debug("%s: %s; decoded in full, frames counted from the start at %g fps", path, problem, fps)
    log_once(
        logger,
        logging.INFO,
        f"videos whose {problem} are decoded in full, frames counted from the start (first: {path}; each one is "
        "logged at debug level)",
        key=problem,
    )


class Skipper:
    """Per packet, FFmpeg's skip_frame: NONREF for a packet whose timestamp is not a wanted frame's or within
    `margin` frames of one (a reference frame is still decoded, a non-reference one is dropped), DEFAULT otherwise
    (a packet without a timestamp too).
    `check_none_missed` raises `SkipMissed` when a wanted frame failed to come out between two that did."""

    def __init__(self, codec_context, wanted: np.ndarray, index_of, margin: Optional[int] = None):
        self.context, self.index_of = codec_context, index_of
        if margin is None:  # one neighbour each side in the codecs of SWAPPED_TIMESTAMP_CODECS, else none
            margin = 1 if codec_context.name in SWAPPED_TIMESTAMP_CODECS else 0
        self.wanted = wanted
        self.wanted_set = set(wanted.tolist())
        if margin:  # the neighbours too: a timestamp swapped with a neighbour's shows as two frames out of order
            self.wanted_set |= {w + d for w in self.wanted_set for d in range(-margin, margin + 1)}
        self.skipped = set()  # indices of the frames whose packets were allowed to be skipped
        self.mode = codec_context.skip_frame

    def before(self, packet) -> None:
        idx = None if packet.pts is None or packet.size <= 0 else self.index_of(packet.pts)
        mode = "DEFAULT" if idx is None or idx in self.wanted_set else "NONREF"
        if mode == "NONREF":
            self.skipped.add(idx)
        if mode != self.mode:
            self.context.skip_frame = self.mode = mode

    def check_none_missed(self, after: int, before: int) -> None:
        """No wanted frame strictly between the frames at `after` and `before` that came out one after the other."""
        lo = int(np.searchsorted(self.wanted, after, side="right"))
        if lo < len(self.wanted) and self.wanted[lo] < before:
            raise SkipMissed(int(self.wanted[lo]))


class StoredStamps:
    """Frame indices after a seek in a container of PARTLY_STAMPED_CONTAINERS, read with FFmpeg's `no_fillin` (a
    frame without a stored timestamp comes out without one): a frame with one takes its index on the timeline; a
    frame without one takes the index after the frame before it, held back until the next stored timestamp (or the
    end of the stream) shows that no frame went missing between them; frames before the first stored timestamp have
    no known index and are dropped (when a wanted one was among them, the seek overshot)."""

    def __init__(self, index_of, num_frames: int):
        self.index_of, self.num_frames = index_of, num_frames
        self.anchor = None  # index of the last frame that came out with a stored timestamp
        self.held = []  # the frames that came out after it

    def push(self, frame) -> list:
        """(index, frame) of the frames whose index is known once `frame` came out, in order."""
        if frame.pts is None:
            if self.anchor is not None:
                self.held.append(frame)
            return []
        idx = self.index_of(frame.pts)
        ready = self._release(idx)
        self.anchor, self.held = idx, []
        return ready + [(idx, frame)]

    def end(self) -> list:
        """(index, frame) of the frames held at the end of the stream, which ends with the timeline's last frame."""
        return self._release(self.num_frames)

    def _release(self, following: int) -> list:
        if not self.held:
            return []
        if self.anchor + len(self.held) + 1 != following:
            raise OutOfOrder  # frames went missing (or came in excess) between two stored timestamps
        return [(self.anchor + 1 + k, frame) for k, frame in enumerate(self.held)]


def seek_ticks(stream, info, index: int) -> int:
    """Timestamp ticks from the first frame to frame `index` (its display time)."""
    t = info.times[min(index, info.num_frames - 1)] if info.times is not None else index / info.fps
    return int(t / stream.time_base)


def frame_indexer(stream, info):
    """Frame timestamp -> frame index on the probe's timeline."""
    tb = float(stream.time_base)
    if info.times is None:
        return lambda pts: int(round((pts - info.start_pts) * tb * info.fps))
    times = np.asarray(info.times)

    def index_of(pts: int) -> int:
        t = (pts - info.start_pts) * tb
        return int(np.clip(np.searchsorted(times, t + 0.5 * tb, side="right") - 1, 0, info.num_frames - 1))

    return index_of


def keyframe_indices(pts: Sequence[int], keys: Sequence[bool]) -> tuple[int, ...]:
    """Display indices of the keyframes, from the packets' timestamps (unique) and keyframe flags in decoding
    order: where a seek can land."""
    position = {p: i for i, p in enumerate(sorted(pts))}
    return tuple(sorted(position[p] for p, key in zip(pts, keys) if key))
