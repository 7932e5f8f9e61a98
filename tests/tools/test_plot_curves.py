import json

from tests.helpers import run_tool


def fake_log(path, good=True):
    lines = ["json_stats: not json at all"]
    for e in range(3):
        for i in range(2):
            lines.append(
                json.dumps(
                    {"_type": "train_iter", "epoch_float": e + (i + 1) / 2, "loss": 2.0 - e * 0.5, "lr": 0.1 / (e + 1)}
                )
            )
        lines.append(
            json.dumps({"_type": "train_epoch", "epoch_float": e + 1.0, "loss": 2.0 - e, "top1_err": 80 - 20 * e})
        )
        lines.append(json.dumps({"_type": "val_epoch", "epoch_float": e + 1.0, "top1_err": 85 - 20 * e}))
    path.write_text("\n".join(lines if good else lines[:1]) + "\n")
    return str(path)


def test_plot_curves_writes_a_png_for_two_runs(tmp_path):
    from PIL import Image

    a, b = fake_log(tmp_path / "a.log"), fake_log(tmp_path / "b.log")
    out = tmp_path / "curves.png"
    proc = run_tool(
        "plot_curves.py",
        "--log",
        a,
        "--label",
        "learned",
        "--log",
        b,
        "--label",
        "uniform",
        "--output",
        str(out),
        "--title",
        "Fig. 4",
    )
    assert "wrote" in proc.stdout
    img = Image.open(out)
    assert img.size[0] > 1000 and img.size[1] > 300


def test_plot_curves_explains_bad_input(tmp_path):
    proc = run_tool(
        "plot_curves.py", "--log", str(tmp_path / "missing.log"), "--output", str(tmp_path / "x.png"), check=False
    )
    assert proc.returncode != 0 and "missing.log does not exist" in proc.stderr
    empty = fake_log(tmp_path / "empty.log", good=False)
    proc = run_tool("plot_curves.py", "--log", empty, "--output", str(tmp_path / "x.png"), check=False)
    assert proc.returncode != 0 and "no training or validation records" in proc.stderr
    a = fake_log(tmp_path / "a.log")
    proc = run_tool(
        "plot_curves.py", "--log", a, "--label", "x", "--label", "y", "--output", str(tmp_path / "x.png"), check=False
    )
    assert "2 labels for 1 logs" in proc.stderr


def one_epoch_log(path, iterations=True):
    """A 1-epoch run: one point per series (or, without iteration records, the loss and lr of the epoch)."""
    lines = [
        {"_type": "train_epoch", "epoch": "1/1", "epoch_float": 1.0, "loss": 1.8, "top1_err": 75.0, "lr": 0.001},
        {"_type": "val_epoch", "epoch": "1/1", "epoch_float": 1.0, "top1_err": 80.0},
    ]
    if iterations:
        lines.insert(
            0, {"_type": "train_iter", "epoch": "1/1", "epoch_float": 1.0, "iter": "3/3", "loss": 1.79, "lr": 0.001}
        )
    path.write_text("".join("json_stats: " + json.dumps(r) + "\n" for r in lines))
    return str(path)


def test_a_one_epoch_run_shows_every_series(tmp_path):
    import matplotlib.pyplot as plt

    from vtn.visualization.curves import build_figure

    logs = [one_epoch_log(tmp_path / "a.log"), one_epoch_log(tmp_path / "b.log", iterations=False)]
    fig = build_figure(logs, ["iters", "epochs"])
    try:
        ax_acc, ax_loss, ax_lr = fig.axes
        for ax, count in ((ax_acc, 4), (ax_loss, 2), (ax_lr, 2)):  # accuracy: train and val of both runs
            lines = ax.get_lines()
            assert len(lines) == count, ax.get_ylabel()
            for line in lines:
                assert len(line.get_xdata()) == 1
                assert line.get_marker() not in ("", "None", None), (ax.get_ylabel(), line.get_label())
                assert line.get_markersize() >= 3
        train, val = ax_acc.get_lines()[:2]
        assert train.get_marker() != val.get_marker()  # train and val tell apart without their line styles
        assert [tuple(line.get_ydata()) for line in ax_loss.get_lines()] == [(1.79,), (1.8,)]
    finally:
        plt.close(fig)


def test_long_iteration_series_keep_plain_lines(tmp_path):
    import matplotlib.pyplot as plt

    from vtn.visualization.curves import build_figure

    fig = build_figure([fake_log(tmp_path / "a.log")])
    try:
        ax_acc, ax_loss, ax_lr = fig.axes
        assert all(line.get_marker() in ("", "None") for line in ax_loss.get_lines() + ax_lr.get_lines())
        assert all(line.get_marker() not in ("", "None") for line in ax_acc.get_lines())
    finally:
        plt.close(fig)
