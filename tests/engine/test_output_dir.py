"""OUTPUT_DIR holds one run, made with one config: the resume and test checks of the checkpoint's config, the
run lock, the disk budget, and partial initialisation from another model's checkpoint."""

import json
import os
import socket
import subprocess
import sys

import pytest
import yaml

from tests.helpers import load_tool, run_opts, tiny_cfg, tiny_model
from vtn.engine.output_dir import (
    EXECUTION_KEYS,
    LOCK_NAME,
    RunLock,
    RunLockedError,
    check_output_dir,
    checkpoints_kept,
    config_differences,
)


def run_net(capsys, *argv):
    """(exit status, stderr) of tools/run_net.py run in-process."""
    try:
        load_tool("tools/run_net.py").main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def test_config_differences_ignore_how_a_run_executes():
    saved = tiny_cfg().dump()
    assert (
        config_differences(
            saved,
            tiny_cfg(
                "LOG_PERIOD",
                3,
                "DATA_LOADER.NUM_WORKERS",
                7,
                "OUTPUT_DIR",
                "x",
                "TEST.NUM_ENSEMBLE_VIEWS",
                4,
                "NUM_GPUS",
                0,
            ),
        )
        == {}
    )
    diffs = config_differences(saved, tiny_cfg("VTN.NUM_LAYERS", 2, "SOLVER.BASE_LR", 0.5))
    assert diffs == {"SOLVER.BASE_LR": (0.001, 0.5), "VTN.NUM_LAYERS": (1, 2)}
    # a key an older version did not write counts as its default
    old = yaml.safe_load(saved)
    del old["VTN"]["DROP_PATH_RATE"]
    assert config_differences(yaml.safe_dump(old), tiny_cfg()) == {}
    assert config_differences(yaml.safe_dump(old), tiny_cfg("VTN.DROP_PATH_RATE", 0.1)) == {
        "VTN.DROP_PATH_RATE": (0.0, 0.1)
    }
    assert "OUTPUT_DIR" in EXECUTION_KEYS and "SOLVER.MAX_EPOCH" not in EXECUTION_KEYS
    # how frames are decoded, never which: a run tests or resumes on the per-view reference path
    assert config_differences(saved, tiny_cfg("DATA.DECODE_VIDEO_ONCE", False)) == {}


@pytest.fixture
def finished_run(synthetic_dir, tmp_path, capsys):
    out = str(tmp_path / "run")
    opts = run_opts(synthetic_dir, out, "SOLVER.MAX_EPOCH", 1, "TEST.ENABLE", False, "TRAIN.EVAL_PERIOD", 0)
    code, err = run_net(capsys, *opts)
    assert code == 0, err
    return out, opts


def test_a_changed_config_never_resumes_a_finished_run_nor_rewrites_its_config(finished_run, capsys):
    out, opts = finished_run
    config = open(os.path.join(out, "config.yaml")).read()
    # an ablation command that forgot its own OUTPUT_DIR
    code, err = run_net(capsys, *opts, "VTN.POS_EMBED", "fixed", "SOLVER.BASE_LR", 0.01)
    assert code == 2 and err.count("\n") == 1
    assert "checkpoint_epoch_00001.pyth was made with another config than this run's" in err
    assert "VTN.POS_EMBED: 'learned' -> 'fixed'" in err and "SOLVER.BASE_LR: 0.05 -> 0.01" in err
    assert "another OUTPUT_DIR" in err and "TRAIN.RESUME_ALLOW_CHANGED \"['SOLVER.BASE_LR', 'VTN.POS_EMBED']\"" in err
    assert open(os.path.join(out, "config.yaml")).read() == config
    # what only changes how the run executes is fine: nothing left to train, and no error
    code, err = run_net(capsys, *opts, "LOG_PERIOD", 5, "DATA_LOADER.NUM_WORKERS", 1)
    assert code == 0, err


def test_accepted_changes_continue_the_run_and_keep_the_previous_config(finished_run, capsys):
    out, opts = finished_run
    code, err = run_net(capsys, *opts, "SOLVER.MAX_EPOCH", 2)
    assert code == 2 and "SOLVER.MAX_EPOCH: 1 -> 2" in err
    code, err = run_net(capsys, *opts, "SOLVER.MAX_EPOCH", 2, "TRAIN.RESUME_ALLOW_CHANGED", "['SOLVER.MAX_EPOCH']")
    assert code == 0, err
    assert os.path.isfile(os.path.join(out, "checkpoints", "checkpoint_epoch_00002.pyth"))
    assert yaml.safe_load(open(os.path.join(out, "config.yaml")))["SOLVER"]["MAX_EPOCH"] == 2
    kept = [f for f in os.listdir(out) if f.startswith("config.") and f != "config.yaml"]
    assert len(kept) == 1 and yaml.safe_load(open(os.path.join(out, kept[0])))["SOLVER"]["MAX_EPOCH"] == 1


def test_testing_the_folders_checkpoint_checks_what_changes_the_model_or_the_test_data(finished_run, capsys):
    out, opts = finished_run
    test_only = [*opts, "TRAIN.ENABLE", False, "TEST.ENABLE", True]
    code, err = run_net(capsys, *test_only, "DATA.MEAN", "[0.5, 0.5, 0.5]")
    assert code == 2 and "DATA.MEAN: [0.45, 0.45, 0.45] -> [0.5, 0.5, 0.5]" in err
    # test keys, and keys that only shape training, may differ; the training config stays as it was
    code, err = run_net(capsys, *test_only, "TEST.NUM_ENSEMBLE_VIEWS", 1, "SOLVER.BASE_LR", 0.3)
    assert code == 0, err
    assert yaml.safe_load(open(os.path.join(out, "config.yaml")))["SOLVER"]["BASE_LR"] == 0.05
    assert yaml.safe_load(open(os.path.join(out, "config_test.yaml")))["SOLVER"]["BASE_LR"] == 0.3
    assert json.load(open(os.path.join(out, "test_results.json")))["views_per_video"] == 3


def test_a_second_run_on_the_same_folder_stops_at_once_naming_the_first(synthetic_dir, tmp_path, capsys):
    out = tmp_path / "busy"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.makedirs(out)
        (out / LOCK_NAME).write_text(
            json.dumps(
                {
                    "pid": other.pid,
                    "host": socket.gethostname(),
                    "started": "2026-12-02T06:00:00",
                    "command": "run_net.py --cfg x",
                }
            )
        )
        code, err = run_net(capsys, *run_opts(synthetic_dir, str(out)))
        assert code == 2 and f"in use by another run (pid {other.pid} on this machine" in err
        assert not os.path.exists(out / "stdout.log")  # nothing written into the other run's folder
    finally:
        other.kill()
        other.wait()
    # the same lock, left by a process that is gone, is taken over
    lock = RunLock(str(out)).acquire()
    assert json.load(open(out / LOCK_NAME))["pid"] == os.getpid()
    with pytest.raises(RunLockedError, match="in use by another run"):
        RunLock(str(out)).acquire()
    lock.release()
    assert not os.path.exists(out / LOCK_NAME)
    (out / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "another-host", "started": "x", "command": "y"}))
    with pytest.raises(RunLockedError, match="on host another-host.*delete"):
        RunLock(str(out)).acquire()


def test_a_lock_of_another_host_is_never_taken_over_whatever_its_pid_is_here(tmp_path):
    """A pid names a process only on its own host: a lock of another host whose pid does not exist on this one is
    still held (its run may be alive there); a lock of this host with a dead pid is taken over."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no process of this host has now
    with pytest.raises(ProcessLookupError):
        os.kill(gone.pid, 0)
    out = tmp_path / "shared"
    os.makedirs(out)
    record = {"pid": gone.pid, "host": socket.gethostname() + "-another", "started": "x", "command": "y"}
    (out / LOCK_NAME).write_text(json.dumps(record))
    with pytest.raises(RunLockedError, match=f"pid {gone.pid} on host {record['host']}"):
        RunLock(str(out)).acquire()
    assert json.load(open(out / LOCK_NAME)) == record  # left as it was
    (out / LOCK_NAME).write_text(json.dumps(dict(record, host=socket.gethostname())))
    lock = RunLock(str(out)).acquire()
    assert lock.held and json.load(open(out / LOCK_NAME))["pid"] == os.getpid()
    lock.release()
    assert not os.path.exists(out / LOCK_NAME)


def test_ctrl_c_is_one_line_that_says_how_to_resume_and_frees_the_folder(synthetic_dir, tmp_path, capsys, monkeypatch):
    from vtn.engine.trainer import Trainer

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train", interrupted)
    out = tmp_path / "run"
    code, err = run_net(capsys, *run_opts(synthetic_dir, str(out)))
    assert code == 130 and err == (
        "run_net: interrupted; run the same command again to continue from the newest checkpoint of OUTPUT_DIR\n"
    )
    assert not os.path.exists(out / LOCK_NAME)


def test_a_disk_that_fills_mid_run_ends_with_one_line_naming_what_was_kept(
    synthetic_dir, tmp_path, capsys, monkeypatch
):
    import errno

    import torch

    from vtn.engine import checkpoint

    real_save, saves = torch.save, []

    def fills_up(obj, f):
        saves.append(1)
        if len(saves) > 3:  # two checkpoints in epoch 1 and the best after its validation fit, the epoch's does not
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f)

    monkeypatch.setattr(checkpoint.torch, "save", fills_up)
    out = tmp_path / "run"
    code, err = run_net(capsys, *run_opts(synthetic_dir, str(out), "TRAIN.CHECKPOINT_ITERS", 1, "TEST.ENABLE", False))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "the disk is full" in err and "MiB free in" in err and "checkpoint_epoch_00001.pyth: the disk is full" in err
    assert "the newest complete checkpoint is" in err and "checkpoint_epoch_00001_iter_0000002.pyth. Free space" in err
    assert not [f for f in os.listdir(out / "checkpoints") if f.startswith(".tmp")]


def test_a_file_size_limit_mid_run_ends_with_one_line_naming_the_file(synthetic_dir, tmp_path, capsys):
    """A real EFBIG (ulimit -f) from torch's zip writer, which reports it as its own RuntimeError."""
    from tests.helpers import file_size_limit

    out = tmp_path / "run"
    with file_size_limit(600_000):  # the logs fit, a checkpoint (weights and optimizer) does not
        code, err = run_net(
            capsys, *run_opts(synthetic_dir, str(out), "TRAIN.CHECKPOINT_ITERS", 1, "TEST.ENABLE", "False")
        )
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err and "enforce fail" not in err
    assert (
        f"cannot write {out / 'checkpoints' / 'checkpoint_epoch_00001_iter_0000001.pyth'}: File too large (EFBIG)"
        in err
    )
    assert "no checkpoint was kept. Fix the cause and run the same command again to continue." in err
    assert not [f for f in os.listdir(out / "checkpoints") if f.startswith(".tmp")]


def test_the_disk_check_budgets_every_checkpoint_the_run_keeps(tmp_path, monkeypatch):
    import shutil

    model = tiny_model()
    cfg = tiny_cfg("OUTPUT_DIR", str(tmp_path), "TRAIN.CHECKPOINT_KEEP", 3, "SOLVER.OPTIMIZING_METHOD", "adamw")
    assert checkpoints_kept(cfg) == 5  # 3 periodic, the best, a temporary copy
    assert checkpoints_kept(tiny_cfg("TRAIN.CHECKPOINT_KEEP", 0, "SOLVER.MAX_EPOCH", 25)) == 27
    weights = sum(p.numel() * 4 for p in model.parameters())
    usage = shutil.disk_usage(str(tmp_path))
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=int(weights * 3 * 4.5)))
    with pytest.raises(Exception, match=r"keeps up to 5 checkpoints .*TRAIN.CHECKPOINT_KEEP"):
        check_output_dir(cfg, model)  # weights + two AdamW moments, five times
    check_output_dir(
        tiny_cfg("OUTPUT_DIR", str(tmp_path), "TRAIN.CHECKPOINT_KEEP", 2, "SOLVER.OPTIMIZING_METHOD", "adamw"), model
    )


def test_initialising_from_another_models_checkpoint_needs_an_explicit_key(tmp_path):
    from vtn.engine.checkpoint import CheckpointError, save_checkpoint
    from vtn.engine.trainer import load_initial_weights

    other = [
        "VTN.BACKBONE",
        "resnet10t",
        "VTN.BACKBONE_KWARGS",
        "{channels: [8, 8, 16, 16], stem_width: 8}",
        "VTN.NUM_HEADS",
        2,
    ]
    path = str(tmp_path / "resnet.pyth")
    save_checkpoint(path, tiny_cfg(*other), tiny_model(*other))
    with pytest.raises(CheckpointError, match=r"fills only \d+ of the model's \d+ tensors.*CHECKPOINT_PARTIAL_LOAD"):
        load_initial_weights(tiny_model(), tiny_cfg("TRAIN.CHECKPOINT_FILE_PATH", path))
    _, report = load_initial_weights(
        tiny_model(), tiny_cfg("TRAIN.CHECKPOINT_FILE_PATH", path, "TRAIN.CHECKPOINT_PARTIAL_LOAD", True)
    )
    assert report["missing"] or report["reinitialised"]
    # fine-tuning with a new head stays allowed: 2 of the tensors re-initialised
    save_checkpoint(path, tiny_cfg(), tiny_model())
    _, report = load_initial_weights(
        tiny_model("MODEL.NUM_CLASSES", 9), tiny_cfg("TRAIN.CHECKPOINT_FILE_PATH", path, "MODEL.NUM_CLASSES", 9)
    )
    assert len(report["reinitialised"]) == 2


def test_after_a_mid_epoch_resume_no_record_is_logged_twice_and_the_summary_says_what_it_covers(
    synthetic_dir, tmp_path, capsys
):
    out = tmp_path / "run"
    opts = run_opts(
        synthetic_dir,
        str(out),
        "SOLVER.MAX_EPOCH",
        1,
        "TEST.ENABLE",
        False,
        "TRAIN.EVAL_PERIOD",
        0,
        "TRAIN.CHECKPOINT_ITERS",
        1,
    )
    assert run_net(capsys, *opts)[0] == 0
    # as if killed after logging iteration 3 of 3 but before its checkpoint: the newest is 2 iterations in
    os.unlink(out / "checkpoints" / "checkpoint_epoch_00001.pyth")
    code, err = run_net(capsys, *opts)
    assert code == 0, err
    records = [json.loads(line) for line in open(out / "json_stats.log")]
    iters = [r["iter"] for r in records if r["_type"] == "train_iter"]
    assert iters == ["1/3", "2/3", "3/3"]
    epochs = [r for r in records if r["_type"] == "train_epoch"]
    assert len(epochs) == 1 and epochs[0]["iters"] == "3-3 (resumed mid-epoch)"
    assert "iters 3-3 (resumed mid-epoch)" in open(out / "stdout.log").read()
