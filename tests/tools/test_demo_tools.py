"""demo_net.py and visualize_attention.py from the command line, on a model trained for one epoch."""

import os

import pytest
from PIL import Image

from tests.helpers import run_opts, run_tool


@pytest.fixture(scope="module")
def trained_tiny(synthetic_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("demo") / "out")
    opts = run_opts(synthetic_dir, out, "SOLVER.MAX_EPOCH", 1, "TEST.ENABLE", False, "TRAIN.EVAL_PERIOD", 0)
    run_tool("run_net.py", *opts)
    video = os.path.join(synthetic_dir, open(os.path.join(synthetic_dir, "test.csv")).readline().split()[0])
    return opts, video


def test_demo_prints_top5_and_writes_overlays(trained_tiny, tmp_path):
    opts, video = trained_tiny
    proc = run_tool("demo_net.py", "--video", video, "--output", tmp_path / "pred.png", *opts)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("model: ") and lines[0].endswith("checkpoint_epoch_00001.pyth")  # which weights
    assert "frames in one pass" in lines[1]
    ranked = [line.strip() for line in lines[2:7]]
    assert [r.split(".")[0] for r in ranked] == ["1", "2", "3", "4", "5"]
    assert any(name in ranked[0] for name in ("square", "disk", "triangle", "stripes"))
    assert Image.open(tmp_path / "pred.png").size[1] > 50
    run_tool("demo_net.py", "--video", video, "--output", tmp_path / "pred.mp4", *opts)
    assert os.path.getsize(tmp_path / "pred.mp4") > 1000


def test_demo_errors_are_clear(trained_tiny, tmp_path):
    opts, _ = trained_tiny
    proc = run_tool("demo_net.py", "--video", tmp_path / "missing.mp4", *opts, check=False)
    assert proc.returncode != 0 and "missing.mp4: file does not exist" in proc.stderr
    (tmp_path / "text.mp4").write_text("not a video")
    proc = run_tool("demo_net.py", "--video", tmp_path / "text.mp4", *opts, check=False)
    assert proc.returncode != 0 and "cannot be opened as a video" in proc.stderr


def test_a_demo_output_that_cannot_be_written_fails_before_the_model_loads(trained_tiny, tmp_path, monkeypatch):
    from vtn.inference import demo

    opts, video = trained_tiny
    loaded = []
    monkeypatch.setattr(demo, "load_predictor", lambda cfg: loaded.append(cfg))
    (tmp_path / "file").write_text("x")
    for flags, message in (
        (["--output", tmp_path / "out.gif"], "--output '" + str(tmp_path / "out.gif") + "': expected a video (.mp4"),
        (["--output", tmp_path / "file" / "p.png"], f"--output: cannot write {tmp_path / 'file' / 'p.png'}: "),
        (["--timeline", 1, "--plot", tmp_path / "file" / "t.png"], "--timeline-csv: cannot write "),
    ):
        proc = run_tool("demo_net.py", "--video", video, *flags, *opts, check=False)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert not loaded


def test_demo_enable_in_run_net(trained_tiny):
    opts, video = trained_tiny
    # the config still enables training and testing: DEMO.ENABLE runs the demo instead, nothing else
    proc = run_tool("run_net.py", *opts, "DEMO.ENABLE", "True", "DEMO.INPUT_VIDEO", video)
    assert "1. " in proc.stdout and "frames in one pass" in proc.stdout
    assert "Test results" not in proc.stdout and "Resuming" not in proc.stdout and "train_iter" not in proc.stdout


def test_visualize_attention_for_a_video_and_a_csv(trained_tiny, synthetic_dir, tmp_path):
    opts, video = trained_tiny
    run_tool("visualize_attention.py", "--video", video, "--output", tmp_path / "a.png", "--heads", "all", *opts)
    assert Image.open(tmp_path / "a.png").size[0] >= 800
    # train.csv lists its videos class by class, two per class: --limit 3 takes one of each of three classes
    csv = os.path.join(synthetic_dir, "train.csv")
    with open(csv) as f:
        lines = [line.split() for line in f if line.strip()]
    assert lines[0][-1] == lines[1][-1]
    proc = run_tool("visualize_attention.py", "--csv", csv, "--limit", 3, "--output-dir", tmp_path / "many", *opts)
    drawn = sorted(os.listdir(tmp_path / "many"))
    assert len(drawn) == 3 and proc.stdout.count(" -> ") == 3
    by_name = {os.path.splitext(os.path.basename(parts[0]))[0]: parts[-1] for parts in lines}
    assert len({by_name[os.path.splitext(name)[0]] for name in drawn}) == 3


def test_demo_samples_frames_per_second(trained_tiny):
    """DEMO.FPS: a fixed rate instead of TEST.FULL_VIDEO_FRAMES, the way to sample hours of video."""
    opts, video = trained_tiny
    proc = run_tool("demo_net.py", "--video", video, *opts, "DEMO.FPS", "2")
    head = proc.stdout.splitlines()[1]  # "<path>: 2.3 s, 57 frames at 25 fps; 5 frames in one pass"
    duration = float(head.split(": ")[1].split(" s,")[0])
    used = int(head.split("; ")[1].split()[0])
    assert abs(used - 2 * duration) <= 1.5
