"""Start-up checks of tools/run_net.py: what a new user runs first fails with one line, in the right order."""

import os

import pytest
import torch

from tests.helpers import REPO, load_tool, tiny_cfg
from vtn.engine.distributed import DeviceError, check_gpus


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
