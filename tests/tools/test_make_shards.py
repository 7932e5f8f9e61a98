"""tools/make_shards.py, run in-process on the tests' synthetic dataset: the summary and exit status with an
unreadable video, the same bytes with 1 or 2 workers, a rerun with another seed, and bad options."""

import json
import os
import shutil

from tests.datasets.bad_files import make_bad_files
from tests.helpers import run_tool, synthetic_opts
from vtn.datasets.shard_index import INDEX_NAME


def opts(data_dir):
    return [json.dumps(o) if isinstance(o, list) else str(o) for o in synthetic_opts(data_dir)]


def files_of(folder) -> dict:
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


def test_an_unreadable_video_is_listed_and_the_tool_exits_1(synthetic_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    good = os.path.join(data, open(data / "val.csv").readline().split()[0])
    bad = make_bad_files(str(data / "bad"), good)
    with open(data / "val.csv", "a") as f:
        f.write(f"{bad['not_a_video']} triangle\n{bad['missing']} stripes\n")
    out = tmp_path / "shards" / "val"
    args = ["--split", "val", "--output", out, "--shard-size-mb", 0.03]
    proc = run_tool("make_shards.py", *opts(str(data)), *args, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "6 samples of 8 listed, 1 unreadable (left out), 1 missing" in proc.stdout
    assert "  unreadable: bad/notes.mp4: " in proc.stdout
    assert "make_shards: [val] shards 1/" in proc.stderr and "ETA" in proc.stderr  # the progress line
    index = json.loads(open(out / INDEX_NAME).read())
    assert index["unreadable"] == ["bad/notes.mp4"] and index["missing"] == ["bad/missing.mp4"]


def test_two_workers_write_the_same_bytes_as_one(synthetic_dir, tmp_path):
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        args = ["--split", "train", "--output", out, "--shard-size-mb", 0.03, "--workers", workers, "--seed", 3]
        proc = run_tool("make_shards.py", *opts(synthetic_dir), *args)
        assert "[train] 6 shards written, 0 skipped" in proc.stdout and f"{min(workers, 6)} worker(s)" in proc.stderr
        outputs.append(files_of(out))
    assert outputs[0] == outputs[1] and len(outputs[0]) == 13  # 6 shards, 6 sidecars, the index


def test_a_rerun_with_another_seed_is_one_line_error_and_a_rerun_skips_everything(synthetic_dir, tmp_path):
    out = tmp_path / "test"
    args = [*opts(synthetic_dir), "--split", "test", "--output", out, "--shard-size-mb", 0.03, "--workers", 1]
    run_tool("make_shards.py", *args)
    before = {n: os.stat(out / n).st_mtime_ns for n in os.listdir(out) if n != INDEX_NAME}
    again = run_tool("make_shards.py", *args)
    assert "0 shards written, 3 skipped (finished before)" in again.stdout
    proc = run_tool("make_shards.py", *args, "--seed", 1, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"make_shards: error: {out} holds shards of another")
    assert {n: os.stat(out / n).st_mtime_ns for n in os.listdir(out) if n != INDEX_NAME} == before


def test_bad_options_are_usage_errors(synthetic_dir, tmp_path):
    base = [*opts(synthetic_dir), "--output", tmp_path / "x"]
    for extra, message in (
        (["--split", "train", "--shard-size-mb", 0], "--shard-size-mb must be above 0"),
        (["--split", "train", "--workers", 0], "--workers must be at least 1"),
        (["--split", "dev"], "invalid choice: 'dev'"),
    ):
        proc = run_tool("make_shards.py", *base, *extra, check=False)
        assert proc.returncode == 2 and message in proc.stderr
    assert not os.path.exists(tmp_path / "x")
