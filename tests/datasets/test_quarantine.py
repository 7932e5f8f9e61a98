"""OUTPUT_DIR/quarantine.txt (vtn/datasets/quarantine.py) and the dataset under DATA.DECODE_TIMEOUT: a slow real
video is abandoned in a real DataLoader worker, replaced, counted and quarantined once; other processes, later epochs,
resumed runs and testing honour the file; a read that never returns ends its worker with the video quarantined;
tools/check_dataset.py --quarantine writes the file; a 2-process training run gets through it and its rerun never
decodes the video again."""

import json
import logging
import multiprocessing
import os
import pickle
import random
import shutil
import time

import pytest
from torch.utils.data import DataLoader

from tests.helpers import run_opts, run_tool, run_torchrun, synthetic_opts
from tests.servers import _FileHandler, _Server
from tests.video.test_deadline import slow_video_file
from vtn.config import load_config
from vtn.datasets import build_dataset
from vtn.datasets.quarantine import (
    HEADER,
    QUARANTINE_NAME,
    Quarantine,
    append_quarantine,
    parse_quarantine,
    read_quarantine,
)
from vtn.datasets.video_dataset import VideoDataset
from vtn.video import deadline

SLOW = "videos/train/zz_slow.mp4"
TIMEOUT = "0.5"


@pytest.fixture(scope="module")
def slow_data(synthetic_dir, tmp_path_factory):
    """The tests' synthetic dataset with the slow video listed in its train and test splits."""
    data = tmp_path_factory.mktemp("slow_data") / "synthetic"
    shutil.copytree(synthetic_dir, data)
    shutil.copyfile(slow_video_file(tmp_path_factory), data / SLOW)
    for split in ("train", "test"):
        with open(data / f"{split}.csv", "a") as f:
            f.write(f"{SLOW} triangle\n")
    return str(data)


def cfg_for(data, output_dir, *opts):
    opts = ["OUTPUT_DIR", str(output_dir), "DATA.DECODE_TIMEOUT", TIMEOUT, *opts]
    return load_config(None, synthetic_opts(data) + opts)


def listed_lines(path):
    return [line for line in open(path).read().splitlines() if line and not line.startswith("#")]


# ---------------------------------------------------------------------------------------------- the file
def test_the_file_is_read_with_comments_names_alone_and_repeats_dropped(tmp_path):
    text = "# a comment\n\na.mp4\ttoo slow\n  b c.mp4  \na.mp4\tagain\nd.mp4\t decoding took 70 s \r\n"
    assert parse_quarantine(text) == {"a.mp4": "too slow", "b c.mp4": "", "d.mp4": "decoding took 70 s"}
    assert read_quarantine(str(tmp_path / "none.txt")) == {} and read_quarantine(None) == {}
    path = str(tmp_path / QUARANTINE_NAME)
    assert append_quarantine(path, [("x.mp4", "slow\tand\nbroken"), ("bad\tname.mp4", "?"), ("x.mp4", "twice")]) == [
        "x.mp4"
    ]
    assert append_quarantine(path, [("x.mp4", "again"), ("y.mp4", "new")]) == ["y.mp4"]
    assert append_quarantine(path, []) == []
    assert open(path).read() == HEADER + "x.mp4\tslow and broken\ny.mp4\tnew\n"


def _append_many(path, names, seed):
    order = list(names)
    random.Random(seed).shuffle(order)
    for name in order:
        append_quarantine(path, [(name, f"writer {seed}")])


def test_many_writers_list_each_video_once(tmp_path):
    path = str(tmp_path / QUARANTINE_NAME)
    names = [f"videos/v{i:03d}.mp4" for i in range(40)]
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_append_many, args=(path, names[i * 8 : i * 8 + 24], i)) for i in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
    assert [w.exitcode for w in writers] == [0, 0, 0, 0]
    lines = listed_lines(path)
    assert sorted(line.split("\t")[0] for line in lines) == names  # each once, each whole
    assert all(line.split("\t")[1].startswith("writer ") for line in lines)
    assert open(path).read().count("# Videos") == 1


def test_a_process_reads_only_what_was_appended_and_whole_lines(tmp_path):
    path = tmp_path / QUARANTINE_NAME
    q = Quarantine(str(path), period=3600)
    assert len(q) == 0 and q.refresh(force=True) == 0  # no file yet
    append_quarantine(str(path), [("a.mp4", "slow")])
    assert q.refresh() == 0 and "a.mp4" not in q  # within the period: the file is not looked at
    assert q.refresh(force=True) == 1 and "a.mp4" in q
    with open(path, "a") as f:
        f.write("b.mp4\thalf a li")  # a line still being written
    assert q.refresh(force=True) == 0 and "b.mp4" not in q
    with open(path, "a") as f:
        f.write("ne\n")
    assert q.refresh(force=True) == 1 and q.entries["b.mp4"] == "half a line"
    replaced = tmp_path / "new.txt"
    replaced.write_text("c.mp4\tby hand\n")
    os.replace(replaced, path)  # a file replaced (or cut) is read again from its start
    assert q.refresh(force=True) == 1 and set(q.entries) == {"a.mp4", "b.mp4", "c.mp4"}
    copy = pickle.loads(pickle.dumps(q))  # a spawned worker
    assert set(copy.entries) == set(q.entries) and copy.path == q.path


def test_without_an_output_folder_a_video_is_quarantined_in_memory(tmp_path):
    q = Quarantine(str(tmp_path / "not_made" / QUARANTINE_NAME))
    assert q.add("a.mp4", "slow") is None and "a.mp4" in q and not (tmp_path / "not_made").exists()
    q = Quarantine(None)
    assert q.add("b.mp4", "slow") is None and "b.mp4" in q
    q = Quarantine(str(tmp_path / QUARANTINE_NAME))
    assert q.add("c.mp4", "slow") == str(tmp_path / QUARANTINE_NAME)


# ---------------------------------------------------------------------------------------------- the dataset
def test_a_slow_video_is_abandoned_in_a_worker_replaced_counted_and_quarantined(slow_data, tmp_path, caplog):
    out = tmp_path / "out"
    out.mkdir()
    cfg = cfg_for(slow_data, out)
    ds = build_dataset(cfg, "train")
    slow = ds.paths.index(os.path.join(slow_data, SLOW))
    other = build_dataset(cfg, "train")  # another worker or rank, made before the video was quarantined
    assert other[(0, 0)]["decode_failures"] == 0

    keys = [(slow, 0), (0, 0), (1, 0), (slow, 0)]  # one worker each: abandoned by each, or skipped by the second
    loader = DataLoader(ds, batch_size=None, sampler=keys, num_workers=2, multiprocessing_context="fork")
    items = list(loader)
    assert [int(i["decode_failures"]) for i in items] == [1, 0, 0, 1]
    assert all(bool(i["ok"]) for i in items) and int(items[0]["video_idx"]) != slow
    assert int(items[3]["video_idx"]) != slow
    file = out / QUARANTINE_NAME
    assert listed_lines(file) == [f"{ds.paths[slow]}\tdecoding took longer than {TIMEOUT} s"]

    caplog.set_level(logging.DEBUG, logger="vtn.datasets.video_dataset")
    for dataset in (other, build_dataset(cfg, "train")):  # at its next epoch; a resumed run
        start = time.perf_counter()
        item = dataset[(slow, 1)]
        assert int(item["decode_failures"]) == 1 and int(item["video_idx"]) != slow
        assert time.perf_counter() - start < float(TIMEOUT)  # not decoded at all
    assert "train split: 1 of its 13 videos are listed in" in caplog.text
    assert "Skipping a quarantined video (train split)" in caplog.text and "Abandoned" not in caplog.text

    test = build_dataset(cfg, "test", "single_view")  # testing reports it as failed, without decoding it
    item = test[test.paths.index(os.path.join(slow_data, SLOW))]
    assert not bool(item["ok"]) and int(item["decode_failures"]) == 1


def test_testing_reports_a_slow_video_as_failed_and_quarantines_it(slow_data, tmp_path, caplog):
    cfg = cfg_for(slow_data, tmp_path)
    test = build_dataset(cfg, "test", "single_view")
    slow = test.paths.index(os.path.join(slow_data, SLOW))
    start = time.perf_counter()
    item = test[slow]
    assert not bool(item["ok"]) and int(item["decode_failures"]) == 1
    assert time.perf_counter() - start < float(TIMEOUT) + 1.0
    assert bool(test[0]["ok"])
    start = time.perf_counter()  # the process that found it knows it at once
    assert not bool(test[slow]["ok"]) and time.perf_counter() - start < 0.1
    assert f"Abandoned a video that decodes too slowly (test split): {test.paths[slow]}: decoding took" in caplog.text
    assert list(read_quarantine(str(tmp_path / QUARANTINE_NAME))) == [test.paths[slow]]


class _StallingHandler(_FileHandler):
    def send_file(self, status, path, start, end, headers):
        if self.command != "GET":
            return super().send_file(status, path, start, end, headers)
        self.send_response(status)
        for name, value in [*headers, ("Accept-Ranges", "bytes"), ("Content-Length", str(end - start))]:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(b"\0" * min(512, end - start))
        self.server.owner.stopping.wait(30)  # the rest of the body never comes (until the server stops)


class StallingServer(_Server):
    """Files under `root` whose GET bodies stop after 512 bytes: a read that never returns."""

    def __init__(self, root):
        self.root, self.head, self.ranges, self.bytes_sent = os.path.realpath(str(root)), True, True, 0
        super().__init__(_StallingHandler)


def test_a_read_that_never_returns_ends_its_worker_with_the_video_quarantined(synthetic_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(deadline, "MIN_GRACE", 1.0)  # the forked worker inherits it
    cfg = cfg_for(synthetic_dir, tmp_path, "DATA.DECODE_TIMEOUT", "0.3")
    with StallingServer(os.path.join(synthetic_dir, "videos", "train")) as server:
        url = f"{server.url}/{sorted(os.listdir(os.path.join(synthetic_dir, 'videos', 'train')))[0]}"
        ds = VideoDataset(cfg, "train", "train_clip", [url], [0], located=True)
        loader = DataLoader(
            ds, batch_size=None, sampler=[(0, 0)], num_workers=1, multiprocessing_context="fork", timeout=20
        )
        start = time.perf_counter()
        with pytest.raises(RuntimeError, match="DataLoader worker .* exited unexpectedly"):
            list(loader)
        assert time.perf_counter() - start < 15
    entries = read_quarantine(str(tmp_path / QUARANTINE_NAME))
    assert list(entries) == [url] and entries[url].startswith("one decoding call had not returned")


# ---------------------------------------------------------------------------------------------- the tool
def test_check_dataset_writes_the_unreadable_and_too_slow_videos(slow_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(slow_data, data)
    (data / "videos" / "train" / "zz_notes.mp4").write_text("not a video\n" * 20)
    with open(data / "train.csv", "a") as f:
        f.write("videos/train/zz_notes.mp4 stripes\n")
    file = tmp_path / "out" / QUARANTINE_NAME
    opts = [*synthetic_opts(str(data)), "DATA.DECODE_TIMEOUT", TIMEOUT, "--splits", "train", "--workers", 1]
    proc = run_tool("check_dataset.py", *opts, "--quarantine", file, check=False)
    assert proc.returncode == 2 and f"the folder {file.parent} does not exist" in proc.stderr
    file.parent.mkdir()
    proc = run_tool("check_dataset.py", *opts, "--quarantine", file, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "unreadable 1; too slow 1 (DATA.DECODE_TIMEOUT = 0.5 s); 6 classes" in proc.stdout
    assert f"too slow: {data / SLOW}: decoding took longer" in proc.stdout
    assert f"quarantine: 2 videos added to {file} (0 listed already)" in proc.stdout
    entries = read_quarantine(str(file))
    assert list(entries) == [str(data / SLOW), str(data / "videos/train/zz_notes.mp4")]
    assert entries[str(data / SLOW)].startswith("decoding took longer") and "cannot be opened" in str(entries)
    proc = run_tool("check_dataset.py", *opts, "--quarantine", file, check=False)
    assert "quarantine: 0 videos added" in proc.stdout and len(listed_lines(file)) == 2


# ---------------------------------------------------------------------------------------------- a run
def _train_iters(out):
    rows = [json.loads(line) for line in open(os.path.join(out, "json_stats.log"))]
    return [r["epoch"] for r in rows if r.get("_type") == "train_iter"]


@pytest.mark.slow
def test_two_processes_train_through_a_slow_video_and_the_rerun_never_decodes_it(slow_data, tmp_path):
    out = str(tmp_path / "run")
    opts = ["TEST.ENABLE", "False", "TRAIN.EVAL_PERIOD", "0", "DATA_LOADER.NUM_WORKERS", "2"]
    opts += ["DATA.DECODE_TIMEOUT", TIMEOUT]
    proc = run_torchrun("run_net.py", *run_opts(slow_data, out, *opts), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # 13 videos, 4 clips per step: 3 steps per epoch, 2 epochs
    assert _train_iters(out) == ["1/2"] * 3 + ["2/2"] * 3
    assert proc.stdout.count("Abandoned a video that decodes too slowly (train split)") == 1
    assert "Skipping a quarantined video (train split)" in proc.stdout  # the second epoch
    slow = os.path.join(slow_data, SLOW)
    assert listed_lines(os.path.join(out, QUARANTINE_NAME)) == [f"{slow}\tdecoding took longer than {TIMEOUT} s"]

    opts += ["SOLVER.MAX_EPOCH", "3", "TRAIN.RESUME_ALLOW_CHANGED", "['SOLVER.MAX_EPOCH']"]
    proc = run_torchrun("run_net.py", *run_opts(slow_data, out, *opts), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Resuming from" in proc.stdout and _train_iters(out)[6:] == ["3/3"] * 3
    assert "Abandoned" not in proc.stdout + proc.stderr and "decoding took longer" not in proc.stdout
    assert "train split: 1 of its 13 videos are listed in" in proc.stdout
    assert len(listed_lines(os.path.join(out, QUARANTINE_NAME))) == 1
    assert os.path.isfile(os.path.join(out, "checkpoints", "checkpoint_epoch_00003.pyth"))
