"""The Python API (vtn.load, VideoModel.predict / embed): the README's example runs as written, and it gives the
demo's scores, finds the weights as the test phase does, and names bad files."""

import contextlib
import io
import json
import os
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO, TINY_MODEL_OPTS, section_code, synthetic_opts
from vtn.config import load_config
from vtn.datasets import build_dataset
from vtn.engine.checkpoint import CheckpointError, checkpoint_dir, checkpoint_name, save_checkpoint
from vtn.models import build_model
from vtn.utils.errors import UserError
from vtn.video.decoder import VideoDecodeError


def as_opts(opts):
    return [json.dumps(o) if isinstance(o, list) else str(o) for o in opts]


def save_tiny(path, cfg_file=None, *extra, seed=1):
    cfg = load_config(cfg_file, as_opts(extra))
    torch.manual_seed(seed)
    save_checkpoint(str(path), cfg, build_model(cfg), epoch=1)
    return cfg


@pytest.fixture(scope="module")
def tiny(synthetic_dir, tmp_path_factory):
    """(opts, checkpoint path, test videos) of a tiny trained-looking model on the tests' synthetic dataset."""
    opts = as_opts(TINY_MODEL_OPTS + synthetic_opts(synthetic_dir))
    path = tmp_path_factory.mktemp("api") / "model.pyth"
    cfg = save_tiny(path, None, *opts)
    return opts, str(path), build_dataset(cfg, "test").paths


def test_import_vtn_does_not_import_torch():
    code = "import sys, vtn; assert 'torch' not in sys.modules and 'vtn.api' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    import vtn
    from vtn.api import VideoModel, load

    assert vtn.load is load and vtn.VideoModel is VideoModel
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        vtn.nope  # noqa: B018


def test_the_readme_example_runs_as_written(synthetic_dir, tmp_path):
    code = section_code("README.md", "Python API")["classify.py"]
    cfg_file = os.path.join(REPO, "configs/Kinetics/VIT_B_VTN.yaml")
    tiny = as_opts(TINY_MODEL_OPTS + ["DATA.PATH_TO_DATA_DIR", synthetic_dir, "DATA.CLASS_INDEX_FILE", "classes.json"])
    save_tiny(tmp_path / "model.pyth", cfg_file, *tiny, "MODEL.NUM_CLASSES", "400")
    videos = sorted(os.listdir(os.path.join(synthetic_dir, "videos", "test")))
    video = lambda i: os.path.join(synthetic_dir, "videos", "test", videos[i])  # noqa: E731
    for old, new in [
        ('"configs/Kinetics/VIT_B_VTN.yaml"', repr(cfg_file)),
        ('"model.pyth"', repr(str(tmp_path / "model.pyth"))),
        ("opts=[", f"opts={tiny!r} + ["),
        ('"video.mp4"', repr(video(0))),
        ('"a.mp4"', repr(video(1))),
        ('"b.mkv"', repr(video(2))),
    ]:
        assert old in code, old
        code = code.replace(old, new)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    top5 = eval(lines[0])
    assert len(top5) == 5 and {"label", "score"} == set(top5[0]) and 0 < top5[0]["score"] <= 1
    assert lines[1].startswith(video(1)) and lines[2].startswith(video(2))
    assert lines[3] == "torch.Size([250]) torch.Size([250, 192]) torch.Size([192])"  # the config's 250 frames


def test_predict_gives_the_demo_scores_for_one_and_two_videos(tiny):
    import vtn
    from vtn.inference.demo import load_predictor

    opts, path, videos = tiny
    model = vtn.load(None, checkpoint=path, opts=opts, device="cpu")
    assert model.checkpoint == path and model.device == torch.device("cpu")
    reference = load_predictor(load_config(None, opts + ["TEST.CHECKPOINT_FILE_PATH", path]))
    names = json.load(open(os.path.join(opts[opts.index("DATA.PATH_TO_DATA_DIR") + 1], "classes.json")))
    names = {i: n for n, i in names.items()}
    one = model.predict(videos[0], topk=5)
    two = model.predict([videos[1], videos[2]])
    for video, got in zip(videos[:3], [one, *two]):
        expected = reference.predict(video).topk(5)
        assert [g["label"] for g in got] == [names[c] for c, _ in expected]
        assert max(abs(g["score"] - s) for g, (_, s) in zip(got, expected)) <= 1e-5
    assert sum(g["score"] for g in model.predict(videos[0], topk=6)) == pytest.approx(1.0, abs=1e-5)


def test_embed_returns_frames_embeddings_and_the_head_input(tiny):
    import vtn

    opts, path, videos = tiny
    model = vtn.load(None, checkpoint=path, opts=opts + ["TEST.FULL_VIDEO_FRAMES", "6"], device="cpu")
    e = model.embed(videos[0])
    assert e.frame_idx.shape == (6,) and e.frame_embeddings.shape == (6, 192) and e.cls_feature.shape == (192,)
    assert torch.all(e.frame_idx[1:] > e.frame_idx[:-1])
    net = model.predictor.model
    logits = net.mlp_head(e.cls_feature[None])[0]  # the [CLS] feature is what the head classifies
    expected = model.predictor.predict(videos[0]).scores
    torch.testing.assert_close(logits.softmax(-1), expected, rtol=0, atol=1e-5)


def test_missing_and_broken_videos_raise_errors_naming_them(tiny, tmp_path):
    import vtn

    opts, path, videos = tiny
    model = vtn.load(None, checkpoint=path, opts=opts, device="cpu")
    missing, broken = str(tmp_path / "nope.mp4"), tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    for bad in (missing, str(broken)):
        with pytest.raises(VideoDecodeError, match=bad) as info:
            model.predict([videos[0], bad])
        assert isinstance(info.value, UserError)
    with pytest.raises(VideoDecodeError, match=missing):
        model.embed(missing)


def test_an_output_dir_gives_its_newest_checkpoint(tiny, tmp_path):
    import vtn

    opts, _, videos = tiny
    out = str(tmp_path / "run")
    save_tiny(os.path.join(checkpoint_dir(out), checkpoint_name(1)), None, *opts, "OUTPUT_DIR", out, seed=2)
    newest = os.path.join(checkpoint_dir(out), checkpoint_name(2))
    save_tiny(newest, None, *opts, "OUTPUT_DIR", out, seed=3)
    model = vtn.load(None, checkpoint=out, opts=opts, device="cpu")
    assert model.checkpoint == newest
    direct = vtn.load(None, checkpoint=newest, opts=opts, device="cpu")
    assert model.predict(videos[0]) == direct.predict(videos[0])


def test_no_checkpoint_is_an_error_unless_random_init_is_allowed(tiny, tmp_path):
    import vtn

    opts, _, videos = tiny
    empty = ["OUTPUT_DIR", str(tmp_path / "empty")]
    with pytest.raises(CheckpointError, match="No checkpoint"):
        vtn.load(None, opts=opts + empty, device="cpu")
    with pytest.raises(CheckpointError, match="nothing.pyth"):
        vtn.load(None, checkpoint=str(tmp_path / "nothing.pyth"), opts=opts, device="cpu")
    model = vtn.load(None, opts=opts + empty + ["TEST.ALLOW_RANDOM_INIT", "True"], device="cpu")
    assert model.checkpoint is None and len(model.predict(videos[0], topk=3)) == 3
