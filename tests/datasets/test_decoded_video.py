"""Each test video decoded once for all its views (DATA.DECODE_VIDEO_ONCE): the same frames as decoding every view
on its own, far fewer frames decoded, and a loader that keeps a video's views on one process and one worker."""

import numpy as np
import pytest
import torch

from tests.datasets.odd_videos import make_odd_videos, read_index, write_video
from tests.helpers import synthetic_opts, tiny_cfg
from vtn.config import ViewSpec
from vtn.datasets import build_dataset
from vtn.datasets.build import VideoBatchSampler
from vtn.datasets.decoded_video import DecodedVideo, decode_union, seek_runs
from vtn.datasets.sampling import view_frame_indices
from vtn.video.decoder import PyAVDecoder, VideoDecodeError


class CountingDecoder(PyAVDecoder):
    """The PyAV decoder, counting its decode calls."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def decode(self, path, indices, size=None, info=None):
        self.calls.append(list(np.asarray(indices).tolist()))
        return super().decode(path, indices, size=size, info=info)


def test_runs_are_cut_only_across_a_long_gap_with_a_keyframe_in_it():
    wanted = np.array([2, 5, 10, 31, 40, 90])
    runs = seek_runs(wanted, keyframes=[0, 30, 60, 84])
    assert [r.tolist() for r in runs] == [[2, 5, 10], [31, 40], [90]]
    assert [r.tolist() for r in seek_runs(wanted, [0, 30, 60, 84], min_gap=30)] == [[2, 5, 10, 31, 40], [90]]
    assert [r.tolist() for r in seek_runs(wanted, keyframes=[0])] == [wanted.tolist()]
    assert [r.tolist() for r in seek_runs(wanted)] == [wanted.tolist()]  # counted frames: never a seek
    assert [r.tolist() for r in seek_runs(np.array([30, 31]), keyframes=[0, 30])] == [[30, 31]]


def test_take_answers_as_decode_would_for_any_subset():
    frames = np.arange(3)[:, None, None, None] * np.ones((3, 2, 2, 3), np.uint8)
    video = DecodedVideo("v.mp4", (2, 2), frames, np.array([3, 5, 7]))
    got_frames, got = video.take([7, 3, 3, 9])  # any order, repeats, an index past the end left out
    assert got.tolist() == [7, 3, 3]
    assert got_frames[:, 0, 0, 0].tolist() == [2, 0, 0]
    with pytest.raises(VideoDecodeError, match=r"^v\.mp4: no frame could be decoded at indices 9\.\.11$"):
        video.take([11, 9])


def _clips(info, clips=4, frames=6, seconds=1.2):
    view = ViewSpec("multi_view", frames=frames, seconds=seconds, clips=clips, crops=3)
    return [view_frame_indices(view, info.num_frames, info.fps, info.times, t, None) for t in range(clips)]


@pytest.mark.parametrize("name", ["avi_bframes", "mp4_bframes", "mkv_out_of_order", "avi_dropped", "mp4_dropped"])
def test_the_union_decode_gives_every_clip_the_frames_of_its_own_decode(tmp_path, name):
    path, _ = make_odd_videos(tmp_path)[name]
    info = PyAVDecoder().probe(path)
    clips = _clips(info)
    size = (info.width, info.height)
    once = decode_union(CountingDecoder(), path, clips, size, info)
    for clip in clips:
        alone_frames, alone = PyAVDecoder().decode(path, clip, size=size, info=info)
        frames, got = once.take(clip)
        assert got.tolist() == alone.tolist()
        assert np.array_equal(frames, alone_frames)
        assert [read_index(f) for f in frames] == got.tolist()  # and they are the frames of those indices


def test_a_video_is_decoded_in_one_pass_but_across_long_gaps(tmp_path):
    path = str(tmp_path / "gop12.mp4")
    write_video(path, "mp4", "mpeg4", 120, rate=10, bframes=2)  # a keyframe every 12 frames, 2 s = 20 frames
    info = PyAVDecoder().probe(path)
    assert info.keyframes[:3] == (0, 12, 24)
    decoder = CountingDecoder()
    clips = [np.arange(0, 6), np.arange(3, 9), np.arange(50, 56), np.arange(100, 106)]
    decode_union(decoder, path, clips, (info.width, info.height), info)
    assert decoder.calls == [list(range(9)), [50, 51, 52, 53, 54, 55], list(range(100, 106))]
    near = CountingDecoder()  # a keyframe (12) between the clips, but 9 frames apart: decoded through
    decode_union(near, path, [np.arange(0, 6), np.arange(14, 20)], (info.width, info.height), info)
    assert near.calls == [list(range(6)) + list(range(14, 20))]


def _items(cfg):
    dataset = build_dataset(cfg, "test", "multi_view")
    items = {}
    for i in range(len(dataset)):
        item = dataset[i]
        items[tuple(int(item[k]) for k in ("video_idx", "temporal_idx", "spatial_idx"))] = item
    return dataset, items


def test_a_multi_view_dataset_gives_the_per_view_items_from_one_decode_per_video(synthetic_dir):
    opts = (*synthetic_opts(synthetic_dir), "TEST.NUM_ENSEMBLE_VIEWS", 4, "TEST.NUM_SPATIAL_CROPS", 3)
    reference, per_view = _items(tiny_cfg(*opts, "DATA.DECODE_VIDEO_ONCE", False))
    dataset, once = _items(tiny_cfg(*opts))
    assert dataset.decode_once and not reference.decode_once
    assert sorted(once) == sorted(per_view) and len(once) == 12 * dataset.num_videos
    for key, item in per_view.items():
        for name in ("frames", "frame_idx", "label", "ok"):
            assert torch.equal(once[key][name], item[name]), (key, name)
    # 12 views read one decode: far fewer frames out of FFmpeg than 12 decodes of overlapping clips
    assert dataset.decoder.frames_decoded * 4 < reference.decoder.frames_decoded


@pytest.mark.parametrize("world, workers", [(1, 0), (1, 3), (2, 2), (3, 1), (1, 4)])
def test_the_batches_keep_a_video_on_one_process_and_one_worker(world, workers):
    num_videos, views, batch, lanes = 11, 6, 4, max(1, workers)
    owner, keys = {}, []
    for rank in range(world):
        batches = list(VideoBatchSampler(num_videos, views, batch, rank, world, workers))
        assert all(0 < len(b) <= batch for b in batches)
        keys += [key for b in batches for key in b]
        workers_of = {}
        for k, b in enumerate(batches):  # the loader hands batch k to worker k % workers
            for key in b:
                assert owner.setdefault(key // views, rank) == rank  # a video never split between processes
                workers_of.setdefault(key // views, set()).add(k % lanes)
        # every video of this process on one worker (its one decode), but at most lanes - 1 at the very end
        assert sum(len(w) > 1 for w in workers_of.values()) <= lanes - 1
    assert sorted(keys) == list(range(num_videos * views))  # every view once, none padded


def test_the_lanes_take_their_videos_in_turn_and_only_a_last_video_may_split():
    # 3 videos of 4 views, batches of 2, 2 workers: worker 0 gets videos 0 and 2, worker 1 video 1; the last two
    # views of video 2 come when worker 1 has nothing left, so they are its (the one second decode)
    batches = list(VideoBatchSampler(3, 4, 2, workers=2))
    assert batches == [[0, 1], [4, 5], [2, 3], [6, 7], [8, 9], [10, 11]]
    # a batch may end one video and start the next of the same worker
    assert list(VideoBatchSampler(4, 2, 3, workers=2)) == [[0, 1, 4], [2, 3, 6], [5], [7]]


class _RunDecoder:
    """Decodes runs starting below 50 (one frame value per index); past that, raises the given error."""

    def __init__(self, error):
        self.error = error

    def decode(self, path, indices, size=None, info=None):
        indices = np.asarray(indices)
        if indices[0] >= 50:
            raise self.error
        return np.ones((len(indices), 2, 2, 3), np.uint8) * indices[:, None, None, None].astype(np.uint8), indices


def test_a_run_with_no_frames_is_left_out_and_a_broken_file_fails_the_whole_video():
    from vtn.video.decoder import NoFramesError, VideoInfo

    info = VideoInfo(fps=1.0, num_frames=60, duration=60.0, width=2, height=2, keyframes=(0, 40))
    clips = [np.arange(0, 3), np.arange(55, 58)]  # two runs: a keyframe (40) and a gap over 2 s between them
    video = decode_union(_RunDecoder(NoFramesError("v: no frame could be decoded")), "v", clips, (2, 2), info)
    assert video.take([0, 1, 2])[1].tolist() == [0, 1, 2]
    with pytest.raises(VideoDecodeError, match="no frame could be decoded at indices 55..57"):
        video.take(clips[1])  # that clip fails as its own decode would
    with pytest.raises(VideoDecodeError, match="most packets are corrupt"):
        decode_union(_RunDecoder(VideoDecodeError("v: most packets are corrupt")), "v", clips, (2, 2), info)
