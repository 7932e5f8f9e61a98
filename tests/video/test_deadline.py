"""DATA.DECODE_TIMEOUT's mechanism (vtn/video/deadline.py): a genuinely slow real file is abandoned within the
deadline by the decoder's own checks, normal videos are untouched, and in a process that stands for a loader worker
a call that never returns ends the process: by the watchdog thread (quarantining the video) when the call leaves the
GIL free, by faulthandler when it holds it."""

import os
import pickle
import subprocess
import sys
import textwrap
import time
from fractions import Fraction

import numpy as np
import pytest

from tests.helpers import REPO
from vtn.video.deadline import HUNG_EXIT_CODE, DecodeTimeout, check_deadline, decode_deadline
from vtn.video.decoder import PyAVDecoder, VideoDecodeError

SLOW_FPS, SLOW_SECONDS = 250, 3


def make_slow_video(path: str, width: int = 4096, height: int = 2160) -> str:
    """A real H.264 file (MPEG-4 part 2 where FFmpeg lacks libx264) whose clips take seconds to decode, written in
    about a second: 4096x2160 at 250 fps for 3 s, one keyframe, then one P-frame packet (the previous picture
    again) muxed 749 times. Nothing can be skipped (no B-frames), each frame costs 15-70 ms here, and a clip a
    second into the video needs the 250+ frames from the keyframe."""
    import av

    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    ramp = np.linspace(0, 255, width, dtype=np.uint8)
    picture = np.broadcast_to(ramp[None, :, None], (height, width, 3)).copy()
    tb, count = Fraction(1, SLOW_FPS), SLOW_FPS * SLOW_SECONDS
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=SLOW_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "bf": "0", "g": str(count)}
        else:
            stream.gop_size = count
        packets = []
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = i, tb
            packets += stream.encode(frame)
        packets += stream.encode()
        container.mux(packets[0])
        repeat = bytes(packets[-1])
        for i in range(1, count):
            packet = av.Packet(repeat)
            packet.pts = packet.dts = i
            packet.time_base, packet.stream = tb, stream
            container.mux(packet)
    return path


def slow_video_file(tmp_path_factory) -> str:
    """The slow video, made once per test session (every module that needs it asks here)."""
    folder = tmp_path_factory.getbasetemp() / "slow_video"
    path = folder / "slow.mp4"
    if not path.exists():
        folder.mkdir(exist_ok=True)
        make_slow_video(str(folder / "partial.mp4"))
        os.replace(folder / "partial.mp4", path)
    return str(path)


@pytest.fixture(scope="module")
def slow_video(tmp_path_factory):
    return slow_video_file(tmp_path_factory)


def test_a_slow_real_video_is_abandoned_within_the_deadline(slow_video):
    decoder = PyAVDecoder()
    info = decoder.probe(slow_video)
    assert (info.num_frames, info.keyframes) == (SLOW_FPS * SLOW_SECONDS, (0,))
    start = time.perf_counter()
    decoder.decode(slow_video, list(range(20)), size=(32, 32), info=info)
    per_frame = (time.perf_counter() - start) / 20
    # a deadline the clip a second in takes 4x to decode on this machine (a quiet one decodes it in 1.6 s)
    deadline = round(min(0.5, per_frame * SLOW_FPS / 4), 3)
    assert deadline >= 0.1, per_frame  # genuinely slow: the file needs seconds, not a sleep

    for _ in range(2):  # the decoder's checks, not its probe: the probe is given
        start = time.perf_counter()
        with pytest.raises(DecodeTimeout) as caught:
            with decode_deadline(deadline, slow_video):
                decoder.decode(slow_video, list(range(SLOW_FPS, SLOW_FPS + 8)), size=(32, 32), info=info)
        took = time.perf_counter() - start
        # within the deadline plus one FFmpeg call and its conversion (measured: 0-50 ms over)
        assert deadline <= took < deadline + max(0.5, 10 * per_frame), took
        error = caught.value
        assert isinstance(error, VideoDecodeError) and error.name == slow_video and error.seconds == deadline
        assert str(error).startswith(f"{slow_video}: decoding took longer than DATA.DECODE_TIMEOUT = {deadline:g} s")
        assert deadline <= error.elapsed <= took
    check_deadline()  # the block's deadline ended with it
    decoder.decode(slow_video, [0, 1], size=(32, 32), info=info)


def test_normal_videos_are_untouched_and_every_decoder_entry_checks(synthetic_dir):
    path = os.path.join(synthetic_dir, "videos", "train", sorted(os.listdir(f"{synthetic_dir}/videos/train"))[0])
    decoder = PyAVDecoder()
    info = decoder.probe(path)
    plain, got = decoder.decode(path, [0, 3, 7], size=(32, 24), info=info)
    with decode_deadline(0.5, path):
        timed, timed_got = decoder.decode(path, [0, 3, 7], size=(32, 24), info=decoder.probe(path))
    assert np.array_equal(plain, timed) and np.array_equal(got, timed_got)

    calls = [
        lambda: decoder.probe(path),
        lambda: decoder.decode(path, [0, 1], info=info),
        lambda: list(decoder.iter_frames(path, [0, 1], info=info)),
    ]
    for call in calls:
        with pytest.raises(DecodeTimeout):  # nothing decodes in a microsecond
            with decode_deadline(1e-6, path):
                call()
        with decode_deadline(0, path):  # 0 disables the deadline
            call()


def test_an_inner_deadline_leaves_the_outer_one_in_force_and_the_error_crosses_processes(synthetic_dir):
    path = os.path.join(synthetic_dir, "videos", "train", sorted(os.listdir(f"{synthetic_dir}/videos/train"))[0])
    with pytest.raises(DecodeTimeout) as caught:
        with decode_deadline(1e-6, "outer.mp4"):
            with decode_deadline(60, "inner.mp4"):
                PyAVDecoder().probe(path)
    assert caught.value.name == "outer.mp4"
    copy = pickle.loads(pickle.dumps(caught.value))
    assert isinstance(copy, DecodeTimeout) and str(copy) == str(caught.value) and copy.elapsed == caught.value.elapsed


STUCK = """
import ctypes, sys
from vtn.video import deadline
deadline.MIN_GRACE = 0.3

def on_hung(name, why):
    with open(sys.argv[1], "w") as f:
        f.write(name + "\\t" + why)
    return sys.argv[1]

with deadline.decode_deadline(0.2, "stuck.mp4", on_hung=on_hung, backstop=True):
    ctypes.{lib}(None).sleep(30)  # one C call that does not return in time
print("the call returned")
"""


@pytest.mark.parametrize("lib", ["CDLL", "PyDLL"])  # CDLL releases the GIL during the call, PyDLL holds it
def test_a_call_that_never_returns_ends_the_worker(tmp_path, lib):
    marker = tmp_path / "quarantined.txt"
    script = textwrap.dedent(STUCK.format(lib=lib))
    env = dict(os.environ, PYTHONPATH=REPO)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", script, str(marker)], env=env, capture_output=True, text=True, timeout=60
    )
    took = time.perf_counter() - start
    assert "the call returned" not in proc.stdout and took < 20
    if lib == "CDLL":  # the watchdog thread: the video quarantined, one line, the worker's own exit status
        assert proc.returncode == HUNG_EXIT_CODE, proc.stderr
        assert marker.read_text().startswith("stuck.mp4\tone decoding call had not returned")
        line = [s for s in proc.stderr.splitlines() if s.startswith("stuck.mp4: ")]
        assert len(line) == 1 and f"quarantined in {marker}" in line[0] and "resume" in line[0]
    else:  # the GIL is held: only faulthandler's C thread can act; no quarantine then
        assert proc.returncode == 1, proc.stderr
        assert "Timeout" in proc.stderr and "sleep" not in proc.stdout and not marker.exists()
