"""A video, or a strip of its frames, with the prediction written on it (tools/demo_net.py --output)."""

import os

import numpy as np
from PIL import Image, ImageDraw

from vtn.utils.errors import UserError
from vtn.utils.files import check_writable, writing
from vtn.video.decoder import PyAVDecoder
from vtn.video.writer import encode_video


def _caption(img: Image.Image, lines: list[str]) -> Image.Image:
    draw = ImageDraw.Draw(img)
    height = 12 * len(lines) + 6
    draw.rectangle([0, 0, img.width, height], fill=(0, 0, 0))
    for i, line in enumerate(lines):
        draw.text((4, 3 + 12 * i), line, fill=(255, 255, 255))
    return img


def frame_strip(path: str, num: int = 8, height: int = 112) -> np.ndarray:
    """`num` frames spread over the video, side by side, `height` pixels high (uint8 (H, W, 3))."""
    dec = PyAVDecoder()
    info = dec.probe(path)
    idx = np.unique(np.linspace(0, info.num_frames - 1, num).round().astype(np.int64))
    width = max(1, int(round(info.width * height / info.height)))
    frames, _ = dec.decode(path, idx, size=(width, height), info=info)
    return np.concatenate(list(frames), axis=1)


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi")


def check_prediction_output(output: str) -> None:
    """Before any work: `output` names a video or an image `write_prediction` can write, in a folder that takes
    files."""
    if os.path.splitext(output)[1].lower() not in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS:
        raise UserError(f"--output {output!r}: expected a video (.mp4, .mkv, .avi) or an image (.png, .jpg)")
    check_writable(output, "--output")


def write_prediction(path: str, output: str, lines: list[str]) -> str:
    """A copy of the video with `lines` on every frame (.mp4, .mkv, .avi), or a frame strip (.png, .jpg)."""
    check_prediction_output(output)
    if os.path.splitext(output)[1].lower() in IMAGE_EXTENSIONS:
        with writing(output):
            _caption(Image.fromarray(frame_strip(path)), lines).save(output)
        return output
    dec = PyAVDecoder()
    info = dec.probe(path)
    w, h = info.width - info.width % 2, info.height - info.height % 2  # yuv420p needs even sizes
    frames = []
    for chunk, _ in dec.iter_frames(path, np.arange(info.num_frames), size=(w, h), info=info):
        frames += [np.asarray(_caption(Image.fromarray(f), lines)) for f in chunk]
    with writing(output):
        encode_video(output, np.stack(frames), int(round(info.fps)) or 25, "mpeg4")
    return output
