"""tools/preflight.py and vtn/launch/preflight/: the measurements, the projections against a real run, the
verdict, the failure exits, --find-batch on the CPU, and the trainer driven through its public methods only."""

import ast
import json
import os
import pathlib

import pytest
import torch

from tests.helpers import run_opts, run_tool
from vtn.launch import preflight

KEYS = [
    "step_time_s",
    "data_wait_s",
    "forward_backward_s",
    "optimizer_s",
    "data_wait_fraction",
    "clips_per_s",
    "clips_per_s_total",
    "loader_clips_per_s",
    "peak_memory_bytes",
    "steps_per_epoch",
    "epoch_time_s",
    "run_time_s",
    "checkpoint_bytes",
    "checkpoint_disk_bytes",
    "free_disk_bytes",
    "allreduce_s",
    "verdict",
]
RUN_FILES = ("checkpoints", "config.yaml", "json_stats.log", "run.lock", "stdout.log")


def preflight_opts(synthetic_dir, out, *extra):
    # batch 2: 6 steps per epoch of the tests' 12 training clips; a log line per epoch, as a real run's period
    return run_opts(synthetic_dir, out, "TRAIN.BATCH_SIZE", 2, "TEST.ENABLE", False, "LOG_PERIOD", 100, *extra)


@pytest.fixture(scope="module")
def measured(synthetic_dir, tmp_path_factory):
    """One preflight of the tiny config (module-wide: the slow part), and its OUTPUT_DIR."""
    out = str(tmp_path_factory.mktemp("preflight") / "run")
    proc = run_tool("preflight.py", *preflight_opts(synthetic_dir, out), "--steps", 10)
    with open(os.path.join(out, preflight.REPORT_FILE)) as f:
        return proc, json.load(f), out


def test_every_key_is_written_with_sane_values(measured):
    proc, result, out = measured
    for key in KEYS:
        assert key in result, key
    assert result["step_time_s"] > 0
    split = result["data_wait_s"] + result["forward_backward_s"] + result["optimizer_s"]
    assert split == pytest.approx(result["step_time_s"], rel=1e-6)
    assert result["optimizer_s"] > 0 and result["forward_backward_s"] > 0
    assert 0 <= result["data_wait_fraction"] <= 1
    assert result["clips_per_s"] == pytest.approx(2 / result["step_time_s"])
    assert result["clips_per_s_total"] == pytest.approx(result["clips_per_s"])  # one process
    assert result["loader_clips_per_s"] > 0
    assert result["peak_memory_bytes"] > 50 * 2**20  # the RSS of a process with torch loaded
    assert result["steps_per_epoch"] == 6
    assert result["epoch_time_s"] == pytest.approx(6 * result["step_time_s"])
    assert result["run_time_s"] > 2 * result["epoch_time_s"]  # 2 epochs plus validation and checkpoints
    assert result["validation_passes"] == 2 and result["validation_time_s"] > 0
    assert result["checkpoint_writes"] == 2 + 2  # the epoch checkpoints and at most one best copy per validation
    assert result["checkpoint_bytes"] > 4 * sum(p.numel() for p in _tiny_params())  # fp32 weights at least
    assert result["checkpoint_disk_bytes"] == result["checkpoint_bytes"] * result["checkpoints_kept"]
    assert result["free_disk_bytes"] > 0
    # measured, not a placeholder: the one-number all-reduce of one process takes time, far less than a step
    assert 0 < result["allreduce_s"] < result["step_time_s"]
    assert result["verdict"].startswith(("data-bound", "compute-bound"))
    assert "step time" in proc.stdout and "verdict" in proc.stdout and "preflight.json" in proc.stdout


def _tiny_params():
    from tests.helpers import tiny_model

    return list(tiny_model("MODEL.NUM_CLASSES", 6).parameters())


def test_nothing_of_a_run_is_left_in_output_dir(measured):
    _, _, out = measured
    assert sorted(os.listdir(out)) == [preflight.REPORT_FILE]


@pytest.mark.slow
def test_the_projections_are_within_2x_of_a_real_run(synthetic_dir, tmp_path):
    # a preflight and the real run back to back, so that both see the same load of the machine (wall times of
    # 0.2 s epochs move several times over when other processes start; the module's preflight ran earlier)
    pre = str(tmp_path / "preflight")
    # batch 1: 12 steps an epoch, so that the epoch's fixed costs (a new loader iterator, the epoch's end) weigh
    # less against the steps that the projection multiplies
    run_tool("preflight.py", *preflight_opts(synthetic_dir, pre, "TRAIN.BATCH_SIZE", 1), "--steps", 10)
    with open(os.path.join(pre, preflight.REPORT_FILE)) as f:
        result = json.load(f)
    out = str(tmp_path / "real")
    run_tool("run_net.py", *preflight_opts(synthetic_dir, out, "TRAIN.BATCH_SIZE", 1))  # the 2 epochs projected
    with open(os.path.join(out, "json_stats.log")) as f:
        epochs = [r["epoch_time"] for r in map(json.loads, f) if r.get("_type") == "train_epoch"]
    # an epoch on average (the first also pays the one-time warm-up, which the projection adds apart)
    mean = sum(epochs) / len(epochs)
    assert result["epoch_time_s"] / 2 <= mean <= result["epoch_time_s"] * 2, (epochs, result)
    assert result["train_time_s"] / 2 <= sum(epochs) <= result["train_time_s"] * 2, (epochs, result)


def test_a_slow_loader_is_data_bound():
    assert preflight.verdict(10.0, 10.0, 100.0).startswith("data-bound: the loader gives 10.0 clips/s")
    assert "DATA_LOADER.NUM_WORKERS" in preflight.verdict(10.0, 10.0, 100.0)
    assert preflight.verdict(10.5, 10.0, 11.0).startswith("data-bound")  # within 10% of the training's pace
    assert preflight.verdict(100.0, 10.0, 11.0).startswith("compute-bound")


def test_the_step_split_adds_up_and_leaves_out_warmup():
    records = [preflight.StepTime(9.0, 8.0, 0.5)] + [preflight.StepTime(1.0, 0.2, 0.1)] * 5
    s = preflight.summarize_steps(records, preflight.warmup_steps(6))
    assert s.step_time_s == 1.0 and s.data_wait_s == 0.2 and s.optimizer_s == pytest.approx(0.1)
    assert s.forward_backward_s == pytest.approx(0.7)
    # a loaded machine: the median data wait reaches the median step; no part of the split vanishes
    crossed = [preflight.StepTime(1.0, 1.0, 0.0)] * 3 + [preflight.StepTime(1.0, 0.2, 0.1)] * 2
    s = preflight.summarize_steps(crossed, 0)
    assert s.step_time_s == 1.0 and s.data_wait_s == pytest.approx(0.68) and s.optimizer_s == pytest.approx(0.04)
    assert s.forward_backward_s == pytest.approx(0.28)


def test_run_counts_follow_the_hooks(synthetic_dir):
    from tests.helpers import tiny_cfg

    cfg = tiny_cfg(
        "SOLVER.MAX_EPOCH", 10, "TRAIN.EVAL_PERIOD", 3, "TRAIN.CHECKPOINT_PERIOD", 4, "TRAIN.CHECKPOINT_ITERS", 5
    )
    assert preflight.validation_passes(cfg, 0) == 4  # epochs 3, 6, 9 and the last
    assert preflight.validation_passes(cfg, 6) == 2
    # epochs 4, 8, 10; 2 inside each of 10 epochs of 12 steps; a best copy per validation
    assert preflight.checkpoint_writes(cfg, 0, 12) == 3 + 20 + 4
    assert preflight.project_inference([3.0, 1.0], 5) == 7.0 and preflight.project_inference([2.0], 0) == 0.0


def test_a_disk_too_small_exits_1_after_writing_the_json(synthetic_dir, tmp_path, monkeypatch):
    class Usage:
        total, used, free = 10**12, 10**12 - 1000, 1000

    monkeypatch.setattr(preflight.projection.shutil, "disk_usage", lambda path: Usage)
    out = str(tmp_path / "run")
    proc = run_tool("preflight.py", *preflight_opts(synthetic_dir, out), "--steps", 2, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and lines[-1].startswith("preflight: error: disk too small")
    with open(os.path.join(out, preflight.REPORT_FILE)) as f:
        assert json.load(f)["free_disk_bytes"] == 1000


def test_cuda_out_of_memory_is_one_line_with_status_1(synthetic_dir, tmp_path, monkeypatch):
    def no_memory(trainer, steps):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(preflight.steps, "measure_steps", no_memory)
    proc = run_tool("preflight.py", *preflight_opts(synthetic_dir, str(tmp_path / "run")), check=False)
    line = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1
    assert line.startswith("preflight: error: out of memory at 2 clips per process: lower TRAIN.BATCH_SIZE")
    assert "VTN.GRAD_CHECKPOINTING" in line


def test_no_data_is_one_line_with_status_2(tmp_path):
    proc = run_tool("preflight.py", *preflight_opts(str(tmp_path / "nothing"), str(tmp_path / "run")), check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("preflight: error:")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_find_batch_on_the_cpu_is_an_estimate_at_least_the_batch(synthetic_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(preflight.batch_search, "mem_available_bytes", lambda meminfo="/proc/meminfo": 64 * 2**30)
    out = str(tmp_path / "run")
    proc = run_tool("preflight.py", *preflight_opts(synthetic_dir, out), "--steps", 2, "--find-batch")
    with open(os.path.join(out, preflight.REPORT_FILE)) as f:
        result = json.load(f)
    assert isinstance(result["max_batch_per_process"], int) and result["max_batch_per_process"] >= 2
    assert result["max_batch_estimated"] is True and "estimate" in proc.stdout


def test_the_cpu_estimate_from_measured_numbers():
    mib = 2**20
    # 10 MiB per clip (100 MiB more at 2b = 20 than at b = 10); 1000 MiB available, 90% of it: 90 more clips
    assert preflight.estimate_max_batch(10, 500 * mib, 600 * mib, 1000 * mib) == 20 + 90
    assert preflight.estimate_max_batch(10, 500 * mib, 500 * mib, 1000 * mib) == preflight.FIND_BATCH_CAP
    assert preflight.estimate_max_batch(10, 500 * mib, 600 * mib, 0) == 20


def test_largest_fitting_doubles_then_bisects():
    tried = []

    def fits(n):
        tried.append(n)
        return n <= 37

    assert preflight.largest_fitting(fits, 4) == 37
    assert tried[:5] == [4, 8, 16, 32, 64]
    assert preflight.largest_fitting(lambda n: n <= 3, 16) == 3  # the configured batch itself does not fit
    assert preflight.largest_fitting(lambda n: False, 8) == 0
    assert preflight.largest_fitting(lambda n: True, 8, cap=100) == 100


def test_repeat_batch_grows_every_per_clip_entry():
    batch = {"frames": torch.arange(2).view(2, 1), "label": torch.tensor([3, 4]), "paths": ["a", "b"], "n": 7}
    grown = preflight.repeat_batch(batch, 5)
    assert grown["label"].tolist() == [3, 4, 3, 4, 3] and grown["frames"].shape == (5, 1)
    assert grown["paths"] == ["a", "b", "a", "b", "a"] and grown["n"] == 7


def test_the_allreduce_of_one_process_is_timed():
    seconds = preflight.timed_allreduce(torch.device("cpu"), 5.0)
    assert isinstance(seconds, float) and 0 < seconds < 1.0


def test_mem_available_reads_meminfo(tmp_path):
    path = tmp_path / "meminfo"
    path.write_text("MemTotal:       100 kB\nMemAvailable:    2048 kB\n")
    assert preflight.mem_available_bytes(str(path)) == 2048 * 1024
    assert preflight.mem_available_bytes(str(tmp_path / "none")) is None


def _rank_that_does_not_answer(rank, init_file, result_file):
    import datetime
    import time

    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=30)
    )
    if rank == 1:
        time.sleep(4)  # never joins the check
        return
    try:
        preflight.timed_allreduce(torch.device("cpu"), 1.0)
        message = "no error"
    except preflight.PreflightFailure as e:
        message = str(e)
    with open(result_file, "w") as f:
        f.write(message)


@pytest.mark.slow
def test_a_rank_that_does_not_answer_is_named(tmp_path):
    import torch.multiprocessing as mp

    result = tmp_path / "result.txt"
    mp.spawn(_rank_that_does_not_answer, args=(str(tmp_path / "init"), str(result)), nprocs=2)
    message = result.read_text()
    assert message.startswith("rank unreachable:") and "1" in message.split("(DIST_TIMEOUT")[0], message
    assert "\n" not in message


PACKAGE = pathlib.Path(preflight.__file__).parent


def private_uses(source: str) -> list[str]:
    """What a module does with another object's private names: `obj._name` read or written for any obj but
    self/cls, and methods named `_name` (a subclass overriding a private method of its base)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name.startswith("_") and not item.name.endswith("__"):
                    found.append(f"line {item.lineno}: {node.name}.{item.name} overrides a private method")
    return found


def test_the_preflight_uses_only_public_names_of_the_trainer():
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) > 5 and not (PACKAGE.parent / "preflight.py").exists()
    uses = {path.name: private_uses(path.read_text()) for path in modules}
    assert all(not found for found in uses.values()), uses
    # the guard sees what the preflight used to do
    old = "trainer._batches = iter([batch])\nclass T(Trainer):\n    def _optimizer_step(self):\n        pass\n"
    assert len(private_uses(old)) == 2


def test_each_module_of_the_preflight_is_small():
    for path in PACKAGE.glob("*.py"):
        source = path.read_text()
        assert source.count("\n") <= 500, path.name
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno + 1 <= 60, f"{path.name}: {node.name}"


def test_a_preflight_step_is_timed_with_the_device_synchronised_and_find_batch_steps_on_the_given_batch(
    synthetic_dir, tmp_path
):
    """The PreflightTrainer asks the trainer for synchronised timings; --find-batch's step trains on the batch it
    is handed (grown to the size tried), with its optimizer step, and leaves nothing for the hooks."""
    from tests.helpers import synthetic_opts, tiny_cfg

    cfg = tiny_cfg(*synthetic_opts(synthetic_dir), "OUTPUT_DIR", str(tmp_path), "TRAIN.EVAL_PERIOD", 0)
    trainer = preflight.PreflightTrainer(preflight.preflight_config(cfg, str(tmp_path / "scratch")))
    assert trainer.synchronize_timings and [type(h).__name__ for h in trainer.hooks] == ["LRScheduler"]
    records = preflight.measure_steps(trainer, 3)
    assert all(r.total > 0 and 0 <= r.data <= r.total for r in records)
    assert all(r.optimizer > 0 for r in records)  # no accumulation: every step takes its optimizer step
    before = [p.detach().clone() for p in trainer.model.parameters()]
    seen = []
    trainer.run_step = lambda batch=None: seen.append(batch)
    template = next(iter(trainer.train_loader))
    preflight.batch_search.one_step(trainer, preflight.repeat_batch(template, 5))
    assert len(seen) == 1 and seen[0]["label"].shape[0] == 5
    del trainer.run_step
    preflight.batch_search.one_step(trainer, preflight.repeat_batch(template, 3))
    assert trainer.step_output is None and trainer.iter == trainer.epoch_iters - 1
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


def test_the_projection_counts_a_shuffle_ablation_inside_its_protocols_passes():
    from tests.helpers import tiny_cfg
    from vtn.launch.preflight.inference import test_pass_protocols

    both = ["multi_view", "full_video"]
    assert test_pass_protocols(tiny_cfg("TEST.PROTOCOLS", both, "TEST.SHUFFLE_ABLATION", True)) == both
    assert test_pass_protocols(tiny_cfg("TEST.PROTOCOLS", ["full_video_shuffled"])) == ["full_video"]


def test_the_data_wait_by_rank_is_in_the_json_and_the_report(measured):
    """The same figures as a training log's, by rank (one rank here); the share is the split's data wait."""
    proc, result, _ = measured
    for key in ("data_wait_p50", "data_wait_p90", "data_wait_max", "data_wait_mean", "data_wait_share"):
        assert isinstance(result[key], list) and len(result[key]) == 1, key
    assert 0 <= result["data_wait_p50"][0] <= result["data_wait_p90"][0] <= result["data_wait_max"][0]
    assert result["data_wait_share"][0] == pytest.approx(result["data_wait_fraction"], abs=1e-5)
    assert result["slowest_rank"] is None
    assert "data wait/step     p50 " in proc.stdout


def test_the_data_wait_leaves_out_warmup_and_the_report_names_the_slowest_rank():
    from types import SimpleNamespace

    from vtn.launch.preflight.report import data_wait_line

    records = [preflight.StepTime(9.0, 8.0, 0.5)] + [preflight.StepTime(1.0, 0.2, 0.1)] * 4
    records.append(preflight.StepTime(2.0, 0.6, 0.1))
    r = preflight.data_wait_result(SimpleNamespace(device=torch.device("cpu")), records, 1)
    assert r["data_wait_p50"] == [0.2] and r["data_wait_max"] == [0.6] and r["data_wait_p90"] == [pytest.approx(0.44)]
    assert r["data_wait_share"] == [pytest.approx(1.4 / 6.0, abs=1e-6)] and r["slowest_rank"] is None
    assert data_wait_line(r) == "  data wait/step     p50 0.2000 s, p90 0.4400 s, max 0.6000 s; 23% of the step time"
    two = {
        "data_wait_p50": [0.01, 0.5],
        "data_wait_p90": [0.02, 0.6],
        "data_wait_max": [0.03, 0.7],
        "data_wait_mean": [0.01, 0.5],
        "data_wait_share": [0.02, 0.5],
        "slowest_rank": 1,
    }
    assert data_wait_line(two) == (
        "  data wait/step     rank 1 waits the most: p50 0.5000 s, p90 0.6000 s, max 0.7000 s; 2%-50% of the step "
        "time over 2 ranks; slowest rank 1 (waits 0.5 s/step, 50.0x the others' median)"
    )
