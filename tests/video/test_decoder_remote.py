"""Videos decoded from s3:// and http:// URLs, read by ranged requests: the probe and frames of the local file, a
clip of a long video without downloading all of it, and the errors of a missing or unreachable video."""

import numpy as np
import pytest

from tests.datasets.odd_videos import write_video
from tests.servers import FaultProxy, RangeHTTPServer, free_port
from vtn import storage
from vtn.storage import rangefile
from vtn.video.decoder import PyAVDecoder, VideoDecodeError

FRAMES = 120  # an mp4 with its index (moov) at the end, of some 300 KiB


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("remote") / "clip.mp4"
    write_video(str(path), "mp4", "mpeg4", FRAMES, bframes=2, noise=True)
    return path


@pytest.fixture
def server(video):
    with RangeHTTPServer(video.parent) as server:
        yield server


@pytest.fixture
def urls(video, server, s3_env):
    storage.upload_file(str(video), s3_env + "/videos/clip.mp4")
    return [s3_env + "/videos/clip.mp4", server.url + "/clip.mp4"]


def test_a_remote_video_gives_the_probe_and_frames_of_the_local_file(video, urls):
    info = PyAVDecoder().probe(str(video))
    for wanted in ([0, 1, 2], [FRAMES - 1, FRAMES // 2, 37, 37]):
        local, got = PyAVDecoder().decode(str(video), wanted, size=(32, 24), info=info)
        for url in urls:
            assert PyAVDecoder().probe(url) == info, url
            frames, remote_got = PyAVDecoder().decode(url, wanted, size=(32, 24))
            assert remote_got.tolist() == got.tolist() and np.array_equal(frames, local), (url, wanted)


def test_early_frames_of_a_long_video_read_less_than_the_file(video, urls, monkeypatch):
    monkeypatch.setattr(rangefile, "BLOCK_SIZE", 16 << 10)  # some 20 blocks
    decoder = PyAVDecoder()
    info = decoder.probe(str(video))
    expected = decoder.decode(str(video), [0, 1, 2, 3], info=info)[0]
    for url in urls:
        before = storage.stats.snapshot()["bytes_read"]
        frames = decoder.decode(url, [0, 1, 2, 3], info=info)[0]
        read = storage.stats.snapshot()["bytes_read"] - before
        assert np.array_equal(frames, expected) and 0 < read < video.stat().st_size / 2, (url, read)


def test_the_file_of_a_remote_video_closes_with_its_container(urls, monkeypatch):
    opened = []

    class Recorded(rangefile.RangeFile):  # the real file, remembered to look at it afterwards
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            opened.append(self)

    monkeypatch.setattr(rangefile, "RangeFile", Recorded)
    PyAVDecoder().probe(urls[0])
    PyAVDecoder().decode(urls[1], [5, 6])
    assert len(opened) == 3 and all(f.closed for f in opened)
    storage.write_bytes(urls[0] + ".junk", b"not a video" * 100)
    with pytest.raises(VideoDecodeError, match="cannot be opened as a video"):
        PyAVDecoder().probe(urls[0] + ".junk")
    assert len(opened) == 4 and opened[-1].closed


def test_a_missing_or_unreachable_remote_video_is_a_decode_error_naming_it(server, s3_env, monkeypatch):
    for url in (s3_env + "/videos/missing.mp4", server.url + "/missing.mp4"):
        with pytest.raises(VideoDecodeError, match=rf"^{url}: file does not exist"):
            PyAVDecoder().probe(url)
    with pytest.raises(VideoDecodeError, match=r"^s3://no-such-bucket/a\.mp4: file does not exist \(bucket no-such"):
        PyAVDecoder().decode("s3://no-such-bucket/a.mp4", [0])
    storage.write_bytes(s3_env + "/empty.mp4", b"")
    with pytest.raises(VideoDecodeError, match=r"empty\.mp4: file is empty \(0 bytes\)$"):
        PyAVDecoder().probe(s3_env + "/empty.mp4")
    storage.write_bytes(s3_env + "/junk.mp4", b"not a video" * 100)
    with pytest.raises(VideoDecodeError, match=r"junk\.mp4: cannot be opened as a video"):
        PyAVDecoder().probe(s3_env + "/junk.mp4")
    storage.retry.configure(retries=1)
    try:
        url = f"http://127.0.0.1:{free_port()}/x.mp4"
        with pytest.raises(VideoDecodeError, match=rf"^{url}: cannot be read \(cannot reach the server of {url}"):
            PyAVDecoder().probe(url)
    finally:
        storage.retry.reset_policy()


def test_a_storage_failure_while_decoding_is_a_decode_error_naming_the_video(server, video, monkeypatch):
    monkeypatch.setattr(rangefile, "BLOCK_SIZE", 16 << 10)
    storage.retry.configure(retries=2, backoff=0.001)
    try:
        with FaultProxy(server.url) as proxy:
            url = proxy.url + "/clip.mp4"
            info = PyAVDecoder().probe(str(video))
            # the size and the first block come, then the faults: while opening; while decoding, after the seek
            failing = rf"{url}: the server kept failing \(ConnectionError: .*reset.*\) after 2 attempts"
            for passed, said in (
                (2, rf"cannot be read \({failing}\)"),
                (5, rf"decoding failed \(StorageError: {failing}\)"),
            ):
                proxy.plan(["ok"] * passed + ["503", "reset"])
                with pytest.raises(VideoDecodeError, match=rf"^{url}: {said}$"):
                    PyAVDecoder().decode(url, range(FRAMES // 2, FRAMES), info=info)
                assert not proxy.planned
            assert len(PyAVDecoder().decode(url, [0, FRAMES - 1], info=info)[0]) == 2  # the faults are over
    finally:
        storage.retry.reset_policy()
