"""Video decoding behind a registry (DATA.DECODING_BACKEND), PyAV by default.

A decoder answers two questions:
- `probe(path)`: the video's timeline and size. Frames are counted from the packets (headers may lack or misstate
  the count); each frame's display time comes from the packet timestamps, so the duration is the real one also
  when frames are unevenly spaced (dropped frames, variable frame rate); the size is the displayed one, after
  the rotation of the file's display matrix (portrait phone videos).
- `decode(path, indices, size, info)`: the frames at the given frame indices, as uint8 `(N, H, W, 3)` RGB the right
  way up, plus the indices actually returned. It seeks once (to the keyframe before the first wanted frame),
  decodes forward, and converts to RGB (resizing to `size` in the same step) only the frames it keeps.

Frames no kept frame depends on are not decoded at all (DATA.DECODE_SKIP_NONREF): a packet whose timestamp is not
one of the wanted frames' is handed to FFmpeg with `skip_frame = NONREF`, so a non-reference frame (most B-frames of
H.264, HEVC and MPEG-4 part 2) is dropped unseen while every reference frame is still decoded: each kept frame is
bit-identical to a full decode. It is done in streams with B-frames (without them nearly every frame is a reference)
and needs timestamps that say which frame a packet holds, so only in containers that store presentation timestamps
(MP4/MOV, Matroska/WebM) and only while the file's timestamps prove sane; a file where they do not is decoded in
full (one log line), and a wanted frame that fails to come out while skipping makes the decoder decode that file in
full from there on, so skipping never changes a frame. MPEG-4 part 2 files (DivX/Xvid, whose remuxes carry
timestamps swapped between neighbours) also decode the neighbours of each wanted frame, so that such a swap shows as
frames out of order.

Threads (DATA.DECODE_THREADS): FFmpeg copies `skip_frame` into a frame thread's context with each packet, so
skipping stays exact with frame threads, but they decode ahead past a clip's end and cost more CPU per clip:
loader workers use slice threads, a process decoding alone frame and slice threads (`default_thread_type`;
benchmarks/decode.py --threads measures each).

Frame index k is the k-th frame the decoder outputs: the display order. After a seek a frame's index comes from
its timestamp, checked against the probe's timeline; where timestamps are missing, repeated or out of order
(AVI files with packed B-frames), the decoder counts frames from the start of the file instead, with the
declared rate (said once per process, and per video at debug level), and never returns one frame in place of another.
MPEG program streams store a timestamp only for the first frame that starts in each pack (small frames share one)
and FFmpeg makes up the others, wrongly after a seek (the piece of a frame the seek landed in takes the next frame's
stored timestamp): there, after a seek, only stored timestamps count and the frames between two of them are
counted. Their seeks land on any pack, not on a keyframe: a seek after which no frame comes out (past the last
keyframe) is retried earlier, like one that landed after the first wanted frame.
Decoding problems raise `VideoDecodeError`, which names the file and the reason. Under a deadline
(vtn/video/deadline.py, DATA.DECODE_TIMEOUT) the loops check the clock after each FFmpeg call and raise its
`DecodeTimeout`. The types (`VideoInfo`, `MemoryVideo`, the errors) live in vtn/video/types.py and are re-exported.

A video may also be given as its bytes in memory (`MemoryVideo(name, data)`, e.g. a sample of a tar shard): PyAV
reads them as it reads the file, so probe and decode give the same frames either way.
"""

import io
import logging
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import Optional

import numpy as np
import torch.utils.data

from vtn import storage
from vtn.config import register_choices
from vtn.storage.backends import NotFoundError
from vtn.storage.rangefile import open_remote
from vtn.utils.registry import Registry
from vtn.video.deadline import DecodeTimeout, check_deadline
from vtn.video.timestamps import (
    PARTLY_STAMPED_CONTAINERS,
    OutOfOrder,
    SeekOvershot,
    SkipMissed,
    Skipper,
    StoredStamps,
    fall_back,
    frame_indexer,
    keyframe_indices,
    keyframes_start_display_order,
    packed_b_frames,
    quarter_turns,
    seek_ticks,
    skippable,
    timeline,
)
from vtn.video.types import MemoryVideo, NoFramesError, VideoDecodeError, VideoInfo, no_frames

__all__ = [  # the types live in vtn.video.types; every existing import from here keeps working
    "DECODER_REGISTRY",
    "DecodeTimeout",
    "MemoryVideo",
    "NoFramesError",
    "LOADER_WORKER",
    "PyAVDecoder",
    "THREAD_TYPES",
    "VideoDecodeError",
    "VideoInfo",
    "build_decoder",
    "default_thread_type",
    "no_frames",
]

logger = logging.getLogger(__name__)
DECODER_REGISTRY = Registry("video decoder")
register_choices("DATA.DECODING_BACKEND", DECODER_REGISTRY.names)
THREAD_TYPES = ("AUTO", "FRAME", "SLICE", "NONE")  # FFmpeg's threaded decoding: both, frames, slices, none
register_choices("DATA.DECODE_THREADS", lambda: ["DEFAULT", *THREAD_TYPES])
# Whether this process decodes as one of several sharing the cores (None: it does when it is a DataLoader
# worker); benchmarks/decode.py sets it in the processes that stand for loader workers.
LOADER_WORKER: Optional[bool] = None


def default_thread_type() -> str:
    """DATA.DECODE_THREADS DEFAULT: slice threads in a loader worker, where the workers already share the cores out
    and frame threads cost 35-45% more CPU per clip; frame and slice threads (AUTO) in a process that decodes
    alone, where they use idle cores."""
    worker = LOADER_WORKER if LOADER_WORKER is not None else torch.utils.data.get_worker_info() is not None
    return "SLICE" if worker else "AUTO"


def _check_file(path) -> Optional[int]:
    """Raise VideoDecodeError for a missing or empty video; return a remote video's size (None otherwise)."""
    if isinstance(path, MemoryVideo):
        if len(path.data) == 0:
            raise VideoDecodeError(f"{path}: file is empty (0 bytes)")
        return None
    if storage.is_remote(path):
        try:
            size = storage.size(path)
        except storage.StorageError as e:
            why = str(e).removeprefix(str(path)).lstrip(" :")  # the message names the URL already
            what = "file does not exist" if isinstance(e, NotFoundError) else "cannot be read"
            raise VideoDecodeError(f"{path}: {what}" + ("" if why.startswith("does not") else f" ({why})")) from e
        if size == 0:
            raise VideoDecodeError(f"{path}: file is empty (0 bytes)")
        return size
    if not os.path.exists(path):
        raise VideoDecodeError(f"{path}: file does not exist")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(f"{path}: file is empty (0 bytes)")


@DECODER_REGISTRY.register_as("pyav")
class PyAVDecoder:
    """PyAV (FFmpeg) decoding with threaded decoding, one seek per request, non-reference frames that are not
    wanted skipped (`skip_nonref`) and conversion of kept frames only."""

    def __init__(self, threads: str = "DEFAULT", skip_nonref: bool = True):
        self.threads = threads
        self.skip_nonref = skip_nonref
        self._counted = set()  # files whose timestamps proved out of order: frames are counted from the start
        self._full = set()  # files where a wanted frame went missing while skipping: decoded in full
        self.frames_decoded = 0  # frames FFmpeg returned, kept or not (benchmarks/decode.py reports it)

    # ------------------------------------------------------------------ helpers
    def _open(self, path: str):
        import av  # heavy (FFmpeg libraries): only when a video is opened

        size = _check_file(path)
        try:
            if size is None:
                container = av.open(io.BytesIO(path.data) if isinstance(path, MemoryVideo) else path)
            else:  # a remote video, read by ranged requests; its file closes with the container
                container = open_remote(path, av.open, size)
        except storage.StorageError as e:  # the bytes could not be fetched: not a statement about the video
            raise VideoDecodeError(f"{path}: cannot be read ({e})") from e
        except Exception as e:  # av.error.* and OSError: not a video, truncated header, ...
            raise VideoDecodeError(f"{path}: cannot be opened as a video ({e.__class__.__name__}: {e})") from e
        if not container.streams.video:
            container.close()
            raise VideoDecodeError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = default_thread_type() if self.threads == "DEFAULT" else self.threads
        try:
            check_deadline()  # opening reads the header and may decode the first frames
        except DecodeTimeout:
            container.close()
            raise
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
            pts, keys, rotation, first_frame = [], [], None, None
            packed = False
            # Read the packets without decoding them (headers may lack or misstate the count), and decode only
            # until the first frame, which carries the rotation of the display matrix and the coded size.
            try:
                for packet in container.demux(stream):
                    check_deadline()
                    if packet.size <= 0:
                        continue
                    pts.append(packet.pts)
                    keys.append(packet.is_keyframe)
                    if len(pts) <= 64 and not packed:
                        packed = packed_b_frames(stream, packet)
                    if first_frame is None and len(pts) <= 32:
                        try:
                            frames = packet.decode()
                        except Exception:  # a corrupt first packet: the size then comes from the header
                            frames = []
                        if frames:
                            first_frame = frames[0]
            except DecodeTimeout:
                raise
            except Exception as e:
                raise VideoDecodeError(f"{path}: cannot read the stream ({e.__class__.__name__}: {e})") from e
            if not pts:
                raise VideoDecodeError(f"{path}: the video stream has no frames")
            count = len(pts)
            usable = None not in pts and len(set(pts)) == count
            if not usable:
                fall_back(path, "frame timestamps are missing or repeated", float(rate))
            elif not keyframes_start_display_order(pts, keys):
                usable = False  # a seek to such a keyframe would return frames of other indices
                fall_back(path, "frame timestamps are out of display order", float(rate))
            if usable:
                ordered = sorted(pts)
                declared = None
                if stream.duration:
                    declared = float((stream.duration + (stream.start_time or 0) - ordered[0]) * stream.time_base)
                fps, times, duration = timeline(ordered, stream.time_base, rate, declared)
                start = ordered[0]
            else:
                fps, times, duration, start = float(rate), None, count / float(rate), None
            width, height = stream.codec_context.width, stream.codec_context.height
            if first_frame is not None:
                width, height = first_frame.width, first_frame.height
                rotation = quarter_turns(getattr(first_frame, "rotation", 0))
            rotation = rotation or 0
            if rotation % 2:
                width, height = height, width
            can_skip = usable and skippable(path, container, stream, pts, packed)
            keyframes = keyframe_indices(pts, keys) if usable else None
            return VideoInfo(fps, count, duration, width, height, times, start, rotation, can_skip, keyframes)
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
        slot_of = {int(i): k for k, i in enumerate(wanted.tolist())}
        out, filled = None, np.zeros(len(wanted), dtype=bool)
        reformatter = self._reformatter()  # one scaler context for every frame of the call
        for idx, frame in self._frames_from(path, wanted, info):
            k = slot_of.get(idx)
            if k is None or filled[k]:
                continue
            rgb = self._to_rgb(frame, size, reformatter)
            check_deadline()
            if out is None:  # every frame goes straight into its place in the result
                out = np.empty((len(wanted), *rgb.shape), dtype=np.uint8)
            out[k], filled[k] = rgb, True
        if out is None:
            raise no_frames(path, wanted)
        asked = np.asarray(indices, dtype=np.int64)
        if filled.all() and len(asked) == len(wanted) and np.array_equal(asked, wanted):
            return out, wanted  # sorted, each once, all there: no copy
        keep = filled[np.searchsorted(wanted, asked)]
        return out[np.searchsorted(wanted, asked[keep])], asked[keep]

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
        reformatter = self._reformatter()
        for idx, frame in self._frames_from(path, uniq, info):
            while pos < len(wanted) and wanted[pos] < idx:
                pos += 1  # a frame missing from the stream: skipped
            if pos >= len(wanted) or wanted[pos] != idx:
                continue
            rgb = self._to_rgb(frame, size, reformatter)
            check_deadline()
            while pos < len(wanted) and wanted[pos] == idx:
                buf.append(rgb)
                buf_idx.append(idx)
                pos += 1
                if len(buf) == chunk:
                    yield np.stack(buf), np.asarray(buf_idx, dtype=np.int64)
                    buf, buf_idx = [], []
        if buf:
            yield np.stack(buf), np.asarray(buf_idx, dtype=np.int64)

    def _frames_from(self, path: str, wanted: np.ndarray, info: Optional[VideoInfo] = None):
        """(index, av.VideoFrame) in display order, each index once, in increasing order: every frame from
        wanted[0] to wanted[-1] (sorted, unique), or, while non-reference frames are skipped, at least the wanted
        ones.

        Seeks when the file's timestamps allow it and maps each frame's timestamp to its index on the probe's
        timeline; a frame whose timestamp does not follow the previous one's (packed B-frames) switches the file
        to counting frames from the start, before any frame of the wrong index is returned. A wanted frame that
        does not come out while skipping switches the file to full decoding, from that frame on.
        """
        info = info or self.probe(path)
        name = str(path)  # the sets keep names: a MemoryVideo kept there would keep its bytes
        if info.start_pts is not None and name not in self._counted:
            skip = self.skip_nonref and name not in self._full
            try:
                seek = int(wanted[0])
                while True:
                    try:
                        yield from self._decode_frames(path, wanted, info, by_timestamp=True, seek=seek, skip=skip)
                        return
                    except SeekOvershot:
                        seek = max(0, seek - max(1, int(2 * info.fps)))  # two seconds earlier
                    except SkipMissed as missed:  # every wanted frame before it was returned
                        self._full.add(name)
                        skip = False
                        wanted, seek = wanted[wanted >= missed.index], missed.index
                        logger.warning(
                            "%s: frame %d did not come out while skipping non-reference frames; the file is "
                            "decoded in full from there on (DATA.DECODE_SKIP_NONREF)",
                            path,
                            missed.index,
                        )
            except OutOfOrder:
                self._counted.add(name)
                fall_back(path, "frame timestamps are out of display order", info.fps)
        yield from self._decode_frames(path, wanted, info, by_timestamp=False)

    def _decode_frames(
        self, path: str, wanted: np.ndarray, info: VideoInfo, by_timestamp: bool, seek: int = 0, skip: bool = False
    ):
        """Frames wanted[0]..wanted[-1] (see `_frames_from`); `by_timestamp`: after a seek to the keyframe before
        frame `seek`, indices from timestamps, and with `skip` the packets of frames not wanted are decoded with
        FFmpeg's skip_frame = NONREF; else counted from the start, every frame decoded."""
        first, last = int(wanted[0]), int(wanted[-1])
        container, stream = self._open(path)
        decoded = None
        try:
            skip = skip and by_timestamp and info.skippable
            index_of = frame_indexer(stream, info) if by_timestamp else None
            stamps = self._seek(container, stream, info, seek, index_of) if by_timestamp and seek > 0 else None
            skipper = Skipper(stream.codec_context, wanted, index_of) if skip else None
            skipped = skipper.skipped if skipper is not None else set()
            count = 0
            previous = None  # (index, frame), held back until the next frame confirms its index
            decoded = self._decoded(path, container, stream, skipper)
            for frame in decoded:
                if frame is None:  # the end of the stream
                    ready = stamps.end() if stamps is not None else []
                elif stamps is not None:
                    ready = stamps.push(frame)
                elif not by_timestamp:
                    ready = [(count, frame)]
                elif frame.pts is None:
                    raise OutOfOrder
                else:
                    ready = [(index_of(frame.pts), frame)]
                for idx, out in ready:
                    if by_timestamp:
                        if previous is not None and idx <= previous[0]:
                            raise OutOfOrder  # before `previous`, maybe a frame of another index, is returned
                        if previous is None and count == 0 and idx > first and seek > 0:
                            raise SeekOvershot  # nothing was returned yet
                    count += 1
                    if previous is not None and first <= previous[0] <= last:
                        yield previous
                    after = previous[0] if previous is not None else first - 1
                    if skipper is not None:
                        skipper.check_none_missed(after, idx)
                    # past the range: done, unless a frame of the range that was not skipped may still come
                    # (out of order)
                    if idx > last and (previous is None or all(j in skipped for j in range(after + 1, last + 1))):
                        return
                    previous = (idx, out)
            if count == 0 and seek > 0:
                raise SeekOvershot  # no frame came out after the seek: it landed after the last keyframe
            if previous is not None and first <= previous[0] <= last:
                yield previous
            if skipper is not None:
                skipper.check_none_missed(previous[0] if previous is not None else first - 1, info.num_frames)
        except (VideoDecodeError, OutOfOrder, SeekOvershot, SkipMissed):
            raise
        except Exception as e:  # a broken container (truncated index, unreadable data)
            raise VideoDecodeError(f"{path}: decoding failed ({e.__class__.__name__}: {e})") from e
        finally:
            if decoded is not None:
                decoded.close()  # says how many packets were corrupt
            container.close()

    @staticmethod
    def _seek(container, stream, info: VideoInfo, seek: int, index_of) -> Optional[StoredStamps]:
        """Seek to the keyframe before frame `seek`; in a container of PARTLY_STAMPED_CONTAINERS, read only the
        stored timestamps from there on and return what numbers the frames between them (else None)."""
        import av

        stamps = None
        if PARTLY_STAMPED_CONTAINERS.intersection(container.format.name.split(",")):
            container.flags = container.flags | av.container.Flags.no_fillin.value
            stamps = StoredStamps(index_of, info.num_frames)
        container.seek(info.start_pts + seek_ticks(stream, info, seek), stream=stream, backward=True, any_frame=False)
        return stamps

    def _decoded(self, path: str, container, stream, skipper: Optional[Skipper]):
        """The frames of the packets from where `container` stands, in the decoder's output order, then None at the
        end of the stream (after the frames the decoder still held)."""
        bad = good = 0
        try:
            for packet in container.demux(stream):
                check_deadline()  # after the previous packet's decoding and this one's read
                if skipper is not None:
                    skipper.before(packet)
                try:
                    frames = packet.decode()
                except Exception as e:  # av.error.InvalidDataError and friends: a corrupt packet
                    bad += 1
                    if bad > 10 and bad > good:
                        raise VideoDecodeError(f"{path}: most packets are corrupt ({bad} failed to decode)") from e
                    continue
                good += 1
                self.frames_decoded += len(frames)
                yield from frames
            yield None
        finally:
            if bad:
                logger.warning("%s: skipped %d corrupt packets", path, bad)

    @staticmethod
    def _reformatter():
        """FFmpeg's scaler (conversion and resizing in one step) for a run of frames: one context, kept between
        frames of the same size and format, where a frame's own `to_ndarray(width=...)` sets one up per frame."""
        from av.video.reformatter import VideoReformatter

        return VideoReformatter()

    @staticmethod
    def _to_rgb(frame, size: Optional[tuple[int, int]], reformatter=None) -> np.ndarray:
        """The frame as RGB the right way up, resized so that its displayed size is `size` (width, height)."""
        turns = quarter_turns(getattr(frame, "rotation", 0))
        width, height = None, None
        if size is not None:
            width, height = (int(size[1]), int(size[0])) if turns % 2 else (int(size[0]), int(size[1]))
        if reformatter is not None:
            rgb = reformatter.reformat(frame, width=width, height=height, format="rgb24").to_ndarray()
        else:
            rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
        return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def build_decoder(cfg):
    return DECODER_REGISTRY.get(cfg.DATA.DECODING_BACKEND)(
        threads=cfg.DATA.DECODE_THREADS, skip_nonref=cfg.DATA.DECODE_SKIP_NONREF
    )
