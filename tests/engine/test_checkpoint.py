import os
import random

import numpy as np
import pytest
import torch

from tests.helpers import tiny_cfg, tiny_model
from vtn.config import load_config
from vtn.engine import checkpoint as ck
from vtn.engine.ema import ModelEMA
from vtn.engine.optimizer import build_optimizer


def trained_state(cfg):
    model = tiny_model()
    opt = build_optimizer(model, cfg)
    model.train()
    model(torch.randn(2, 3, 4, 32, 32)).sum().backward()
    opt.step()
    return model, opt


def test_round_trip_of_every_state_item(tmp_path):
    cfg = tiny_cfg("OUTPUT_DIR", str(tmp_path))
    model, opt = trained_state(cfg)
    scaler = torch.amp.GradScaler("cpu", init_scale=512.0)
    ema = ModelEMA(tiny_model(seed=5), 0.9)  # an average that differs from the model's weights
    ema.update(model)
    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    path = str(tmp_path / "c.pyth")
    ck.save_checkpoint(path, cfg, model, opt, scaler, ema, epoch=2, iteration=7, best_metric=55.5)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())

    data = ck.load_checkpoint_file(path)  # weights_only=True inside
    assert data["format"] == ck.FORMAT and data["epoch"] == 2 and data["iteration"] == 7
    assert data["best_metric"] == 55.5 and "scheduler_state" not in data  # the LR follows from epoch and iteration
    fresh = tiny_model(seed=1)
    ck.load_weights(fresh, ck.model_state_from(data, path), path, strict=True)
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k
    opt2 = build_optimizer(fresh, cfg)
    opt2.load_state_dict(data["optimizer_state"])
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for k in s1["state"]:
        assert torch.equal(s1["state"][k]["momentum_buffer"], s2["state"][k]["momentum_buffer"])
    scaler2 = torch.amp.GradScaler("cpu")
    scaler2.load_state_dict(data["scaler_state"])
    assert scaler2.get_scale() == 512.0
    ema2 = ModelEMA(fresh, 0.9)
    ema2.load_state_dict(data["ema_state"])
    assert all(torch.equal(a, b) for a, b in zip(ema.state_dict().values(), ema2.state_dict().values()))
    # the EMA saved is the average, not the weights saved again
    assert any(
        not torch.equal(data["ema_state"][k], v) for k, v in data["model_state"].items() if v.is_floating_point()
    )
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    ck.restore_rng_state(data["rng_state"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(data["cfg"])
    assert load_config(str(cfg_file)) == cfg


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = str(tmp_path / "checkpoints" / "checkpoint_epoch_00001.pyth")
    ck.atomic_save({"epoch": 1, "w": torch.ones(3)}, path)

    def broken_save(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a zip")  # some bytes, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="the disk is full"):  # a DiskFullError, one line for the user
        ck.atomic_save({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    data = ck.load_checkpoint_file(path)
    assert data["epoch"] == 1 and torch.equal(data["w"], torch.ones(3))
    assert os.listdir(os.path.dirname(path)) == ["checkpoint_epoch_00001.pyth"]  # no temporary left behind


def test_resume_skips_corrupt_newest_checkpoint(tmp_path, caplog):
    cfg = tiny_cfg("OUTPUT_DIR", str(tmp_path))
    model, opt = trained_state(cfg)
    folder = ck.checkpoint_dir(str(tmp_path))
    good = os.path.join(folder, ck.checkpoint_name(1))
    ck.save_checkpoint(good, cfg, model, opt, epoch=1)
    newer = os.path.join(folder, ck.checkpoint_name(1, 50))
    ck.save_checkpoint(newer, cfg, model, opt, epoch=1, iteration=50)
    with open(newer, "r+b") as f:  # truncate: a kill -9 during a non-atomic copy, or a bad disk
        f.truncate(os.path.getsize(newer) // 2)
    empty = os.path.join(folder, ck.checkpoint_name(2))
    open(empty, "wb").close()
    garbled = ck.load_checkpoint_file(good)  # whole weights, but a config that is not YAML any more
    garbled["cfg"] = "VTN: {NUM_LAYERS: [1,\n  unclosed"
    ck.atomic_save(garbled, os.path.join(folder, ck.checkpoint_name(3)))
    path, data = ck.find_resume_checkpoint(str(tmp_path))
    assert path == good and data["epoch"] == 1
    assert "checkpoint_epoch_00002.pyth is empty" in caplog.text
    assert "checkpoint_epoch_00002_iter_0000050.pyth cannot be read" in caplog.text
    assert "checkpoint_epoch_00003.pyth: its stored config cannot be parsed" in caplog.text


def test_checkpoint_names_count_epochs_from_one_and_sort_by_position(tmp_path):
    # 5 iterations into the first epoch is "epoch 1" in the log and in the name, as is the end of that epoch
    assert ck.checkpoint_name(0, 5) == "checkpoint_epoch_00001_iter_0000005.pyth"
    assert ck.checkpoint_name(1) == "checkpoint_epoch_00001.pyth"
    assert ck.checkpoint_name(1, 10) == "checkpoint_epoch_00002_iter_0000010.pyth"
    folder = ck.checkpoint_dir(str(tmp_path))
    os.makedirs(folder)
    positions = [(2, 0), (0, 5), (1, 10), (1, 0), (1, 300)]
    for e, i in positions:
        ck.atomic_save({"epoch": e}, os.path.join(folder, ck.checkpoint_name(e, i)))
    assert [(e, i) for e, i, _ in ck.list_checkpoints(str(tmp_path))] == sorted(positions)


def test_named_bad_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pyth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ck.CheckpointError, match="bad.pyth cannot be read"):
        ck.load_checkpoint_file(str(bad))
    with pytest.raises(ck.CheckpointError, match="does not exist"):
        ck.load_checkpoint_file(str(tmp_path / "none.pyth"))
    torch.save({"optimizer": 1}, str(tmp_path / "noweights.pyth"))
    data = ck.load_checkpoint_file(str(tmp_path / "noweights.pyth"))
    with pytest.raises(ck.CheckpointError, match="no model weights"):
        ck.model_state_from(data, "noweights.pyth")


def test_new_num_classes_reinitialises_and_reports_the_head(caplog):
    source = tiny_model()  # 5 classes
    target = tiny_model("MODEL.NUM_CLASSES", 7, seed=1)
    fresh_head = target.mlp_head[4].weight.clone()
    state = {"module." + k: v for k, v in source.state_dict().items()}  # a DDP-saved checkpoint
    report = ck.load_weights(target, ck.model_state_from({"model_state": state}, "src"), "src")
    assert sorted(r.split(":")[0] for r in report["reinitialised"]) == ["mlp_head.4.bias", "mlp_head.4.weight"]
    assert "mlp_head.4.weight: checkpoint (5, 192) vs model (7, 192)" in report["reinitialised"]
    assert torch.equal(target.mlp_head[4].weight, fresh_head)
    assert torch.equal(target.mlp_head[1].weight, source.mlp_head[1].weight)
    assert "reinitialised tensor mlp_head.4.weight" in caplog.text
    with pytest.raises(ck.CheckpointError, match="does not match the model exactly"):
        ck.load_weights(target, source.state_dict(), "src", strict=True)


def test_prune_keeps_the_newest_k(tmp_path):
    folder = ck.checkpoint_dir(str(tmp_path))
    os.makedirs(folder)
    for e, i in [(1, 0), (1, 10), (2, 0), (3, 0), (3, 5)]:
        ck.atomic_save({"epoch": e}, os.path.join(folder, ck.checkpoint_name(e, i)))
    ck.atomic_save({"best": 1}, os.path.join(folder, ck.BEST_NAME))
    ck.prune_checkpoints(str(tmp_path), 2)
    assert sorted(os.listdir(folder)) == sorted([ck.BEST_NAME, ck.checkpoint_name(3), ck.checkpoint_name(3, 5)])


def test_stale_temporaries_are_removed(tmp_path):
    folder = ck.checkpoint_dir(str(tmp_path))
    os.makedirs(folder)
    open(os.path.join(folder, ".tmp-abc.pyth"), "wb").close()
    ck.remove_stale_temporaries(str(tmp_path))
    assert os.listdir(folder) == []


def test_the_rng_states_come_back_whole_through_a_file_cached_gaussians_included(tmp_path):
    """capture_rng_state -> torch.save -> load(weights_only) -> restore_rng_state gives python, numpy and torch back
    exactly where they were, also the second gaussian each of python and numpy keeps from its last draw."""
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    random.gauss(0.0, 1.0), np.random.randn(), torch.randn(3)  # python and numpy now hold a cached gaussian
    path = str(tmp_path / "rng.pt")
    torch.save(ck.capture_rng_state(), path)

    def draws():
        return (
            random.gauss(0.0, 1.0),
            random.random(),
            np.random.randn(),
            np.random.rand(),
            torch.randn(3).tolist(),
            torch.rand(3).tolist(),
        )

    expected = draws()
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    assert draws() != expected
    ck.restore_rng_state(torch.load(path, weights_only=True))
    assert draws() == expected


class _RunsCode:
    """Unpickling this calls os.system: a checkpoint that would run code when loaded unsafely."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_and_says_why(tmp_path):
    marker = tmp_path / "ran"
    path = str(tmp_path / "evil.pyth")
    torch.save({"model_state": {"w": torch.ones(2)}, "extra": _RunsCode(marker)}, path)
    with pytest.raises(ck.CheckpointError) as e:
        ck.load_checkpoint_file(path)
    message = str(e.value)
    assert message.startswith(f"checkpoint {path} holds objects that are not allowed in it (")
    assert "system" in message and "nothing in it was run" in message  # the real reason: the global it would call
    assert "weights_only" not in message and "trusted source" not in message and "\n" not in message
    assert "corrupted" not in message
    assert not marker.exists()


def test_a_text_file_as_a_checkpoint_says_it_is_text(tmp_path):
    path = tmp_path / "notes.pyth"
    path.write_text("epoch 3: top-1 71.2\nlr 0.005\n")
    with pytest.raises(ck.CheckpointError) as e:
        ck.load_checkpoint_file(str(path))
    assert str(e.value) == (
        f"checkpoint {path} cannot be read: it is a text file (it starts with 'epoch 3: top-1 71.2'), not a file "
        "written by torch.save"
    )
    path.write_bytes(b"\x00\x01\x02\xff" * 8)
    with pytest.raises(ck.CheckpointError, match=r"starts with bytes .*neither a zip archive nor a pickle"):
        ck.load_checkpoint_file(str(path))


def test_non_finite_weights_are_refused_with_their_count(tmp_path):
    model = tiny_model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    names = [k for k, v in state.items() if v.is_floating_point()]
    state[names[0]][0] = float("nan")
    state[names[1]].fill_(float("inf"))
    with pytest.raises(ck.CheckpointError) as e:
        ck.load_weights(tiny_model(seed=1), state, "diverged.pyth")
    message = str(e.value)
    assert f"NaN or infinite values in 2 of its {len(state)} tensors ({names[0]}, {names[1]})" in message
    ck.load_weights(tiny_model(seed=1), model.state_dict(), "fine.pyth", strict=True)  # finite: loads


def test_a_wrong_models_checkpoint_says_how_many_tensors_differ_in_one_short_line():
    other = tiny_model("VTN.NUM_LAYERS", 2, "MODEL.NUM_CLASSES", 7)
    with pytest.raises(ck.CheckpointError) as e:
        ck.load_weights(tiny_model(), other.state_dict(), "other.pyth", strict=True)
    message = str(e.value)
    total = len(tiny_model().state_dict())
    extra = len(other.state_dict()) - total
    assert f"of the model's {total} tensors, " in message and f"{extra} unexpected: " in message
    assert "2 of another shape: mlp_head.4.weight, mlp_head.4.bias)" in message and len(message) < 600
