import os
import shutil

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


def test_check_dataset_reports_unreadable_files_durations_and_fps(synthetic_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    good = os.path.join(data, open(data / "val.csv").readline().split()[0])
    bad = make_bad_files(str(tmp_path / "bad"), good)
    with open(data / "val.csv", "a") as f:
        f.write(f"{bad['truncated']} triangle\n{bad['missing']} stripes\n")
    proc = run_tool("check_dataset.py", *synthetic_opts(str(data)), "--splits", "train,val", check=False)
    out = proc.stdout
    assert proc.returncode == 1
    assert "[train] 12 videos, 6 classes, 0 unreadable" in out
    assert "[val] 8 videos, 6 classes, 2 unreadable" in out
    assert "truncated.mp4: cannot be opened" in out and "missing.mp4: file does not exist" in out
    assert "duration (s): min" in out and "fps histogram:" in out and "30 fps:" in out
    assert "unevenly spaced frames (dropped frames, variable rate; sampled by their times): 0;" in out
