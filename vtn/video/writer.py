"""Writing frames to a video file with PyAV: the generated synthetic dataset and the demo's overlay use it.

`encode_video(path, frames, fps, codec)`: frames uint8 (T, H, W, 3) RGB, even H and W, encoded as yuv420p with
"mpeg4" (FFmpeg's MPEG-4 part 2, any build) or "h264" (libx264, when the build has it).
"""

import numpy as np

CODECS = {"mpeg4": "mpeg4", "h264": "libx264"}  # the codec names callers use -> FFmpeg's encoder names


def encode_video(path: str, frames: np.ndarray, fps: int, codec: str = "mpeg4") -> None:
    import av  # heavy (FFmpeg libraries): only when videos are written

    height, width = frames.shape[1:3]
    with av.open(path, "w") as container:
        stream = container.add_stream(CODECS[codec], rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "h264":
            stream.options = {"preset": "ultrafast", "crf": "20"}
        else:
            stream.bit_rate = int(width * height * fps * 0.3)
        for arr in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
