"""tools/predict.py: one row per video (bad ones included), the API's scores, resumable, never half-written."""

import csv
import itertools
import json
import os

import pytest
import torch

from tests.helpers import TINY_MODEL_OPTS, load_tool, run_tool, synthetic_opts
from vtn.config import load_config
from vtn.engine.checkpoint import save_checkpoint
from vtn.models import build_model


def as_opts(opts):
    return [json.dumps(o) if isinstance(o, list) else str(o) for o in opts]


@pytest.fixture(scope="module")
def setup(synthetic_dir, tmp_path_factory):
    """(opts naming a tiny checkpoint, the synthetic test videos, a broken video)."""
    tmp = tmp_path_factory.mktemp("predict")
    opts = as_opts(TINY_MODEL_OPTS + synthetic_opts(synthetic_dir))
    cfg = load_config(None, opts)
    torch.manual_seed(1)
    save_checkpoint(str(tmp / "model.pyth"), cfg, build_model(cfg), epoch=1)
    broken = tmp / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x07" * 3000)
    folder = os.path.join(synthetic_dir, "videos", "test")
    videos = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    return opts + ["TEST.CHECKPOINT_FILE_PATH", str(tmp / "model.pyth")], videos, str(broken)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_folder_a_missing_and_a_broken_video_give_one_row_each(setup, tmp_path, synthetic_dir):
    import vtn

    opts, videos, broken = setup
    out = str(tmp_path / "predictions.csv")
    missing = str(tmp_path / "missing.mp4")
    proc = run_tool(
        "predict.py", "--input", os.path.dirname(videos[0]), missing, broken, "--output", out, "--topk", 3, *opts
    )
    assert "eta" in proc.stdout and f"wrote {out}: 6 ok, 2 failed, 0 skipped" in proc.stdout
    rows = read_csv(out)
    assert [r["path"] for r in rows] == videos + [missing, broken]
    assert not os.path.exists(out + ".partial")
    model = vtn.load(None, opts=opts, device="cpu")
    for row, video in zip(rows, videos):
        expected = model.predict(video, topk=3)
        assert row["status"] == "ok" and row["labels"].split("|") == [e["label"] for e in expected]
        assert [float(s) for s in row["scores"].split("|")] == pytest.approx([e["score"] for e in expected], abs=1e-5)
        assert int(row["frames"]) == 8 and 1.0 <= float(row["duration"]) <= 3.1  # TEST.FULL_VIDEO_FRAMES 8
    assert rows[-2]["status"] == "no such video file" and rows[-2]["labels"] == ""
    assert rows[-1]["status"] not in ("", "ok")


def test_a_rerun_skips_what_is_done_and_a_crash_leaves_rows_to_resume(setup, tmp_path):
    opts, videos, _ = setup
    out = str(tmp_path / "p.jsonl")
    run_tool("predict.py", "--input", *videos[:2], "--output", out, *opts)
    first = [json.loads(line) for line in open(out)]
    assert [r["path"] for r in first] == videos[:2] and len(first[0]["labels"]) == 5
    # a crash mid-run: one finished row in the partial file and half of the next
    row = dict(first[0], path=videos[2])
    with open(out + ".partial", "w") as f:
        f.write(json.dumps(row) + "\n" + json.dumps(dict(row, path=videos[3]))[:20])
    proc = run_tool("predict.py", "--input", *videos, "--output", out, *opts)
    assert "3 of 6 videos already in" in proc.stdout and "3 ok, 0 failed, 3 skipped" in proc.stdout
    rows = [json.loads(line) for line in open(out)]
    assert [r["path"] for r in rows] == videos and rows[2] == row  # kept, not predicted again
    assert rows[:2] == first and not os.path.exists(out + ".partial")


def test_an_interruption_keeps_the_finished_rows(setup, tmp_path, monkeypatch, capsys):
    import vtn.inference.predict as predict

    opts, videos, _ = setup
    out = str(tmp_path / "p.csv")
    real, calls = predict.predict_row, []

    def interrupted(model, video, topk):
        calls.append(video["path"])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(model, video, topk)

    monkeypatch.setattr(predict, "predict_row", interrupted)
    with pytest.raises(SystemExit) as e:
        load_tool("tools/predict.py").main(["--input", *videos, "--output", out, *opts])
    assert e.value.code == 130 and "rerun the same command to resume" in capsys.readouterr().err
    assert [r["path"] for r in read_csv(out)] == videos[:2]
    monkeypatch.setattr(predict, "predict_row", real)
    run_tool("predict.py", "--input", *videos, "--output", out, *opts)
    assert [r["path"] for r in read_csv(out)] == videos


def test_a_list_of_videos_and_bad_outputs(setup, tmp_path, synthetic_dir):
    opts, videos, _ = setup
    out = str(tmp_path / "p.csv")
    run_tool("predict.py", "--input", os.path.join(synthetic_dir, "test.csv"), "--output", out, *opts)
    assert sorted(r["path"] for r in read_csv(out)) == videos
    bad = run_tool("predict.py", "--input", videos[0], "--output", tmp_path / "p.txt", *opts, check=False)
    assert bad.returncode == 2 and "give a .csv or .jsonl file" in bad.stderr and bad.stderr.count("\n") == 1
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    other = run_tool("predict.py", "--input", videos[0], "--output", tmp_path / "other.csv", *opts, check=False)
    assert other.returncode == 2 and "is not a predictions file" in other.stderr
    assert (tmp_path / "other.csv").read_text() == "a,b\n1,2\n"


def test_decoding_in_two_workers_gives_the_rows_of_the_process(setup, tmp_path):
    """--workers 2: the videos decode in loader workers and finish out of order; the rows are those of --workers 0
    (the model's own streaming path), in the inputs' order, bad videos included."""
    opts, videos, broken = setup
    inputs = [videos[0], broken, *videos[1:4], str(tmp_path / "missing.mp4")]
    rows = {}
    for workers in (0, 2):
        out = str(tmp_path / f"w{workers}.jsonl")
        proc = run_tool("predict.py", "--input", *inputs, "--output", out, "--workers", workers, *opts)
        assert "4 ok, 2 failed, 0 skipped" in proc.stdout
        rows[workers] = [json.loads(line) for line in open(out)]
    assert [r["path"] for r in rows[2]] == inputs
    for a, b in zip(rows[0], rows[2]):
        assert {k: v for k, v in a.items() if k != "scores"} == {k: v for k, v in b.items() if k != "scores"}
        assert b["scores"] == pytest.approx(a["scores"], abs=1e-5)
    assert rows[2][1]["status"] not in ("", "ok") and rows[2][-1]["status"] == "no such video file"


@pytest.mark.slow
def test_two_torchrun_processes_write_the_output_of_one(setup, tmp_path):
    """2 gloo processes (torchrun, the real command line), each with a loader worker: each predicts its share of
    the videos still to do (2 are already in the output), and rank 0 writes the output of one process, in the
    inputs' order, and removes the partial files."""
    from tests.helpers import run_torchrun

    opts, videos, broken = setup
    inputs = [*videos, broken]
    one, two = str(tmp_path / "one.csv"), str(tmp_path / "two.csv")
    run_tool("predict.py", "--input", *inputs, "--output", one, *opts)
    expected = read_csv(one)
    with open(two, "w", newline="") as f:  # an earlier run's rows: skipped
        f.write("".join(open(one).readlines()[:3]))
    proc = run_torchrun("predict.py", "--input", *inputs, "--output", two, "--workers", 1, *opts, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 of 7 videos already in" in proc.stdout and "(this process's share of 2)" in proc.stdout
    assert proc.stdout.count("predict: wrote") == 1 and "4 ok, 1 failed, 2 skipped" in proc.stdout
    got = read_csv(two)
    assert [r["path"] for r in got] == inputs
    for a, b in zip(expected, got):
        assert {k: v for k, v in a.items() if k != "scores"} == {k: v for k, v in b.items() if k != "scores"}
        assert [float(s) for s in b["scores"].split("|") if s] == pytest.approx(
            [float(s) for s in a["scores"].split("|") if s], abs=1e-5
        )
    assert not [n for n in os.listdir(tmp_path) if ".partial" in n]


def test_a_timeline_gives_the_windows_of_each_video_and_a_rerun_skips_them(setup, tmp_path, capsys):
    """--timeline 1: one row per 1 s window of each video (tiling it, the scores of compute_timeline), one failure
    row for a broken file; a rerun predicts nothing again, and a cut-short partial file's last video is redone."""
    import vtn
    from vtn.inference.timeline import compute_timeline

    opts, videos, broken = setup
    out = str(tmp_path / "t.csv")
    tool = load_tool("tools/predict.py")
    args = ["--input", videos[0], broken, videos[1], "--output", out, "--topk", "2", "--timeline", "1", *opts]
    tool.main(args)
    assert "2 ok, 1 failed, 0 skipped" in capsys.readouterr().out
    rows = read_csv(out)
    assert list(rows[0]) == ["path", "window", "start_s", "end_s", "labels", "scores", "frames", "duration", "status"]
    model = vtn.load(None, opts=opts, device="cpu")
    failed = [r for r in rows if r["path"] == broken]
    assert len(failed) == 1 and failed[0]["window"] == "" and failed[0]["status"] not in ("", "ok")
    assert [k for k, _ in itertools.groupby(r["path"] for r in rows)] == [videos[0], broken, videos[1]]
    for video in (videos[0], videos[1]):
        mine = [r for r in rows if r["path"] == video]
        timeline = compute_timeline(model.predictor, video, 1.0)
        assert len(mine) == len(timeline.windows) >= 2 and all(r["status"] == "ok" for r in mine)
        assert float(mine[0]["start_s"]) == 0.0 and float(mine[-1]["end_s"]) == pytest.approx(
            timeline.duration, abs=1e-3
        )
        assert float(mine[-1]["end_s"]) == pytest.approx(float(mine[0]["duration"]), abs=1e-3)
        for a, b in zip(mine, mine[1:]):
            assert a["end_s"] == b["start_s"] and int(b["window"]) == int(a["window"]) + 1
        for row, window in zip(mine, timeline.windows):
            top = window.topk(2)
            assert row["labels"].split("|") == [model.label(c) for c, _ in top]
            assert [float(s) for s in row["scores"].split("|")] == pytest.approx([s for _, s in top], abs=1e-5)
            assert int(row["frames"]) == len(window.frame_idx)
    before = open(out).read()
    tool.main(args)
    assert "3 of 3 videos already in" in capsys.readouterr().out and open(out).read() == before
    # a crash: the partial file holds a whole video's rows and some of the next's; only the first is kept
    header, *lines = before.splitlines(keepends=True)
    first = [line for line in lines if line.startswith(videos[0])]
    with open(tmp_path / "t2.csv", "w") as f:
        f.write(header)
    with open(str(tmp_path / "t2.csv") + ".partial", "w") as f:
        second = [line for line in lines if line.startswith(videos[1])]
        f.write("".join(first) + second[0] + second[1][:20])  # the second video's first window of several
    tool.main([*args[:5], str(tmp_path / "t2.csv"), *args[6:]])
    assert "1 of 3 videos already in" in capsys.readouterr().out
    assert open(tmp_path / "t2.csv").read() == before


def test_a_bad_timeline_is_a_one_line_error(setup, tmp_path):
    opts, videos, _ = setup
    bad = run_tool(
        "predict.py", "--input", videos[0], "--output", tmp_path / "t.csv", "--timeline", "0", *opts, check=False
    )
    assert bad.returncode == 2 and "--timeline" in bad.stderr and bad.stderr.count("\n") == 1


def test_an_override_after_the_inputs_is_an_override_not_two_more_inputs(setup, tmp_path):
    opts, videos, _ = setup
    out = str(tmp_path / "p.csv")
    proc = run_tool("predict.py", "--output", out, *opts, "--input", videos[0], "TEST.FULL_VIDEO_FRAMES", 16)
    rows = read_csv(out)
    assert [r["path"] for r in rows] == [videos[0]] and rows[0]["status"] == "ok"
    assert int(rows[0]["frames"]) == 16  # the override applied, after the setup's 8 as written
    assert f"wrote {out}: 1 ok, 0 failed" in proc.stdout
    alone = run_tool("predict.py", "--input", "TEST.FULL_VIDEO_FRAMES", 16, "--output", out, *opts, check=False)
    assert alone.returncode == 2 and "argument --input: expected at least one argument" in alone.stderr


def test_an_unwritable_output_fails_before_the_model_loads(setup, tmp_path, monkeypatch):
    from vtn.inference import predict

    opts, videos, _ = setup
    loaded = []
    monkeypatch.setattr(predict, "prediction_job", lambda *a, **k: loaded.append(a))
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "p.csv"
    proc = run_tool("predict.py", "--input", videos[0], "--output", out, *opts, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"--output: cannot write {out}: {tmp_path / 'file'} is a file, not a folder" in proc.stderr
    assert not loaded
