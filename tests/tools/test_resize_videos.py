"""tools/resize_videos.py, run in-process on a folder of tiny generated videos: layout, sizes, timing, frame order,
audio, resuming, temporary files, broken inputs, workers and the one-line errors."""

import contextlib
import fractions
import io
import os
import shutil

import av
import numpy as np
import pytest
import torch

from tests.datasets.odd_videos import DROPPED_PTS, index_frame, read_index, write_out_of_order_timestamps, write_video
from tests.helpers import load_tool
from vtn.preparation.resize import has_encoder, output_size, temp_path
from vtn.preparation.resize_jobs import progress_line
from vtn.video.decoder import PyAVDecoder

tool = load_tool("tools/resize_videos.py")

SHORT = 48
CLIP = "clips/clip one (1) & más é.mp4"  # 98x72, 25 fps, audio: resized to 66x48
CLIP_FRAMES = 30
HAS_AAC = has_encoder("aac")
# relative input path -> output size (width, height)
EXPECTED = {
    CLIP: (66, 48),
    "clips/portrait.avi": (48, 64),  # 72x96
    "small.MKV": (50, 30),  # 50x31: smaller than the target, kept (odd side rounded down to even)
    "odd/bframes.avi": (64, 48),  # 64x48 index frames, B-frames in AVI
    "odd/out_of_order.mkv": (64, 48),  # timestamps out of display order
    "odd/dropped.mp4": (64, 48),  # unevenly spaced frames
    "odd/rotated.mp4": (48, 64),  # display matrix: 90 degrees
}
IGNORED = ["notes.txt", "clips/thumb.JPG"]


def clip_frame(i: int, width: int = 98, height: int = 72) -> np.ndarray:
    """Frame i of the clip: its own brightness and a square moving right, so frames out of order would show."""
    img = np.full((height, width, 3), 30 + 6 * i, np.uint8)
    img[:, :, 2] = 200 - 5 * i
    x = 4 + 2 * i
    img[20:44, x : x + 24] = (250, 40, 40)
    return img


def write_clip(path: str, audio: bool) -> None:
    with av.open(path, "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 98, 72, "yuv420p"
        v.options = {"preset": "ultrafast", "crf": "12"}
        a = c.add_stream("aac", rate=16000) if audio else None
        for i in range(CLIP_FRAMES):
            f = av.VideoFrame.from_ndarray(clip_frame(i), format="rgb24")
            f.pts, f.time_base = i, fractions.Fraction(1, 25)
            for p in v.encode(f):
                c.mux(p)
        if a is not None:
            samples = (0.3 * np.sin(np.arange(16000 * CLIP_FRAMES // 25) * 0.2)).astype(np.float32)
            for k in range(0, len(samples), 1000):
                f = av.AudioFrame.from_ndarray(samples[None, k : k + 1000], format="flt", layout="mono")
                f.sample_rate, f.pts = 16000, k
                for p in a.encode(f):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
        for p in v.encode():
            c.mux(p)


def write_plain(path: str, fmt: str, width: int, height: int, n: int, rate: int) -> None:
    with av.open(path, "w", format=fmt) as c:
        s = c.add_stream("mpeg4", rate=rate)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(n):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((height, width, 3), 8 * i, np.uint8), "rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("resize") / "in"
    for sub in ("clips", "odd"):
        os.makedirs(root / sub)
    write_clip(str(root / CLIP), audio=HAS_AAC)
    write_plain(str(root / "clips/portrait.avi"), "avi", 72, 96, 24, 24)
    write_plain(str(root / "small.MKV"), "matroska", 50, 31, 20, 20)
    write_video(str(root / "odd/bframes.avi"), "avi", "mpeg4", 40, bframes=2)
    write_out_of_order_timestamps(str(root / "odd/out_of_order.mkv"))
    write_video(str(root / "odd/dropped.mp4"), "mp4", "mpeg4", len(DROPPED_PTS), rate=15, pts=DROPPED_PTS)
    write_video(str(root / "odd/rotated.mp4"), "mp4", "mpeg4", 20, rotation=90)
    for name in IGNORED:
        with open(root / name, "w") as f:
            f.write("not a video\n")
    return root


def run(*argv) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of the tool run in this process."""
    out, err = io.StringIO(), io.StringIO()
    status = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            tool.main([str(a) for a in argv])
        except SystemExit as e:
            status = e.code
    return status, out.getvalue(), err.getvalue()


def mp4(rel: str) -> str:
    return os.path.splitext(rel)[0] + ".mp4"


def files_under(folder) -> set:
    return {os.path.relpath(os.path.join(r, n), folder) for r, _, names in os.walk(folder) for n in names}


@pytest.fixture(scope="module")
def resized(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("resize") / "out"
    status, stdout, stderr = run("--input", inputs, "--output", out, "--short-side", SHORT)
    assert status == 0, stdout + stderr
    return out, stdout, stderr


def frames_of(path: str) -> list:
    with av.open(path) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_outputs_keep_the_layout_as_mp4_and_ignore_other_files(inputs, resized):
    out, stdout, _ = resized
    assert files_under(out) == {mp4(rel) for rel in EXPECTED}  # no temporary files, no copies of notes.txt
    summary = stdout.strip().splitlines()[-1]
    assert summary.startswith("resize_videos: resized 7, skipped (already done) 0, failed 0, ignored non-video files 2")


def test_short_side_is_the_target_sizes_are_even_and_aspects_kept(inputs, resized):
    out = resized[0]
    decoder = PyAVDecoder()
    for rel, size in EXPECTED.items():
        src, dst = decoder.probe(str(inputs / rel)), decoder.probe(str(out / mp4(rel)))
        assert (dst.width, dst.height) == size, rel
        assert dst.width % 2 == 0 and dst.height % 2 == 0, rel
        if min(src.width, src.height) > SHORT:
            assert min(dst.width, dst.height) == SHORT, rel
        # the aspect ratio, within the rounding of a side to even (at most 1 pixel)
        assert abs((dst.width / dst.height) / (src.width / src.height) - 1) <= 1.01 / min(size), rel


def test_a_small_video_is_not_upscaled(inputs, resized):
    info = PyAVDecoder().probe(str(resized[0] / "small.mp4"))
    assert (info.width, info.height) == (50, 30)  # 50x31 below the short side 48: kept, 31 rounded down to 30


def test_frame_count_rate_and_duration_are_kept(inputs, resized):
    decoder = PyAVDecoder()
    for rel in EXPECTED:
        src, dst = decoder.probe(str(inputs / rel)), decoder.probe(str(resized[0] / mp4(rel)))
        assert dst.num_frames == src.num_frames, rel
        assert dst.fps == pytest.approx(src.fps, rel=1e-3), rel
        assert abs(dst.duration - src.duration) <= 1.0 / src.fps, rel
        assert (dst.times is None) == (src.times is None), rel
    uneven = decoder.probe(str(resized[0] / "odd/dropped.mp4"))
    assert uneven.times == pytest.approx([p / 15 for p in DROPPED_PTS], abs=1e-3)  # each frame at its own time


def test_frames_resemble_the_input_resized_in_display_order(inputs, resized):
    src = np.stack(frames_of(str(inputs / CLIP))).astype(np.float32)
    src = torch.nn.functional.interpolate(
        torch.from_numpy(src).permute(0, 3, 1, 2), size=(48, 66), mode="bilinear", antialias=True
    )
    src = src.permute(0, 2, 3, 1).numpy()
    dst = np.stack(frames_of(str(resized[0] / mp4(CLIP)))).astype(np.float32)
    assert dst.shape == (CLIP_FRAMES, 48, 66, 3)
    diff = np.abs(dst[:, None] - src[None]).mean(axis=(2, 3, 4))  # (output frame, input frame)
    assert diff.diagonal().max() < 4.0
    assert (diff.argmin(axis=1) == np.arange(CLIP_FRAMES)).all()
    # the index frames: in display order, also from B-frames in AVI and timestamps out of order
    for rel, n in (("odd/bframes.avi", 40), ("odd/out_of_order.mkv", 30), ("odd/dropped.mp4", len(DROPPED_PTS))):
        frames = frames_of(str(resized[0] / mp4(rel)))
        assert [read_index(f) for f in frames] == list(range(n)), rel
        assert np.abs(frames[5].astype(np.float32) - index_frame(5)).mean() < 6.0, rel


def test_a_display_rotation_is_applied_to_the_pixels(inputs, resized):
    out = str(resized[0] / "odd/rotated.mp4")
    with av.open(out) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (48, 64) and not frame.rotation  # upright, no display matrix
    upright = PyAVDecoder().decode(str(inputs / "odd/rotated.mp4"), [0, 7])[0]  # the decoder applies the rotation
    frames = frames_of(out)
    for k, i in enumerate((0, 7)):
        assert np.abs(frames[i].astype(np.float32) - upright[k]).mean() < 6.0
        assert read_index(np.ascontiguousarray(np.rot90(frames[i], -1))) == i


def test_audio_is_dropped_unless_kept(inputs, resized, tmp_path):
    with av.open(str(inputs / CLIP)) as c:
        if not HAS_AAC:
            pytest.skip("this PyAV build has no aac encoder: no input with audio can be made")
        assert len(c.streams.audio) == 1  # the input has audio
    with av.open(str(resized[0] / mp4(CLIP))) as c:
        assert len(c.streams.audio) == 0 and len(c.streams.video) == 1
    src = tmp_path / "in"
    os.makedirs(src / "clips")
    shutil.copyfile(inputs / CLIP, src / CLIP)
    status, stdout, stderr = run("--input", src, "--output", tmp_path / "out", "--short-side", SHORT, "--keep-audio")
    assert status == 0, stdout + stderr
    with av.open(str(tmp_path / "out" / mp4(CLIP))) as c:
        assert [s.codec_context.name for s in c.streams.audio] == ["aac"]
        audio, video = c.streams.audio[0], c.streams.video[0]
        assert float(audio.duration * audio.time_base) == pytest.approx(CLIP_FRAMES / 25, abs=0.1)
        assert video.frames == CLIP_FRAMES


def test_a_rerun_skips_completed_outputs(inputs, resized):
    out = resized[0]
    before = {rel: os.stat(out / rel).st_mtime_ns for rel in files_under(out)}
    status, stdout, _ = run("--input", inputs, "--output", out, "--short-side", SHORT)
    assert status == 0
    assert "resized 0, skipped (already done) 7, failed 0, ignored non-video files 2" in stdout
    assert {rel: os.stat(out / rel).st_mtime_ns for rel in files_under(out)} == before


def test_a_stale_temporary_file_is_not_complete_and_is_cleaned(inputs, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    os.makedirs(src / "odd")
    for rel in ("odd/dropped.mp4", "small.MKV"):
        shutil.copyfile(inputs / rel, src / rel)
    os.makedirs(out / "odd")
    stale = temp_path(str(out / "odd/dropped.mp4"))  # a killed run's half-written file, without its final name
    with open(stale, "wb") as f:
        f.write(b"\0" * 1000)
    status, stdout, stderr = run("--input", src, "--output", out, "--short-side", SHORT)
    assert status == 0, stdout + stderr
    assert "resized 2, skipped (already done) 0" in stdout  # the temporary file did not count as done
    assert not os.path.exists(stale)
    assert PyAVDecoder().probe(str(out / "odd/dropped.mp4")).num_frames == len(DROPPED_PTS)
    leftover = temp_path(str(out / "small.mp4"))  # next to a finished output: removed by the next run
    open(leftover, "wb").close()
    status, stdout, _ = run("--input", src, "--output", out, "--short-side", SHORT)
    assert status == 0 and "resized 0, skipped (already done) 2" in stdout
    assert files_under(out) == {"odd/dropped.mp4", "small.mp4"}


def test_a_broken_input_is_reported_and_the_others_are_resized(inputs, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    os.makedirs(src / "sub")
    shutil.copyfile(inputs / "small.MKV", src / "sub/good one.mkv")
    shutil.copyfile(inputs / "small.MKV", src / "sub/good one.webm")  # the same output name: the second fails
    with open(src / "broken (copy).mp4", "wb") as f:
        f.write(np.random.default_rng(0).bytes(4000))
    status, stdout, stderr = run("--input", src, "--output", out, "--short-side", SHORT)
    assert status == 1, stdout + stderr
    assert f"failed: {src / 'broken (copy).mp4'}: cannot be opened as a video" in stdout
    assert f"failed: {src / 'sub/good one.webm'}: has the same output as sub/good one.mkv" in stdout
    assert "resized 1, skipped (already done) 0, failed 2, ignored non-video files 0" in stdout
    assert files_under(out) == {"sub/good one.mp4"}  # no output and no temporary file for the broken one


def test_two_workers_give_the_same_outputs(inputs, resized, tmp_path):
    status, stdout, stderr = run("--input", inputs, "--output", tmp_path, "--short-side", SHORT, "--workers", 2)
    assert status == 0, stdout + stderr
    assert "resized 7, skipped (already done) 0, failed 0" in stdout
    assert files_under(tmp_path) == files_under(resized[0])
    decoder = PyAVDecoder()
    for rel in EXPECTED:
        one, two = decoder.probe(str(resized[0] / mp4(rel))), decoder.probe(str(tmp_path / mp4(rel)))
        assert (two.width, two.height, two.num_frames, two.times) == (one.width, one.height, one.num_frames, one.times)
        assert two.duration == pytest.approx(one.duration)
        # the encoder's threads differ (2 for one worker, 1 each for two): the same frames up to coding noise
        a, b = np.stack(frames_of(str(resized[0] / mp4(rel)))), np.stack(frames_of(str(tmp_path / mp4(rel))))
        assert np.abs(a.astype(np.float32) - b).mean() < 1.5, rel


def test_a_worker_process_that_dies_costs_only_its_video(inputs, tmp_path, monkeypatch):
    import vtn.preparation.resize_jobs as resize

    def crashing(src, dst, options):  # as a segfault inside FFmpeg would: the worker process ends at once
        if "crash" in src:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(temp_path(dst), "wb") as f:  # half an output
                f.write(b"\0" * 100)
            os._exit(3)
        return real(src, dst, options)

    real = resize.resize_video
    monkeypatch.setattr(resize, "resize_video", crashing)
    src = tmp_path / "in"
    os.makedirs(src)
    for name in ("a.mkv", "b crash.mkv", "c.mkv", "d.mkv"):
        shutil.copyfile(inputs / "small.MKV", src / name)
    status, stdout, stderr = run("--input", src, "--output", tmp_path / "out", "--workers", 2)
    assert status == 1, stdout + stderr
    assert f"failed: {src / 'b crash.mkv'}: the process resizing it died" in stdout
    assert "resized 3, skipped (already done) 0, failed 1" in stdout
    assert files_under(tmp_path / "out") == {"a.mp4", "c.mp4", "d.mp4"}


def test_the_mpeg4_codec_can_be_chosen(inputs, tmp_path):
    src = tmp_path / "in"
    os.makedirs(src)
    shutil.copyfile(inputs / "clips/portrait.avi", src / "portrait.avi")
    status, stdout, stderr = run("--input", src, "--output", tmp_path / "out", "--short-side", 32, "--codec", "mpeg4")
    assert status == 0, stdout + stderr
    with av.open(str(tmp_path / "out/portrait.mp4")) as c:
        stream = c.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height, stream.frames) == ("mpeg4", 32, 42, 24)


def test_a_missing_input_folder_is_one_line_and_status_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        tool.main(["--input", str(tmp_path / "nope"), "--output", str(tmp_path / "out")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("resize_videos: error: --input ") and "no such folder" in err[0]
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("output", [".", "resized", "sub/resized"])
def test_an_output_inside_the_input_is_refused(inputs, output, capsys):
    with pytest.raises(SystemExit) as e:
        tool.main(["--input", str(inputs), "--output", os.path.join(str(inputs), output)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is inside --input" in err[0] and err[0].startswith("resize_videos: error: --output")
    assert not os.path.exists(inputs / "resized") and not os.path.exists(inputs / "sub")


def test_output_sizes_round_to_even_and_never_upscale():
    assert output_size(98, 72, 48) == (66, 48)  # 65.3 -> 66
    assert output_size(1280, 720, 320) == (568, 320)  # 568.9 -> 568
    assert output_size(720, 1280, 320) == (320, 568)
    assert output_size(642, 321, 320) == (640, 320)
    assert output_size(320, 240, 320) == (320, 240)  # short side already at the target
    assert output_size(321, 241, 320) == (320, 240)  # below it: odd sides rounded down, not scaled


def test_progress_line():
    assert progress_line(3, 10, 1, 2.0) == "3/10 videos (1 failed), 1.50 videos/s, ETA 0:00:04"
    assert progress_line(10, 1000, 0, 20.0) == "10/1000 videos (0 failed), 0.50 videos/s, ETA 0:33:00"
    assert progress_line(0, 10, 0, 0.0).endswith("ETA ?")
