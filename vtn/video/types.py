"""What the decoder hands out and takes in besides frames: the probe of a video (`VideoInfo`), a video's bytes held
in memory (`MemoryVideo`), and the errors of a video that cannot be read (`VideoDecodeError`, `NoFramesError`).
vtn.video.decoder re-exports all of them, so that `from vtn.video.decoder import VideoInfo` keeps working."""

from dataclasses import dataclass
from typing import Optional

import numpy as np

from vtn.utils.errors import UserError


class VideoDecodeError(UserError, RuntimeError):
    """A video that cannot be read; the message names the file and the reason."""


class NoFramesError(VideoDecodeError):
    """None of the wanted frames came out of a video that can be read (e.g. indices past the stream's end)."""


def no_frames(path, indices) -> NoFramesError:
    """The error of a decode that returned none of `indices`, naming the video and their range."""
    wanted = np.unique(np.asarray(indices, dtype=np.int64))
    return NoFramesError(f"{path}: no frame could be decoded at indices {int(wanted[0])}..{int(wanted[-1])}")


@dataclass(frozen=True)
class VideoInfo:
    """What sampling needs of a video. `fps`: the stream's rate when frames are evenly spaced, else frames per
    second on average (num_frames / duration). `times`: display time in seconds of each frame from the first
    one, only when frames are unevenly spaced (None: frame k is shown at k / fps). `start_pts`: the first frame's
    timestamp (None: the file's timestamps cannot be used, frames are counted). `rotation`: quarter turns
    counterclockwise that put the decoded picture the right way up; width and height are those after it.
    `skippable`: the packets' timestamps say which frame each holds, so frames may be skipped (see the decoder)."""

    fps: float
    num_frames: int
    duration: float
    width: int
    height: int
    times: Optional[tuple[float, ...]] = None
    start_pts: Optional[int] = None
    rotation: int = 0
    skippable: bool = False
    keyframes: Optional[tuple[int, ...]] = None  # display indices of the keyframes (None: unusable timestamps)


class MemoryVideo:
    """A video file's bytes in memory (e.g. read from a tar shard or object storage), decoded like the file: every
    method of the decoder takes one where it takes a path, and gives the same frames. `name` (its path or URL)
    names it in messages and stands for it in the decoder's per-file memory."""

    def __init__(self, name: str, data: bytes):
        self.name, self.data = str(name), data

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"MemoryVideo({self.name!r}, {len(self.data)} bytes)"

    def __eq__(self, other) -> bool:
        return isinstance(other, MemoryVideo) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("MemoryVideo", self.name))
