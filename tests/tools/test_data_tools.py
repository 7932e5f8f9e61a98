import os
import shutil

import pytest

from tests.datasets import release_layouts
from tests.datasets.bad_files import make_bad_files
from tests.helpers import run_tool, synthetic_opts


def test_make_synthetic_dataset_from_the_command_line(tmp_path):
    out = tmp_path / "syn"
    proc = run_tool(
        "make_synthetic_dataset.py",
        "--out",
        out,
        "--workers",
        1,
        "SYNTHETIC.TRAIN_PER_CLASS",
        1,
        "SYNTHETIC.VAL_PER_CLASS",
        1,
        "SYNTHETIC.TEST_PER_CLASS",
        0,
        "SYNTHETIC.DURATION_RANGE",
        "[0.5, 1.0]",
        "SYNTHETIC.SIZES",
        "[[32, 24]]",
    )
    assert "wrote 12 videos" in proc.stdout
    assert len(open(out / "train.csv").read().splitlines()) == 6
    assert len(os.listdir(out / "videos" / "val")) == 6


@pytest.mark.parametrize("workers", [1, 2])
def test_check_dataset_reports_unreadable_files_durations_and_fps(synthetic_dir, tmp_path, workers):
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    good = os.path.join(data, open(data / "val.csv").readline().split()[0])
    bad = make_bad_files(str(tmp_path / "bad"), good)
    with open(data / "val.csv", "a") as f:
        f.write(f"{bad['truncated']} triangle\n{bad['missing']} stripes\n")
    opts = [*synthetic_opts(str(data)), "--splits", "train,val", "--workers", workers]
    proc = run_tool("check_dataset.py", *opts, check=False)
    out = proc.stdout
    assert proc.returncode == 1
    assert "[train] listed 12, present 12, missing 0, unreadable 0; 6 classes" in out
    assert "[val] listed 8, present 7, missing 1, unreadable 1; 6 classes" in out
    assert "unreadable: " + bad["truncated"] + ": cannot be opened" in out and "missing: " + bad["missing"] in out
    assert "duration (s): min" in out and "fps histogram:" in out and "30 fps:" in out
    assert "short side (px): min 48" in out and "most common sizes: " in out
    assert "unevenly spaced frames (dropped frames, variable rate; sampled by their times): 0;" in out
    assert "  val: 7/7 videos probed" in out  # the progress line


LAYOUTS = {
    "kinetics": lambda root, syn: release_layouts.kinetics_official(root, syn),
    "ucf101": lambda root, syn: release_layouts.ucf101(root, syn),
    "hmdb51": lambda root, syn: release_layouts.hmdb51(root, syn),
    "ssv2": lambda root, syn: release_layouts.ssv2(root),
    "folder": lambda root, syn: release_layouts.class_folders(root, syn),
}


@pytest.mark.parametrize("dataset", sorted(LAYOUTS))
def test_check_dataset_reads_every_release_layout(dataset, synthetic_dir, tmp_path):
    layout = LAYOUTS[dataset](str(tmp_path), synthetic_dir)
    classes = len(layout["classes"])
    opts = [
        *synthetic_opts(str(tmp_path)),
        "TRAIN.DATASET",
        dataset,
        "TEST.DATASET",
        dataset,
        "MODEL.NUM_CLASSES",
        classes,
    ]
    proc = run_tool("check_dataset.py", *opts, "--splits", "train,test", "--workers", 2)
    train = "listed 8, present 7, missing 1" if dataset == "kinetics" else "missing 0"
    assert f"unreadable 0; {classes} classes" in proc.stdout and train in proc.stdout
    assert proc.stdout.count("short side (px): min") == 2


def test_long_video_shows_each_class_in_turn_and_names_a_bad_class(tmp_path, capsys):
    import av

    from tests.helpers import load_tool

    tool = load_tool("tools/make_synthetic_dataset.py")
    path = tmp_path / "long.mp4"
    tool.main(["--long-video", str(path), "--classes", "triangle,stripes", "--segment-seconds", "2"])
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    assert len(frames) == 2 * 2 * 24  # two segments of 2 s at the first rate of SYNTHETIC.FPS_CHOICES
    # the stripes of the second half change many more columns than the triangle of the first
    edges = [float(abs(f[:, 1:].astype(int) - f[:, :-1]).mean()) for f in (frames[10], frames[-10])]
    assert edges[1] > edges[0]
    with pytest.raises(SystemExit) as e:
        tool.main(["--long-video", str(tmp_path / "x.mp4"), "--classes", "juggling"])
    assert e.value.code == 2 and "--classes juggling: expected names among square_growing" in capsys.readouterr().err
