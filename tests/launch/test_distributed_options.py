"""DIST_TIMEOUT reaches the process group and turns a hang into a one-line error; CUDNN_BENCHMARK and
DETERMINISTIC set torch's flags (and cuBLAS's workspace variable) in every process, before CUDA starts."""

import datetime
import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp

from tests.helpers import run_opts, run_tool, tiny_cfg
from vtn.engine import distributed as du
from vtn.engine.reproducibility import CUBLAS_WORKSPACE, apply_reproducibility
from vtn.launch import processes
from vtn.utils.errors import ConfigError

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@pytest.fixture
def torch_flags(monkeypatch):
    """Restore torch's algorithm flags and the cuBLAS variable after the test."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]


def _flags():
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )


# ---------------------------------------------------------------------------- DIST_TIMEOUT


def test_dist_timeout_reaches_init_process_group_under_torchrun(monkeypatch):
    calls = []
    monkeypatch.setattr(du.dist, "init_process_group", lambda **kw: calls.append(kw))
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ran = []
    processes.launch_job(tiny_cfg("DIST_TIMEOUT", 42), ran.append)
    assert len(ran) == 1
    assert calls == [
        dict(backend="gloo", init_method="env://", world_size=2, rank=1, timeout=datetime.timedelta(seconds=42))
    ]


def test_each_torchrun_restart_gets_a_store_of_its_own(monkeypatch):
    """torchrun's agent keeps one store for all its attempts: the group of attempt N must not find the addresses
    of attempt N-1's (dead) processes there, so its keys get a prefix of their own."""
    agent_store = du.dist.HashStore()
    calls = []
    monkeypatch.setattr(du.dist, "rendezvous", lambda url, rank, world, timeout: iter([(agent_store, rank, world)]))
    monkeypatch.setattr(du.dist, "init_process_group", lambda **kw: calls.append(kw))
    for name, value in dict(RANK="0", WORLD_SIZE="2", LOCAL_RANK="0", TORCHELASTIC_RESTART_COUNT="1").items():
        monkeypatch.setenv(name, value)
    processes.launch_job(tiny_cfg("DIST_TIMEOUT", 30), lambda c: None)
    (kw,) = calls
    assert "init_method" not in kw and kw["timeout"] == datetime.timedelta(seconds=30)
    kw["store"].set("rank_1_address", "127.0.0.1:5555")
    assert agent_store.get("vtn_attempt_1/rank_1_address") == b"127.0.0.1:5555"


def test_the_default_timeout_is_torchs_and_reaches_tcp_groups(monkeypatch):
    calls = []
    monkeypatch.setattr(du.dist, "init_process_group", lambda **kw: calls.append(kw))
    processes._init_group(tiny_cfg(), "tcp://10.0.0.1:9999", 3, 4, 0)
    assert calls[0]["timeout"] == datetime.timedelta(seconds=1800) and calls[0]["init_method"] == "tcp://10.0.0.1:9999"


@pytest.mark.parametrize("value", [0, -5])
def test_dist_timeout_must_be_positive(value):
    with pytest.raises(ConfigError, match=r"DIST_TIMEOUT = -?\d+ is not allowed: expected a whole number of seconds"):
        tiny_cfg("DIST_TIMEOUT", value)


def test_a_rendezvous_timeout_is_a_one_line_error_naming_the_address(monkeypatch):
    def never_joins(**kw):
        raise RuntimeError("Timed out after 5 seconds waiting for clients. 1/2 clients joined.")

    monkeypatch.setattr(du.dist, "init_process_group", never_joins)
    with pytest.raises(du.DistTimeoutError) as e:
        processes._init_group(tiny_cfg("DIST_TIMEOUT", 5), "tcp://10.0.0.1:9999", 0, 2, 0)
    message = str(e.value)
    assert "Joining the process group at tcp://10.0.0.1:9999 timed out (DIST_TIMEOUT = 5 s) on rank 0 of 2" in message
    assert "Troubleshooting distributed runs" in message and "\n" not in message
    assert message.endswith("The backend said: Timed out after 5 seconds waiting for clients. 1/2 clients joined.")


def test_other_errors_of_a_collective_are_not_relabelled():
    with pytest.raises(ValueError, match="a bug"), du._collective("barrier"):
        raise ValueError("a bug")
    with pytest.raises(RuntimeError, match="shape mismatch") as e, du._collective("all_reduce"):
        raise RuntimeError("shape mismatch")
    assert not isinstance(e.value, du.DistTimeoutError)


def test_only_a_backends_timeout_in_the_job_is_reported_as_a_collectives(monkeypatch):
    monkeypatch.setattr(du, "is_initialized", lambda: True)  # as inside a group (destroying it is left out)
    monkeypatch.setattr(du.dist, "destroy_process_group", lambda: None)
    monkeypatch.setattr(du, "get_rank", lambda: 1)
    monkeypatch.setattr(du, "get_world_size", lambda: 2)

    def raising(error):
        def job(cfg):
            raise error

        return job

    with pytest.raises(du.DistTimeoutError, match=r"A collective .* timed out .*on rank 1 of 2"):
        processes._run_in_group(
            raising(RuntimeError("[gloo/transport/tcp/pair.cc:545] Timed out waiting 2000ms")), None
        )
    with pytest.raises(du.DistTimeoutError):
        processes._run_in_group(raising(du.dist.DistBackendError("NCCL watchdog: collective operation timeout")), None)
    loader = RuntimeError("DataLoader timed out after 30 seconds")  # not a collective: left as it is
    with pytest.raises(RuntimeError) as e:
        processes._run_in_group(raising(loader), None)
    assert e.value is loader


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _absent_rank_worker(rank: int, port: int, out: str) -> None:
    """Rank 1 joins the group but never the barrier (it waits for rank 0 to finish); rank 0 records its errors."""
    torch.set_num_threads(1)
    cfg = tiny_cfg("DIST_TIMEOUT", 2)
    processes._init_group(cfg, f"tcp://127.0.0.1:{port}", rank, 2, rank)
    done = os.path.join(out, "done")
    if rank == 1:
        deadline = time.time() + 60
        while not os.path.exists(done) and time.time() < deadline:
            time.sleep(0.05)
        os._exit(0)  # gone without a goodbye, as a crashed rank would be
    lines = []
    start = time.time()
    try:
        du.barrier()
        lines.append("barrier returned")
    except du.DistTimeoutError as e:
        lines.append(f"{time.time() - start:.2f}\t{e}")
    try:  # a collective outside the helpers (DDP's gradient all-reduce) inside the job's function
        processes._run_in_group(lambda c: du.dist.all_reduce(torch.ones(1)), cfg)
        lines.append("all_reduce returned")
    except du.DistTimeoutError as e:
        lines.append(f"-\t{e}")
    with open(os.path.join(out, "rank0.txt"), "w") as f:
        f.write("\n".join(lines))
    open(done, "w").close()


def test_a_rank_that_never_joins_a_barrier_fails_after_dist_timeout(tmp_path):
    mp.spawn(_absent_rank_worker, args=(_free_port(), str(tmp_path)), nprocs=2)
    barrier, other = (tmp_path / "rank0.txt").read_text().splitlines()
    waited, message = barrier.split("\t")
    assert 1.5 <= float(waited) < 15, waited  # DIST_TIMEOUT 2: it waited about that long, not 30 minutes
    assert message.startswith("The collective barrier timed out (DIST_TIMEOUT = 2 s) on rank 0 of 2:"), message
    assert 'see "Troubleshooting distributed runs" in INSTALL.md' in message
    assert "A collective (e.g. DDP's gradient all-reduce) timed out" in other
    assert "Troubleshooting distributed runs" in other


# ---------------------------------------------------------------------------- CUDNN_BENCHMARK, DETERMINISTIC


def test_deterministic_sets_torch_cudnn_and_cublas(torch_flags):
    apply_reproducibility(tiny_cfg("DETERMINISTIC", True))
    assert _flags() == (True, True, False)
    assert not torch.is_deterministic_algorithms_warn_only_enabled()  # a non-deterministic op is an error
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE == ":4096:8"
    apply_reproducibility(tiny_cfg())  # the defaults: a later run in the same interpreter starts clean
    assert _flags() == (False, False, False)


def test_a_users_cublas_setting_is_kept(torch_flags, monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    apply_reproducibility(tiny_cfg("DETERMINISTIC", True))
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_cudnn_benchmark_alone(torch_flags):
    apply_reproducibility(tiny_cfg("CUDNN_BENCHMARK", True))
    assert _flags() == (False, False, True)
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ


def test_benchmark_and_deterministic_together_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        tiny_cfg("DETERMINISTIC", True, "CUDNN_BENCHMARK", True)
    message = str(e.value)
    assert "DETERMINISTIC = True" in message and "CUDNN_BENCHMARK" in message and "\n" not in message


def test_launch_job_sets_the_variable_before_it_spawns_workers(torch_flags, monkeypatch):
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(processes, "check_gpus", lambda cfg, per_process=False: None)  # no GPUs here
    seen = {}

    def fake_spawn(fn, nprocs, args, daemon):
        seen.update(nprocs=nprocs, cublas=os.environ.get("CUBLAS_WORKSPACE_CONFIG"))

    monkeypatch.setattr(torch.multiprocessing, "spawn", fake_spawn)
    cfg = tiny_cfg("NUM_GPUS", 2, "DETERMINISTIC", True, "TRAIN.BATCH_SIZE", 2, "TEST.BATCH_SIZE", 2)
    processes.launch_job(cfg, lambda c: None)
    assert seen == dict(nprocs=2, cublas=":4096:8")  # spawned workers inherit the environment


def test_a_spawned_worker_applies_the_switches_in_its_own_process(torch_flags, monkeypatch):
    monkeypatch.setattr(processes, "_init_group", lambda *a: None)
    seen = []
    cfg = tiny_cfg("NUM_GPUS", 2, "DETERMINISTIC", True, "TRAIN.BATCH_SIZE", 2, "TEST.BATCH_SIZE", 2)
    processes._spawned_worker(1, lambda c: seen.append(_flags()), cfg, "tcp://127.0.0.1:1")
    assert seen == [(True, True, False)]


def test_a_deterministic_run_trains_on_the_cpu(synthetic_dir, tmp_path, torch_flags):
    out = str(tmp_path / "run")
    opts = ["DETERMINISTIC", "True", "SOLVER.MAX_EPOCH", "1", "TEST.ENABLE", "False", "TRAIN.EVAL_PERIOD", "0"]
    run_tool("run_net.py", *run_opts(synthetic_dir, out, *opts))
    assert _flags() == (True, True, False)  # what the run used (the fixture restores them)
    assert os.path.isfile(os.path.join(out, "checkpoints", "checkpoint_epoch_00001.pyth"))
