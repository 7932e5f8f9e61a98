"""Start-up checks of tools/run_net.py: what a new user runs first fails with one line, in the right order."""

import os

import pytest
import torch

from tests.helpers import REPO, load_tool, tiny_cfg
from vtn.launch.processes import DeviceError, check_gpus


def run_net_main(*argv):
    return load_tool("tools/run_net.py").main([str(a) for a in argv])


def test_more_gpus_than_the_machine_has_is_one_line_with_the_override(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(
        DeviceError,
        match=r"NUM_GPUS = 8 but this machine has 0 visible CUDA GPUs: add the override "
        r"NUM_GPUS 0 to run on the CPU",
    ):
        check_gpus(tiny_cfg("NUM_GPUS", 8, "TRAIN.BATCH_SIZE", 8, "TEST.BATCH_SIZE", 8))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(DeviceError, match=r"has 2 visible CUDA GPUs: add the override NUM_GPUS 2 \(or 0"):
        check_gpus(tiny_cfg("NUM_GPUS", 8, "TRAIN.BATCH_SIZE", 8, "TEST.BATCH_SIZE", 8))
    check_gpus(tiny_cfg("NUM_GPUS", 2))  # what the machine has is fine
    check_gpus(tiny_cfg("NUM_GPUS", 1), per_process=True)


def test_the_documented_kinetics_command_on_a_cpu_machine_stops_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as e:  # the config sets NUM_GPUS 8
        run_net_main("--cfg", "configs/Kinetics/VIT_B_VTN.yaml", "OUTPUT_DIR", tmp_path / "out")
    message = capsys.readouterr().err
    assert e.value.code == 2 and message.startswith("run_net: error: NUM_GPUS = 8 but this machine has 0")
    assert message.count("\n") == 1 and "Traceback" not in message
    assert not os.path.exists(tmp_path / "out")  # stopped before any process or file


def test_a_missing_dataset_is_reported_before_any_weight_download(tmp_path, monkeypatch, capsys):
    import timm

    def no_download(*args, **kwargs):
        raise AssertionError("the backbone was built before the data was checked")

    monkeypatch.setattr(timm, "create_model", no_download)
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as e:
        run_net_main(
            "--cfg",
            "configs/Kinetics/VIT_B_VTN.yaml",
            "NUM_GPUS",
            0,
            "OUTPUT_DIR",
            tmp_path / "out",
            "DATA.PATH_TO_DATA_DIR",
            tmp_path / "k400",
        )
    assert e.value.code == 2 and "train.csv does not exist" in capsys.readouterr().err


def test_a_bad_test_csv_line_stops_the_run_before_training(synthetic_dir, tmp_path, monkeypatch, capsys):
    import shutil

    from tests.helpers import TINY_MODEL_OPTS, synthetic_opts
    from vtn.engine import trainer

    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    with open(data / "test.csv", "a") as f:
        f.write("videos/test/no_label_here.mp4\n")
    monkeypatch.setattr(trainer.Trainer, "__init__", lambda *a: pytest.fail("training started"))
    with pytest.raises(SystemExit) as e:
        run_net_main(*TINY_MODEL_OPTS, *synthetic_opts(str(data)), "OUTPUT_DIR", tmp_path / "out")
    assert e.value.code == 2 and "test.csv, line 7" in capsys.readouterr().err


def test_the_weight_files_a_config_names_are_checked_at_start_up(tmp_path):
    from vtn.engine.checkpoint import CheckpointError, checkpoint_dir, checkpoint_name
    from vtn.launch.run import check_named_files

    missing = str(tmp_path / "k400.pyth")
    out = str(tmp_path / "out")
    with pytest.raises(CheckpointError) as e:
        check_named_files(tiny_cfg("OUTPUT_DIR", out, "TRAIN.CHECKPOINT_FILE_PATH", missing))
    assert str(e.value) == (
        f"TRAIN.CHECKPOINT_FILE_PATH {missing} does not exist; name the checkpoint to start from, or "
        'TRAIN.CHECKPOINT_FILE_PATH "" to start without one'
    )
    with pytest.raises(CheckpointError, match=r"^TEST.CHECKPOINT_FILE_PATH .*k400.pyth does not exist$"):
        check_named_files(tiny_cfg("OUTPUT_DIR", out, "TRAIN.ENABLE", False, "TEST.CHECKPOINT_FILE_PATH", missing))
    with pytest.raises(CheckpointError, match=r"^VTN.PRETRAINED_PATH .*k400.pyth does not exist$"):
        check_named_files(tiny_cfg("OUTPUT_DIR", out, "VTN.PRETRAINED_PATH", missing))
    check_named_files(tiny_cfg("OUTPUT_DIR", out, "TRAIN.ENABLE", False, "TRAIN.CHECKPOINT_FILE_PATH", missing))
    # a run that resumes from its own checkpoints no longer reads TRAIN.CHECKPOINT_FILE_PATH
    os.makedirs(checkpoint_dir(out))
    open(os.path.join(checkpoint_dir(out), checkpoint_name(1)), "wb").close()
    check_named_files(tiny_cfg("OUTPUT_DIR", out, "TRAIN.CHECKPOINT_FILE_PATH", missing))


def test_run_net_without_a_config_says_to_give_one(capsys):
    with pytest.raises(SystemExit) as e:
        run_net_main()
    assert e.value.code == 2 and "give a config: --cfg FILE, e.g. --cfg configs/Synthetic/VTN_TINY.yaml" in (
        capsys.readouterr().err
    )


def test_the_command_line_of_the_tools_imports_no_torch():
    """--help and config errors come at once: building a tool's parser and reading a config import no torch."""
    import subprocess
    import sys

    tools = ["run_net", "demo_net", "predict", "export_model", "extract_features", "model_info", "check_dataset"]
    tools += ["submit", "convert_checkpoint", "visualize_attention", "plot_curves", "make_synthetic_dataset"]
    code = (
        "import sys; from tests.helpers import load_tool; from vtn.launch.cli import parse\n"
        f"for name in {tools!r}:\n"
        "    load_tool(f'tools/{name}.py').build_parser()\n"
        "from vtn.config import load_config; load_config('configs/Kinetics/VIT_B_VTN.yaml', validate=False)\n"
        "print(sorted(m for m in ('torch', 'timm', 'transformers', 'av') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_torchrun_world_the_batches_cannot_split_over_stops_before_any_process_group(monkeypatch):
    from vtn.config import ConfigError
    from vtn.launch.processes import launch_job

    for key, value in (("RANK", "0"), ("WORLD_SIZE", "3"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(key, value)  # what torchrun --nproc_per_node 3 sets
    ran = []
    with pytest.raises(ConfigError, match=r"TRAIN.BATCH_SIZE = 4 is not allowed: .* number of processes .* = 3\)"):
        launch_job(tiny_cfg("TRAIN.BATCH_SIZE", 4, "TEST.BATCH_SIZE", 6), ran.append)
    assert not ran and not torch.distributed.is_initialized()
