"""Broken inputs for the bad-video tests."""

import os
import shutil

import numpy as np


def make_bad_files(folder: str, good_video: str) -> dict:
    os.makedirs(folder, exist_ok=True)
    files = {"missing": os.path.join(folder, "missing.mp4")}
    files["zero_byte"] = os.path.join(folder, "empty.mp4")
    open(files["zero_byte"], "wb").close()
    files["truncated"] = os.path.join(folder, "truncated.mp4")
    with open(good_video, "rb") as f:
        data = f.read()
    with open(files["truncated"], "wb") as f:
        f.write(data[: len(data) // 3])
    files["not_a_video"] = os.path.join(folder, "notes.mp4")
    with open(files["not_a_video"], "w") as f:
        f.write("this is a text file, not a video\n" * 50)
    files["no_video_stream"] = os.path.join(folder, "audio_only.mkv")
    write_audio_only(files["no_video_stream"])
    files["copy_of_good"] = os.path.join(folder, "good.mp4")
    shutil.copyfile(good_video, files["copy_of_good"])
    return files


def write_audio_only(path: str) -> None:
    import av

    with av.open(path, "w", format="matroska") as c:
        stream = c.add_stream("pcm_s16le", rate=8000)
        stream.layout = "mono"
        for i in range(4):
            samples = (np.sin(np.arange(1024) * 0.1) * 1000).astype(np.int16)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = 8000
            frame.pts = i * 1024
            for p in stream.encode(frame):
                c.mux(p)
        for p in stream.encode():
            c.mux(p)
