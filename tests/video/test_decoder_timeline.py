"""Frames in display order, sampled by time, the right way up: the decoder against a full sequential decode on
generated files with B-frames (AVI, MP4, MPEG program streams), out-of-order timestamps, dropped frames and
rotation."""

import os

import av
import numpy as np
import pytest

from tests.datasets.odd_videos import (
    H,
    W,
    index_frame,
    make_odd_videos,
    read_index,
    write_video,
)
from vtn.datasets import sampling
from vtn.inference.streaming import frame_indices
from vtn.video.decoder import PyAVDecoder


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    return make_odd_videos(tmp_path_factory.mktemp("odd"))


def sequential(path):
    """Every frame the decoder outputs, in its order, from the start: the display order."""
    with av.open(path) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


CASES = ["avi_bframes", "mp4_bframes", "mkv_out_of_order", "avi_dropped", "mp4_dropped"]


@pytest.mark.parametrize("name", CASES)
def test_every_frame_index_is_its_place_in_display_order(odd, name):
    path, times = odd[name]
    ref = sequential(path)
    assert [read_index(f) for f in ref] == list(range(len(ref)))  # the files show their display index
    info = PyAVDecoder().probe(path)
    assert info.num_frames == len(ref)
    n = len(ref)
    for wanted in ([0, 1, 2], [n // 2, n // 2 + 1, n - 2], [n - 1, 3, 3, n // 3], list(range(n))):
        decoder = PyAVDecoder()  # fresh: no memory of the file
        frames, got = decoder.decode(path, wanted, info=info)
        assert got.tolist() == wanted
        assert [read_index(f) for f in frames] == wanted
        assert all(np.array_equal(f, ref[i]) for f, i in zip(frames, wanted))  # bit for bit
        chunks = list(PyAVDecoder().iter_frames(path, sorted(wanted), chunk=4, info=info))
        streamed = np.concatenate([c for c, _ in chunks])
        assert np.concatenate([i for _, i in chunks]).tolist() == sorted(wanted)  # none dropped
        assert [read_index(f) for f in streamed] == sorted(wanted)


@pytest.mark.parametrize("name", ["avi_dropped", "mp4_dropped"])
def test_unevenly_spaced_frames_keep_their_real_duration_and_are_sampled_by_time(odd, name):
    path, times = odd[name]
    info = PyAVDecoder().probe(path)
    assert info.duration == pytest.approx(444 / 15, abs=0.05)  # 29.6 s, not 18 frames / 15 fps = 1.2 s
    assert info.times == pytest.approx(times, abs=1e-3)
    # the frame shown at each instant: the last one whose time is at or before it
    instants = (np.arange(10) + 0.5) * info.duration / 10
    expected = [int(np.searchsorted(times, t, side="right") - 1) for t in instants]
    assert sampling.full_video_indices(info.num_frames, 10, info.fps, info.times).tolist() == expected
    assert frame_indices(info, 10).tolist() == expected  # the streaming path (demo, feature extraction)
    # a 5.12 s clip in the middle of the video: frames of those 5 s only
    clip = sampling.view_clip_indices(info.num_frames, info.fps, 8, 5.12, 0, 1, "clamp", info.times)
    middle = (info.duration - 5.12) / 2
    assert all(times[i] <= middle + 5.12 for i in clip)
    assert all(times[min(i + 1, len(times) - 1)] >= middle or i == len(times) - 1 for i in clip)
    # one frame per second: the frame shown at each second
    assert frame_indices(info, 0, fps=1).tolist() == sorted(
        {int(np.searchsorted(times, t, side="right") - 1) for t in range(30)}
    )


def test_evenly_spaced_videos_sample_as_before(odd):
    info = PyAVDecoder().probe(odd["mp4_bframes"][0])
    assert info.times is None and info.fps == 25.0 and info.duration == pytest.approx(40 / 25)
    positions = (np.arange(16) + 0.5) * 40 / 16
    assert sampling.full_video_indices(40, 16, info.fps, info.times).tolist() == np.floor(positions).tolist()


@pytest.mark.parametrize("degrees, turns", [(90, 1), (-90, 3), (180, 2)])
def test_rotated_videos_are_decoded_the_right_way_up(tmp_path, degrees, turns):
    path = str(tmp_path / f"rotated_{degrees}.mp4")
    write_video(path, "mp4", "mpeg4", 6, rotation=degrees)
    info = PyAVDecoder().probe(path)
    assert info.rotation == turns
    assert (info.width, info.height) == ((H, W) if turns % 2 else (W, H))
    stored = sequential(path)  # as stored, sideways
    frames, got = PyAVDecoder().decode(path, [0, 4], info=info)
    for frame, i in zip(frames, got):
        assert np.array_equal(frame, np.rot90(stored[i], turns))
        # counterclockwise by the display matrix's angle: the red corner of the stored top-left moves
        upright = np.rot90(index_frame(0), turns)
        assert np.abs(frame.astype(int) - upright.astype(int)).mean() < 20
    small, _ = PyAVDecoder().decode(path, [1], size=(info.width // 2, info.height // 2), info=info)
    assert small.shape[1:3] == (info.height // 2, info.width // 2)
    assert os.path.getsize(path) > 0


def test_every_path_picks_the_same_frame_for_the_same_instant(odd, tmp_path):
    """The test protocols (full video, multi-view) and the streaming path of the demo and the feature cache sample
    with one rule; their frames are those a sequential decode shows at those places."""
    from tests.helpers import tiny_cfg
    from vtn.datasets import build_dataset

    names = ["avi_dropped", "mp4_dropped", "mkv_out_of_order", "avi_bframes"]
    (tmp_path / "test.csv").write_text("".join(f"{odd[n][0]} {i}\n" for i, n in enumerate(names)))
    cfg = tiny_cfg(
        "TEST.DATASET",
        "kinetics",
        "DATA.PATH_TO_DATA_DIR",
        str(tmp_path),
        "TEST.FULL_VIDEO_FRAMES",
        12,
        "DATA.NUM_FRAMES",
        4,
        "DATA.TEMPORAL_FOOTPRINT",
        1.0,
        "TEST.NUM_ENSEMBLE_VIEWS",
        2,
        "TEST.NUM_SPATIAL_CROPS",
        1,
    )
    full = build_dataset(cfg, "test", "full_video")
    views = build_dataset(cfg, "test", "multi_view")
    for v, name in enumerate(names):
        path = odd[name][0]
        info = PyAVDecoder().probe(path)
        assert full[v]["frame_idx"].tolist() == frame_indices(info, 12).tolist()
        for k in range(2):
            expected = sampling.view_clip_indices(info.num_frames, info.fps, 4, 1.0, k, 2, "clamp", info.times)
            assert views[v * 2 + k]["frame_idx"].tolist() == expected.tolist()
        # what the dataset's decoder returns for those indices is what a sequential decode shows there
        wanted = full[v]["frame_idx"].tolist()
        frames, _ = full.decoder.decode(path, wanted, info=full.info(path))
        assert [read_index(f) for f in frames] == wanted


def test_check_dataset_reports_uneven_and_rotated_videos(odd, tmp_path):
    from tests.helpers import tiny_cfg
    from vtn.preparation.check import format_report, scan_split

    rotated = str(tmp_path / "portrait.mp4")
    write_video(rotated, "mp4", "mpeg4", 5, rotation=-90)
    (tmp_path / "val.csv").write_text(f"{odd['avi_dropped'][0]} 0\n{odd['mp4_bframes'][0]} 1\n{rotated} 2\n")
    report = scan_split(tiny_cfg("DATA.PATH_TO_DATA_DIR", str(tmp_path)), "val")
    assert (report["uneven"], report["rotated"]) == (1, 1)
    assert max(report["durations"]) == pytest.approx(444 / 15, abs=0.05)
    assert "variable rate; sampled by their times): 1; rotated by their display matrix (decoded upright): 1" in (
        format_report(report)
    )


def packet_stamps(path, stored_only=False):
    """The video packets' timestamps in decoding order (`stored_only`: None where the file stores none and FFmpeg
    would make one up)."""
    with av.open(path) as c:
        if stored_only:
            c.flags = c.flags | av.container.Flags.no_fillin.value
        return [p.pts for p in c.demux(video=0) if p.size > 0]


@pytest.mark.parametrize("noise", [True, False], ids=["frame_per_pack", "frames_share_packs"])
def test_every_frame_of_an_mpeg_program_stream_alone_is_the_right_one(tmp_path, noise):
    """MPEG-PS seeks land on any pack, not on a keyframe (near the end: after the last one, where nothing can be
    decoded), and FFmpeg makes up the timestamps of frames that share a pack, wrong after a seek."""
    path = str(tmp_path / "program_stream.mpg")
    write_video(path, "mpeg", "mpeg2video", 190, bframes=2, noise=noise)
    ref = sequential(path)
    assert [read_index(f) for f in ref] == list(range(190))
    stamps = packet_stamps(path)
    assert stamps != sorted(stamps) and min(stamps) > 0  # B-frames; the timeline starts at an offset
    stored = packet_stamps(path, stored_only=True)
    if noise:  # frames of a few KiB: each starts a pack of its own, with its timestamp
        assert None not in stored
    else:  # 50-byte frames: some 35 in a pack, one stored timestamp
        assert 0 < sum(s is not None for s in stored) <= 10
    info = PyAVDecoder().probe(path)
    assert (info.num_frames, info.start_pts, info.times) == (190, min(stamps), None)
    for i in range(190):
        decoder = PyAVDecoder()
        frames, got = decoder.decode(path, [i], info=info)
        assert got.tolist() == [i] and read_index(frames[0]) == i, i
        assert np.array_equal(frames[0], ref[i]), i
        assert not decoder._counted  # found by seeking, not by a decode from the start
    rng = np.random.default_rng(0)
    for _ in range(10):
        wanted = sorted(rng.choice(190, 6, replace=False).tolist())
        frames, got = PyAVDecoder().decode(path, wanted, info=info)
        assert got.tolist() == wanted
        assert all(np.array_equal(f, ref[i]) for f, i in zip(frames, wanted))


# a variable frame rate (in 1/10 s): gaps of 1 to 7 frame times, so that a timeline's order shows in its spacing
VFR_PTS = [0, 1, 2, 4, 5, 6, 9, 10, 11, 12, 16, 17, 18, 19, 20, 24, 25, 26, 30, 31, 32, 33, 40, 41]


@pytest.mark.parametrize("fmt", ["mp4", "matroska"])
def test_timeline_is_in_display_order_when_packets_come_in_decoding_order(tmp_path, fmt):
    """With B-frames the packets' timestamps come out of order (decoding order): the probe's timeline is the frames'
    display times, as a sequential decode shows them, and each frame's index comes from it."""
    path = str(tmp_path / f"vfr_bframes.{fmt}")
    write_video(path, fmt, "mpeg4", len(VFR_PTS), rate=10, bframes=2, pts=VFR_PTS)
    stamps = packet_stamps(path)
    assert stamps != sorted(stamps)  # decoding order is not display order
    with av.open(path) as c:
        tb = float(c.streams.video[0].time_base)
        shown = [(f.pts, read_index(f.to_ndarray(format="rgb24"))) for f in c.decode(video=0)]
    assert [i for _, i in shown] == list(range(len(VFR_PTS)))
    display = [(p - shown[0][0]) * tb for p, _ in shown]
    assert display == pytest.approx([p / 10 for p in VFR_PTS], abs=1e-3)
    info = PyAVDecoder().probe(path)
    assert info.times == pytest.approx(display, abs=1e-6)
    assert info.duration == pytest.approx(4.2, abs=1e-3)  # to the end of the last frame
    assert info.fps == pytest.approx(len(VFR_PTS) / 4.2, abs=1e-3)
    for i in range(len(VFR_PTS)):
        frames, got = PyAVDecoder().decode(path, [i], info=info)
        assert (got.tolist(), read_index(frames[0])) == ([i], i)
