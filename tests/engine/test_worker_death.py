"""A loader worker that dies (SIGKILL from the out-of-memory killer, a codec's SIGSEGV) ends the run with one line
that names the worker (id and pid), the signal, the last video it was given and the fix, and the same command
resumes from the last checkpoint."""

import glob
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO, run_opts, run_tool, synthetic_opts, tiny_cfg
from vtn.datasets import build_loader
from vtn.engine.checkpoint import checkpoint_dir, list_checkpoints
from vtn.engine.worker_watch import parse_death, signal_name, worker_died
from vtn.video.deadline import HUNG_EXIT_CODE

OPTS = [
    "SOLVER.MAX_EPOCH",
    "2",
    "TRAIN.CHECKPOINT_ITERS",
    "1",
    "TRAIN.CHECKPOINT_KEEP",
    "0",
    "TEST.ENABLE",
    "False",
    "TRAIN.EVAL_PERIOD",
    "0",
    "DATA_LOADER.NUM_WORKERS",
    "2",
]


def children(pid):
    found = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            found += [int(x) for x in open(path).read().split()]
        except OSError:
            pass
    return found


def cmdline(pid):
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return None


def loader_workers(pid):
    """The forked children of `pid` (same command line): its DataLoader workers."""
    return [child for child in children(pid) if cmdline(child) == cmdline(pid)]


def listed_videos(data_dir, split):
    with open(os.path.join(data_dir, f"{split}.csv")) as f:
        return {os.path.join(data_dir, line.split()[0]) for line in f if line.strip()}


def test_torchs_messages_are_read_with_the_signal_named():
    killed = RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed. ")
    assert parse_death(killed) == (4242, "was killed by SIGKILL")
    segv = RuntimeError(f"DataLoader worker (pid 7) is killed by signal: {signal.strsignal(signal.SIGSEGV)}. ")
    assert parse_death(segv) == (7, "was killed by SIGSEGV")
    code = RuntimeError("DataLoader worker (pid 8) exited unexpectedly with exit code 3. Details are lost ...")
    assert parse_death(code) == (8, "exited with status 3")
    exited = RuntimeError("DataLoader worker (pid(s) 9, 10) exited unexpectedly")
    assert parse_death(exited) == (9, "exited unexpectedly")
    exited.__cause__ = killed  # the loader's check, raised from the SIGCHLD handler's error: the signal wins
    assert parse_death(exited) == (4242, "was killed by SIGKILL")
    assert parse_death(RuntimeError("CUDA out of memory")) is None
    assert signal_name("Bus error") == "SIGBUS"
    cfg = tiny_cfg()
    assert worker_died(RuntimeError("something else"), cfg) is None
    line = str(worker_died(killed, cfg))  # a pid of no loader: still one line with the signal and the advice
    assert "pid 4242" in line and "SIGKILL (out of memory?)" in line and "DATA_LOADER.NUM_WORKERS" in line
    line = str(worker_died(segv, cfg))
    assert "SIGSEGV (a crash in native code" in line and "tools/check_dataset.py" in line
    hung = RuntimeError(f"DataLoader worker (pid 8) exited unexpectedly with exit code {HUNG_EXIT_CODE}. Details ...")
    line = str(worker_died(hung, tiny_cfg("OUTPUT_DIR", "/runs/a")))
    assert "DATA.DECODE_TIMEOUT watchdog" in line and "listed in /runs/a/quarantine.txt" in line
    assert "DATA_LOADER.NUM_WORKERS" not in line


def test_a_killed_test_loader_worker_is_named_with_its_video(synthetic_dir):
    """In this process: a worker of a multi-view test loader killed mid-pass; the error names it, the test split and
    one of the test videos (a sampler key is a view: key // views is the video)."""
    cfg = tiny_cfg(*synthetic_opts(synthetic_dir), "DATA_LOADER.NUM_WORKERS", 2, "TEST.BATCH_SIZE", 2)
    loader = build_loader(cfg, "test")
    assert loader.dataset.num_views > 1
    batches = iter(loader)
    next(batches)
    table = loader.dataset.worker_slots.table
    deadline = time.time() + 30
    while time.time() < deadline and not bool((table >= 0).all()):  # worker 1 has started on its first batch
        time.sleep(0.01)
    pids = [pid for pid, _ in table.tolist()]
    assert all(pid > 0 for pid in pids) and pids[0] != pids[1]
    with pytest.raises(RuntimeError) as caught:  # torch's SIGCHLD handler raises in this thread
        os.kill(pids[1], signal.SIGKILL)
        for _ in range(200):
            time.sleep(0.05)
    line = str(worker_died(caught.value, cfg))
    assert f"loader worker 1 (pid {pids[1]}) of the test split was killed by SIGKILL" in line, line
    video = re.search(r"its last video was (\S+)\. ", line).group(1)
    assert video in listed_videos(synthetic_dir, "test")
    assert "DATA.DECODE_VIDEO_ONCE False" in line and "run the same command again" in line
    # a batch the dying worker shared cannot be received: the dead worker is found by its exit status
    reset = worker_died(ConnectionResetError(104, "Connection reset by peer"), cfg)
    assert str(reset) == line
    assert worker_died(RuntimeError("DataLoader worker (pid(s) 1) exited unexpectedly"), cfg) is not None
    del batches


@pytest.mark.slow
def test_a_killed_training_worker_is_one_line_and_the_same_command_resumes(synthetic_dir, tmp_path):
    out = str(tmp_path / "run")
    cmd = [sys.executable, os.path.join(REPO, "tools", "run_net.py"), *run_opts(synthetic_dir, out, *OPTS)]
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, workers = time.time() + 180, []
        while time.time() < deadline and proc.poll() is None:
            workers = loader_workers(proc.pid)
            if list_checkpoints(out) and len(workers) == 2:
                break
            time.sleep(0.02)
        if proc.poll() is not None or len(workers) != 2:
            raise AssertionError(f"the run ended before a worker could be killed:\n{proc.communicate()[1][-3000:]}")
        victim = workers[1]
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("run_net: error: loader worker "), err[-3000:]
    line = lines[0]
    assert re.search(rf"loader worker [01] \(pid {victim}\) of the train split was killed by SIGKILL", line), line
    assert "(out of memory?)" in line and "fewer DATA_LOADER.NUM_WORKERS (now 2)" in line
    assert re.search(r"its last video was (\S+)\. ", line).group(1) in listed_videos(synthetic_dir, "train")
    resume_from = re.search(r"resumes from the last checkpoint, (\S+\.pyth)", line).group(1)
    assert os.path.dirname(resume_from) == checkpoint_dir(out)

    rerun = run_tool("run_net.py", *cmd[2:])
    assert "Resuming from" in rerun.stdout
    assert os.path.isfile(os.path.join(checkpoint_dir(out), "checkpoint_epoch_00002.pyth"))
