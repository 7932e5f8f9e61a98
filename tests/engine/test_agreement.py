"""Ranks that agree: every rank's code, packages, config and data are compared at start-up; a rank with another
config is refused with one line that names the rank and the key, before any step."""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO, run_opts, synthetic_opts, tiny_cfg
from vtn.datasets import build_dataset
from vtn.engine.agreement import (
    PER_RANK_KEYS,
    config_hash,
    differences,
    flat_config,
    git_commit,
    package_version,
    rank_list,
    rank_report,
    software,
)
from vtn.engine.checkpoint import list_checkpoints


def test_software_names_the_running_versions_and_the_commit():
    import av
    import timm
    import transformers

    import vtn

    found = software()
    assert found["vtn"] == vtn.__version__
    assert found["torch"] == torch.__version__ and found["timm"] == timm.__version__
    assert found["transformers"] == transformers.__version__ and found["av"] == av.__version__
    assert package_version("no-such-package-vtn-test") == "not installed"
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True)
    expected = head.stdout.strip() if head.returncode == 0 and os.path.exists(os.path.join(REPO, ".git")) else None
    assert found["git commit"] == expected == git_commit()


def test_the_config_hash_follows_every_key_but_the_per_rank_ones():
    base = flat_config(tiny_cfg())
    assert base["SOLVER.BASE_LR"] == tiny_cfg().SOLVER.BASE_LR and "VTN.BACKBONE_KWARGS.depth" in base
    assert not set(PER_RANK_KEYS) & set(base)

    def hashed(*opts):
        return config_hash(flat_config(tiny_cfg("NUM_SHARDS", 2, "NUM_GPUS", 1, *opts)))

    assert hashed("SHARD_ID", 1, "DATA.PATH_TO_DATA_DIR", "/elsewhere") == hashed()
    assert hashed("SOLVER.BASE_LR", 0.123) != hashed()
    assert hashed("OUTPUT_DIR", "/other") != hashed()


def report(lr=0.05, torch_version="2.0", dataset="train split aaaa"):
    flat = {"SOLVER.BASE_LR": lr, "TRAIN.BATCH_SIZE": 4}
    sw = {"vtn": "0.1.0", "git commit": None, "torch": torch_version, "timm": "1", "transformers": "4", "av": "12"}
    return {"software": sw, "config_hash": config_hash(flat), "config": flat, "dataset": dataset}


def test_differences_name_the_ranks_and_what_differs():
    assert differences([report(), report(), report()]) == []
    found = differences([report(), report(lr=0.1)])
    assert len(found) == 1
    assert found[0].startswith("rank 1 has config hash ") and found[0].endswith("(SOLVER.BASE_LR 0.1 vs 0.05)")
    found = differences([report(), report(torch_version="2.1"), report(torch_version="2.1"), report(), report("x")])
    assert "ranks 1-2 have torch 2.1 vs 2.0 on rank 0" in found
    assert any(f.startswith("rank 4 has config hash") and "SOLVER.BASE_LR x vs 0.05" in f for f in found)
    assert differences([report(), report(dataset="train split bbbb")]) == [
        "rank 1 has dataset train split bbbb vs train split aaaa on rank 0"
    ]
    assert rank_list([1, 2, 3, 5, 7, 8]) == "ranks 1-3, 5, 7-8" and rank_list([4]) == "rank 4"


def test_the_dataset_fingerprint_follows_videos_labels_and_order_not_the_folder(synthetic_dir, tmp_path):
    cfg = tiny_cfg(*synthetic_opts(synthetic_dir))
    dataset = build_dataset(cfg, "train")
    copy = str(tmp_path / "copy")
    shutil.copytree(synthetic_dir, copy)
    moved = build_dataset(tiny_cfg(*synthetic_opts(copy)), "train")
    assert moved.fingerprint() == dataset.fingerprint()
    assert rank_report(cfg, dataset)["dataset"] == f"train split {dataset.fingerprint()}"
    fingerprint = dataset.fingerprint()
    dataset.labels[0] = (dataset.labels[0] + 1) % 6
    assert dataset.fingerprint() != fingerprint
    dataset.labels[0] = (dataset.labels[0] - 1) % 6
    dataset.paths[0], dataset.paths[1] = dataset.paths[1], dataset.paths[0]
    assert dataset.fingerprint() != fingerprint


def start_rank(rank, port, opts, out_log):
    env = dict(
        os.environ,
        PYTHONPATH=REPO,
        OMP_NUM_THREADS="1",
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    cmd = [sys.executable, os.path.join(REPO, "tools", "run_net.py"), *opts]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_rank_with_another_config_is_refused_before_any_step(synthetic_dir, tmp_path):
    out = str(tmp_path / "run")
    common = ["TEST.ENABLE", "False", "TRAIN.EVAL_PERIOD", "0", "TRAIN.CHECKPOINT_ITERS", "1", "DIST_TIMEOUT", "120"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [
        start_rank(0, port, run_opts(synthetic_dir, out, *common), out),
        start_rank(1, port, run_opts(synthetic_dir, out, *common, "SOLVER.BASE_LR", "0.1"), out),
    ]
    results = []
    try:
        for proc in procs:
            results.append(proc.communicate(timeout=240))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for proc, (stdout, stderr) in zip(procs, results):
        assert proc.returncode == 2, stdout[-2000:] + stderr[-2000:]
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1, stderr[-3000:]
        assert lines[0].startswith("run_net: error: ranks disagree: rank 1 has config hash "), lines[0]
        assert "(SOLVER.BASE_LR 0.1 vs 0.05)" in lines[0]
        assert "train_iter" not in stdout
    assert list_checkpoints(out) == []
    stats = os.path.join(out, "json_stats.log")
    assert not os.path.exists(stats) or not any(json.loads(x).get("_type") == "train_iter" for x in open(stats))
