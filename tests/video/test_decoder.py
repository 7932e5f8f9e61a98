import os

import av
import numpy as np
import pytest

from tests.datasets.bad_files import make_bad_files
from vtn.video.decoder import PyAVDecoder, VideoDecodeError


def first_video(synthetic_dir, split="train"):
    rel = open(os.path.join(synthetic_dir, f"{split}.csv")).readline().split()[0]
    return os.path.join(synthetic_dir, rel)


def reference_frames(path, size=None):
    """Every frame, decoded from the start without seeking, converted the same way."""
    with av.open(path) as c:
        kw = {} if size is None else {"width": size[0], "height": size[1]}
        return np.stack([f.to_ndarray(format="rgb24", **kw) for f in c.decode(video=0)])


def test_probe_counts_frames_and_reads_fps(synthetic_dir):
    path = first_video(synthetic_dir)
    info = PyAVDecoder().probe(path)
    ref = reference_frames(path)
    assert info.num_frames == len(ref)
    assert info.fps in (24.0, 25.0, 30.0)
    assert info.duration == pytest.approx(len(ref) / info.fps)
    assert (info.height, info.width) == ref.shape[1:3]


@pytest.mark.parametrize("size", [None, (40, 30)])
def test_decode_matches_a_plain_full_decode_bit_for_bit(synthetic_dir, size):
    path = first_video(synthetic_dir)
    ref = reference_frames(path, size)
    n = len(ref)
    for wanted in ([0, 1, 2], [n // 2, n // 2 + 3, n - 1], [5, 5, 9, 3], [9, 3, 5]):  # a seek; repeats, any order
        frames, got = PyAVDecoder().decode(path, wanted, size=size)
        assert got.tolist() == wanted
        np.testing.assert_array_equal(frames, ref[wanted])


def test_iter_frames_gives_the_same_frames_in_bounded_chunks(synthetic_dir):
    path = first_video(synthetic_dir)
    ref = reference_frames(path)
    wanted = sorted([0, 0, 3, 7, 8, 9, len(ref) - 1])
    chunks = list(PyAVDecoder().iter_frames(path, wanted, chunk=3))
    assert [len(c[0]) for c in chunks] == [3, 3, 1]
    frames = np.concatenate([c[0] for c in chunks])
    np.testing.assert_array_equal(frames, ref[wanted])
    assert np.concatenate([c[1] for c in chunks]).tolist() == wanted


def test_indices_past_the_end_are_not_returned(synthetic_dir):
    path = first_video(synthetic_dir)
    n = PyAVDecoder().probe(path).num_frames
    frames, got = PyAVDecoder().decode(path, [n - 2, n - 1, n, n + 5])
    assert got.tolist() == [n - 2, n - 1]
    ref = reference_frames(path)
    frames, got = PyAVDecoder().decode(path, [n + 5, n - 1, n - 2, n, n - 1])  # any order, repeats, past the end
    assert got.tolist() == [n - 1, n - 2, n - 1]
    np.testing.assert_array_equal(frames, ref[[n - 1, n - 2, n - 1]])


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("missing", "does not exist"),
        ("zero_byte", "empty (0 bytes)"),
        ("truncated", "cannot be opened"),
        ("not_a_video", "cannot be opened"),
        ("no_video_stream", "has no video stream"),
    ],
)
def test_bad_files_raise_an_error_naming_the_file_and_reason(synthetic_dir, tmp_path, kind, reason):
    files = make_bad_files(str(tmp_path), first_video(synthetic_dir))
    with pytest.raises(VideoDecodeError) as e:
        PyAVDecoder().probe(files[kind])
    assert files[kind] in str(e.value) and reason in str(e.value)
    with pytest.raises(VideoDecodeError):
        PyAVDecoder().decode(files[kind], [0, 1])
