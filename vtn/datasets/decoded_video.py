"""A video decoded once for all its views (DATA.DECODE_VIDEO_ONCE): the multi-view protocol's 10 clips x 3 crops
read the frames of one decode instead of decoding the file 30 times.

`decode_union` decodes the union of the frames that every clip of a video needs at one size (the test scale is
the same for every crop), in one forward pass through the file; it seeks again only across a gap of more than
SEEK_GAP_SECONDS with a keyframe in it (a seek there skips the frames in between, where decoding on would decode
them; a shorter gap costs less to decode through than to open and seek again), and
the decoder still leaves unwanted non-reference frames undecoded. `DecodedVideo.take(indices)` then answers as
`decoder.decode(path, indices, size)` would for any subset: the same frames (the decoder is exact, whatever is
decoded around a frame), the same indices returned, the same error when none of them could be decoded.
"""

from collections.abc import Sequence

import numpy as np

from vtn.video.decoder import NoFramesError, VideoInfo, no_frames

# Wanted frames further apart than this (and a keyframe between them) are decoded in two runs, each with its own
# open and seek: decoding on through a shorter gap costs less (each run opens the file again).
SEEK_GAP_SECONDS = 2.0


def seek_runs(wanted: np.ndarray, keyframes: Sequence[int] = (), min_gap: int = 0) -> list[np.ndarray]:
    """Sorted unique `wanted` indices cut into runs that are decoded apart: a run ends where the next wanted frame
    is more than `min_gap` frames on and a keyframe lies after the last wanted frame and at or before the next
    (seeking to it skips the gap; a short gap costs less to decode through than a new open and seek)."""
    if len(wanted) == 0:
        return []
    keys = np.asarray(sorted(keyframes), dtype=np.int64)
    if len(keys) == 0:
        return [wanted]
    # the last keyframe at or before each wanted frame: a seek helps where it changes between neighbours
    at_or_before = np.searchsorted(keys, wanted, side="right")
    cuts = np.nonzero((np.diff(at_or_before) > 0) & (np.diff(wanted) > min_gap))[0] + 1
    return np.split(wanted, cuts)


class DecodedVideo:
    """The decoded frames of one video at one size: uint8 (N, H, W, 3) and their frame indices (N,), sorted."""

    def __init__(self, path: str, size: tuple[int, int], frames: np.ndarray, indices: np.ndarray):
        self.path, self.size = path, tuple(size)
        self.frames, self.indices = frames, indices
        self.position = {int(i): k for k, i in enumerate(indices.tolist())}

    def take(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The frames at `indices` (any order, repeats allowed) and the indices returned: those that were decoded,
        as decoder.decode returns them."""
        order = [int(i) for i in np.asarray(indices).tolist() if int(i) in self.position]
        if not order:
            raise no_frames(self.path, indices)
        return self.frames[[self.position[i] for i in order]], np.asarray(order, dtype=np.int64)


def decode_union(decoder, path: str, clips: Sequence[np.ndarray], size: tuple[int, int], info: VideoInfo):
    """Every frame that the clips (arrays of frame indices) of a video need, decoded once at `size`: a run of
    frames that decodes none of its frames leaves them out (a clip of only such frames then fails in `take`)."""
    wanted = np.unique(np.concatenate([np.asarray(c, dtype=np.int64) for c in clips]))
    frames, indices, error = [], [], None
    for run in seek_runs(wanted, info.keyframes or (), min_gap=int(SEEK_GAP_SECONDS * info.fps)):
        try:
            got_frames, got = decoder.decode(path, run, size=size, info=info)
        except NoFramesError as e:  # any other error: the file is broken and every view fails, as each would alone
            error = e
            continue
        frames.append(got_frames)
        indices.append(got)
    if not frames:
        raise error
    return DecodedVideo(path, size, np.concatenate(frames), np.concatenate(indices))
