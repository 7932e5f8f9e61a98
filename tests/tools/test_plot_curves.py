import json

from tests.helpers import run_tool


def fake_log(path, good=True):
    lines = ["json_stats: not json at all"]
    for e in range(3):
        for i in range(2):
            lines.append(json.dumps({"_type": "train_iter", "epoch_float": e + (i + 1) / 2, "loss": 2.0 - e * 0.5,
                                     "lr": 0.1 / (e + 1)}))
        lines.append(json.dumps({"_type": "train_epoch", "epoch_float": e + 1.0, "loss": 2.0 - e, "top1_err": 80 - 20 * e}))
        lines.append(json.dumps({"_type": "val_epoch", "epoch_float": e + 1.0, "top1_err": 85 - 20 * e}))
    path.write_text("\n".join(lines if good else lines[:1]) + "\n")
    return str(path)


def test_plot_curves_writes_a_png_for_two_runs(tmp_path):
    from PIL import Image

    a, b = fake_log(tmp_path / "a.log"), fake_log(tmp_path / "b.log")
    out = tmp_path / "curves.png"
    proc = run_tool("plot_curves.py", "--log", a, "--label", "learned", "--log", b, "--label", "uniform",
                    "--output", str(out), "--title", "Fig. 4")
    assert "wrote" in proc.stdout
    img = Image.open(out)
    assert img.size[0] > 1000 and img.size[1] > 300


def test_plot_curves_explains_bad_input(tmp_path):
    proc = run_tool("plot_curves.py", "--log", str(tmp_path / "missing.log"), "--output", str(tmp_path / "x.png"),
                    check=False)
    assert proc.returncode != 0 and "missing.log does not exist" in proc.stderr
    empty = fake_log(tmp_path / "empty.log", good=False)
    proc = run_tool("plot_curves.py", "--log", empty, "--output", str(tmp_path / "x.png"), check=False)
    assert proc.returncode != 0 and "no training or validation records" in proc.stderr
    a = fake_log(tmp_path / "a.log")
    proc = run_tool("plot_curves.py", "--log", a, "--label", "x", "--label", "y", "--output", str(tmp_path / "x.png"),
                    check=False)
    assert "2 labels for 1 logs" in proc.stderr
