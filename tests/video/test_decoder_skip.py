"""Skipping the non-reference frames no sampled frame needs (DATA.DECODE_SKIP_NONREF): every kept frame is the
frame a full decode gives, bit for bit, for every sampler, codec and size; files whose timestamps cannot say
which frame a packet holds are decoded in full, said in one log line."""

import logging

import av
import numpy as np
import pytest
import torch.utils.data

from tests.datasets.odd_videos import H, W, read_index, write_video
from vtn.config import get_cfg
from vtn.datasets.sampling import full_video_indices, rate_indices, train_clip_indices, view_clip_indices
from vtn.utils import logging as vtn_logging
from vtn.video import decoder as decoder_module
from vtn.video import timestamps
from vtn.video.decoder import PyAVDecoder, build_decoder

N = 90  # frames of each generated video (3.6 s at 25 fps)
B_FRAME_VIDEOS = {  # name -> (container, encoder, B-frames)
    "h264_bframes.mp4": ("mp4", "libx264", 3),
    "h264_bframes.mkv": ("matroska", "libx264", 3),
    "mpeg4_bframes.mp4": ("mp4", "mpeg4", 2),
}
OTHER_VIDEOS = {
    "h264_no_bframes.mp4": ("mp4", "libx264", 0),
    "mpeg4_no_bframes.mp4": ("mp4", "mpeg4", 0),
    "vp8.webm": ("webm", "libvpx", 0),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("skip_videos")
    paths = {}
    for name, (fmt, codec, bframes) in {**B_FRAME_VIDEOS, **OTHER_VIDEOS}.items():
        if codec not in av.codecs_available:
            continue
        paths[name] = str(folder / name)
        write_video(paths[name], fmt, codec, N, bframes=bframes)
    return paths


@pytest.fixture
def fresh_log_once(monkeypatch):
    """log_once forgets what this process said, so that a test sees its own once-per-process lines."""
    monkeypatch.setattr(vtn_logging, "_LOGGED_ONCE", set())


def requests(info, rng):
    """(sampler, indices) of every sampler: training clips, multi-view clips, full video (sub-sampling and
    repeating frames), a random sparse set, and the sorted streaming / feature-extraction rates."""
    n, fps = info.num_frames, info.fps
    out = [("train", train_clip_indices(n, fps, 8, rng.uniform(0.5, 2.0), rng)) for _ in range(4)]
    out += [("multi_view", view_clip_indices(n, fps, 8, 1.28, k, 3)) for k in range(3)]
    out += [("full_video", full_video_indices(n, 20, fps)), ("full_video", full_video_indices(n, 2 * n, fps))]
    out += [("sparse", np.sort(rng.choice(n, 5, replace=False)))]
    out += [("streaming", rate_indices(n, fps, 3.0)), ("extraction", rate_indices(n, fps, 1.0))]
    return out


@pytest.mark.parametrize("name", list(B_FRAME_VIDEOS) + list(OTHER_VIDEOS))
def test_kept_frames_are_bit_identical_to_a_full_decode(videos, name):
    if name not in videos:
        pytest.skip(f"this PyAV build has no {OTHER_VIDEOS.get(name, B_FRAME_VIDEOS.get(name))[1]} encoder")
    path = videos[name]
    skipping, full = PyAVDecoder(skip_nonref=True), PyAVDecoder(skip_nonref=False)
    info = full.probe(path)
    assert info.num_frames == N and info.skippable == (name in B_FRAME_VIDEOS)
    rng = np.random.default_rng(0)
    for sampler, idx in requests(info, rng):
        for size in (None, (W // 2, H // 2)):
            a, got_a = skipping.decode(path, idx, size, info=info)
            b, got_b = full.decode(path, idx, size, info=info)
            assert np.array_equal(got_a, got_b) and np.array_equal(a, b), (sampler, idx, size)
            if size is None:
                assert [read_index(f) for f in a] == got_a.tolist(), sampler
            chunks_a = list(skipping.iter_frames(path, np.sort(idx), size, chunk=4, info=info))
            chunks_b = list(full.iter_frames(path, np.sort(idx), size, chunk=4, info=info))
            assert len(chunks_a) == len(chunks_b)
            for (fa, ia), (fb, ib) in zip(chunks_a, chunks_b):
                assert np.array_equal(ia, ib) and np.array_equal(fa, fb), (sampler, "iter_frames", size)
    assert not skipping._full and not skipping._counted  # no fallback was needed


@pytest.mark.parametrize("name", list(B_FRAME_VIDEOS))
def test_b_frame_videos_decode_fewer_frames(videos, name):
    path = videos[name]
    skipping, full = PyAVDecoder(skip_nonref=True), PyAVDecoder(skip_nonref=False)
    info = full.probe(path)
    idx = train_clip_indices(info.num_frames, info.fps, 8, 2.56, np.random.default_rng(1))
    for decoder in (skipping, full):
        decoder.decode(path, idx, info=info)
    assert skipping.frames_decoded < 0.8 * full.frames_decoded, (skipping.frames_decoded, full.frames_decoded)


@pytest.mark.parametrize("name", ["h264_no_bframes.mp4", "mpeg4_no_bframes.mp4"])
def test_videos_without_b_frames_have_nothing_to_skip(videos, name):
    path = videos[name]
    skipping, full = PyAVDecoder(skip_nonref=True), PyAVDecoder(skip_nonref=False)
    idx = full_video_indices(N, 10)
    for decoder in (skipping, full):
        decoder.decode(path, idx)
    assert skipping.frames_decoded == full.frames_decoded


def test_the_config_key_turns_skipping_off_and_threads_are_configurable(videos):
    path = videos["h264_bframes.mp4"]
    cfg = get_cfg()
    assert cfg.DATA.DECODE_SKIP_NONREF is True
    default = build_decoder(cfg)
    cfg.DATA.DECODE_SKIP_NONREF = False
    cfg.DATA.DECODE_THREADS = "NONE"
    off = build_decoder(cfg)
    assert off.threads == "NONE" and not off.skip_nonref
    idx = full_video_indices(N, 8)
    a, _ = default.decode(path, idx)
    b, _ = off.decode(path, idx)
    assert np.array_equal(a, b) and default.frames_decoded < off.frames_decoded


def test_a_wanted_frame_that_does_not_come_out_switches_the_file_to_full_decoding(videos, monkeypatch, caplog):
    """The safety net: a packet skipped although it held a wanted frame (a timestamp that lies) is noticed when
    the frame fails to come out; decoding goes on in full from that frame, and the file stays in full."""
    path = videos["h264_bframes.mp4"]
    honest = timestamps.Skipper.before

    def lying(self, packet):  # a wanted non-reference frame's packet is skipped as if it were not wanted
        wanted_set = self.wanted_set
        self.wanted_set = wanted_set - {41}
        honest(self, packet)
        self.wanted_set = wanted_set

    monkeypatch.setattr(timestamps.Skipper, "before", lying)
    decoder, full = PyAVDecoder(skip_nonref=True), PyAVDecoder(skip_nonref=False)
    idx = np.arange(33, 50, 2)
    caplog.set_level(logging.WARNING, logger="vtn.video.decoder")
    a, got = decoder.decode(path, idx)
    b, _ = full.decode(path, idx)
    assert np.array_equal(a, b) and [read_index(f) for f in a] == got.tolist() == idx.tolist()
    assert path in decoder._full
    lines = [r.getMessage() for r in caplog.records if "did not come out" in r.getMessage()]
    assert len(lines) == 1 and "frame 41" in lines[0], lines
    caplog.clear()
    decoder.decode(path, idx)  # from now on in full: no second line
    assert not [r for r in caplog.records if "did not come out" in r.getMessage()]


def swap_pairs(i: int) -> int:
    """Display index -> a timestamp swapped with a neighbour's every fourth pair (3-4, 7-8, 11-12, ...), the
    pattern of DivX/Xvid packed B-frames; 11-12 crosses a keyframe."""
    return i + 1 if i % 4 == 3 else i - 1 if i % 4 == 0 and i > 0 else i


BAD_TIMESTAMPS = {  # name -> (writer, the line said once)
    "decoding_order.mkv": (
        lambda path: write_video(path, "matroska", "libx264", N, bframes=3, retime=lambda k, _: (k, k)),
        "frame timestamps are out of display order",
    ),
    "swapped.mkv": (
        lambda path: write_video(path, "matroska", "libx264", N, bframes=3, retime=lambda _, i: swap_pairs(i)),
        "frame timestamps are out of display order",
    ),
    "missing.h264": (
        lambda path: write_video(path, "h264", "libx264", N, bframes=3),
        "frame timestamps are missing or repeated",
    ),
    "bframes.avi": (
        lambda path: write_video(path, "avi", "mpeg4", N, bframes=2),
        "are in avi containers",
    ),
}


@pytest.mark.parametrize("name", list(BAD_TIMESTAMPS))
def test_files_whose_timestamps_cannot_be_trusted_are_decoded_in_full_with_one_log_line(
    tmp_path, name, fresh_log_once, caplog
):
    write, line = BAD_TIMESTAMPS[name]
    path = str(tmp_path / name)
    write(path)
    caplog.set_level(logging.INFO, logger="vtn.video.decoder")
    decoder, full = PyAVDecoder(skip_nonref=True), PyAVDecoder(skip_nonref=False)
    info = decoder.probe(path)
    assert info.num_frames == N and not info.skippable
    rng = np.random.default_rng(0)
    for sampler, idx in requests(info, rng) + [("pair", np.array([3, 4, 11, 12]))]:
        frames, got = decoder.decode(path, idx, info=info)
        assert [read_index(f) for f in frames] == got.tolist() == idx.tolist(), sampler  # never a wrong frame
        assert np.array_equal(frames, full.decode(path, idx, info=info)[0])
    assert decoder.frames_decoded == full.frames_decoded  # nothing was skipped
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(said) == 1 and line in said[0] and path in said[0], said


def test_packed_b_frames_are_recognised(videos):
    with av.open(videos["mpeg4_bframes.mp4"]) as c:
        stream = c.streams.video[0]
        packets = [p for p in c.demux(stream) if p.size > 0][:3]
    assert not any(timestamps.packed_b_frames(stream, p) for p in packets)  # one picture per packet
    packed = av.Packet(bytes(packets[1]) + bytes(packets[2]))  # a P-VOP and a B-VOP in one packet
    assert timestamps.packed_b_frames(stream, packed)


def test_mpeg4_frames_whose_timestamps_are_swapped_with_a_neighbour_are_never_returned_for_it(tmp_path):
    """MPEG-4 part 2 (the DivX/Xvid codec, whose remuxed files carry swapped timestamps) decodes the neighbours of
    each wanted frame too: a swap inside a group of pictures then shows as frames out of order."""
    path = str(tmp_path / "swapped_mpeg4.mkv")
    write_video(path, "matroska", "mpeg4", N, bframes=3, retime=lambda _, i: swap_pairs(i))
    for w in (3, 4, 7, 8, 15, 16, 19, 20, 27, 28):  # the swapped pairs that do not cross a keyframe
        frames, got = PyAVDecoder(skip_nonref=True).decode(path, [w])
        assert [read_index(f) for f in frames] == got.tolist() == [w]


class _ThreadTypes(torch.utils.data.Dataset):
    def __len__(self):
        return 1

    def __getitem__(self, i):
        return decoder_module.default_thread_type()


def test_loader_workers_decode_with_slice_threads_and_a_process_alone_with_frame_threads_too():
    assert decoder_module.default_thread_type() == "AUTO"
    loader = torch.utils.data.DataLoader(_ThreadTypes(), num_workers=1, batch_size=None)
    assert list(loader) == ["SLICE"]
