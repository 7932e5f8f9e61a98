"""A video's bytes in memory (MemoryVideo) decode as the file does: the same probe, the same frames, the same
errors naming the video."""

import numpy as np
import pytest

from tests.datasets.odd_videos import make_odd_videos, write_video
from vtn.datasets.decoded_video import decode_union
from vtn.video.decoder import MemoryVideo, PyAVDecoder, VideoDecodeError


def _videos(tmp_path, synthetic_dir):
    import glob

    paths = [p for p, _ in make_odd_videos(tmp_path).values()]
    program_stream = str(tmp_path / "program_stream.mpg")
    write_video(program_stream, "mpeg", "mpeg2video", 60, bframes=2, noise=True)
    return paths + [program_stream, sorted(glob.glob(f"{synthetic_dir}/videos/test/*.mp4"))[0]]


def test_bytes_in_memory_give_the_probe_and_frames_of_the_file(tmp_path, synthetic_dir):
    for path in _videos(tmp_path, synthetic_dir):
        with open(path, "rb") as f:
            memory = MemoryVideo(path, f.read())
        info = PyAVDecoder().probe(path)
        assert PyAVDecoder().probe(memory) == info, path
        n = info.num_frames
        for wanted in ([0, 1, 2], [n - 1, n // 2, n // 2 + 1], [n // 3] * 2 + [n - 2]):
            frames, got = PyAVDecoder().decode(path, wanted, size=(32, 24), info=info)
            from_memory, got_memory = PyAVDecoder().decode(memory, wanted, size=(32, 24), info=info)
            assert got_memory.tolist() == got.tolist(), path
            np.testing.assert_array_equal(from_memory, frames, err_msg=path)
        chunks = list(PyAVDecoder().iter_frames(memory, list(range(0, n, 3)), chunk=4, info=info))
        np.testing.assert_array_equal(
            np.concatenate([c[0] for c in chunks]), PyAVDecoder().decode(path, range(0, n, 3))[0]
        )
        once = decode_union(PyAVDecoder(), memory, [np.arange(0, 4), np.arange(n - 4, n)], (32, 24), info)
        np.testing.assert_array_equal(
            once.take([1, n - 1])[0], PyAVDecoder().decode(path, [1, n - 1], size=(32, 24))[0]
        )


def test_a_video_in_memory_is_named_by_its_name_in_every_error():
    with pytest.raises(VideoDecodeError, match=r"^s3://bucket/empty\.mp4: file is empty \(0 bytes\)$"):
        PyAVDecoder().probe(MemoryVideo("s3://bucket/empty.mp4", b""))
    with pytest.raises(VideoDecodeError, match=r"^shard-000.tar/clip\.mp4: cannot be opened as a video"):
        PyAVDecoder().probe(MemoryVideo("shard-000.tar/clip.mp4", b"not a video at all" * 100))


def test_the_decoder_remembers_a_video_in_memory_by_its_name():
    a, b = MemoryVideo("x.mp4", b"1"), MemoryVideo("x.mp4", b"22")
    assert a == b and hash(a) == hash(b) and a != MemoryVideo("y.mp4", b"1") and str(a) == "x.mp4"
    assert "x.mp4" in repr(a) and "1 bytes" in repr(a)
