"""tools/run_net.py end to end on the tiny synthetic dataset: outputs, checkpoints, and every failure case."""

import json
import os

import pytest
import torch
import yaml

from tests.helpers import run_opts, run_tool
from vtn.engine.checkpoint import checkpoint_dir, load_checkpoint_file


@pytest.fixture(scope="module")
def trained(synthetic_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run") / "out")
    proc = run_tool(
        "run_net.py",
        *run_opts(
            synthetic_dir,
            out,
            "TEST.PROTOCOLS",
            ["multi_view", "full_video"],
            "TRAIN.CHECKPOINT_ITERS",
            2,
            "TENSORBOARD.ENABLE",
            True,
        ),
    )
    return out, proc


def test_outputs_of_a_training_and_test_run(trained):
    out, proc = trained
    log = proc.stdout
    # the console says what runs in one line; the environment and the whole config go to the log file only
    file_log = open(os.path.join(out, "stdout.log")).read()
    assert "Environment:" in file_log and "torch " in file_log and "Config:\nAUG:" in file_log
    assert "Environment:" not in log and "Config:" not in log and len(log.splitlines()) < len(file_log.splitlines())
    assert (
        "Run: train and test; VTN with vit_tiny_patch16_224 and 1 longformer layers, 6 classes; data: synthetic in"
        in log
    )
    assert "Effective batch: 4 per process x 1 processes x 1 accumulation steps = 4 clips" in log
    assert "eta" in log and "train_iter" in log and "val_epoch" in log
    cfg = yaml.safe_load(open(os.path.join(out, "config.yaml")))
    assert cfg["OUTPUT_DIR"] == out and cfg["SOLVER"]["MAX_EPOCH"] == 2
    stats = [json.loads(line) for line in open(os.path.join(out, "json_stats.log"))]
    kinds = [s["_type"] for s in stats]
    assert kinds.count("train_iter") == 6 and kinds.count("train_epoch") == 2 and kinds.count("val_epoch") == 2
    names = sorted(os.listdir(checkpoint_dir(out)))
    # TRAIN.CHECKPOINT_KEEP 3: the oldest (epoch 0, iteration 2) was pruned; the best copy is kept apart
    # epochs count from 1 in every name: the mid-epoch one was written 2 iterations into epoch 2 of 2
    assert names == [
        "checkpoint_best.pyth",
        "checkpoint_epoch_00001.pyth",
        "checkpoint_epoch_00002.pyth",
        "checkpoint_epoch_00002_iter_0000002.pyth",
    ]
    mid = load_checkpoint_file(os.path.join(checkpoint_dir(out), "checkpoint_epoch_00002_iter_0000002.pyth"))
    assert (mid["epoch"], mid["iteration"]) == (1, 2)
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(out, "tensorboard")))


def test_each_epoch_checkpoint_holds_the_best_top1_of_its_own_validation(trained):
    out, _ = trained
    stats = [json.loads(line) for line in open(os.path.join(out, "json_stats.log"))]
    best = {int(s["epoch_float"]): s["best_top1"] for s in stats if s["_type"] == "val_epoch"}
    assert set(best) == {1, 2}
    for epoch in (1, 2):  # saved after the epoch's validation: a run resumed there compares with the right best
        data = load_checkpoint_file(os.path.join(checkpoint_dir(out), f"checkpoint_epoch_{epoch:05d}.pyth"))
        assert data["best_metric"] == pytest.approx(best[epoch], abs=1e-3)  # (the log keeps 6 digits)
    assert load_checkpoint_file(os.path.join(checkpoint_dir(out), "checkpoint_best.pyth"))["best_metric"] == (
        pytest.approx(max(best.values()), abs=1e-3)
    )


def test_test_results_and_predictions(trained):
    out, proc = trained
    assert "protocol" in proc.stdout and "multi_view" in proc.stdout and "full_video" in proc.stdout
    for protocol, views in (("multi_view", 6), ("full_video", 1)):
        r = json.load(open(os.path.join(out, f"test_results_{protocol}.json")))
        assert {"top1", "top5", "mean_class_acc", "num_videos", "num_failed", "protocol"} <= set(r)
        assert r["protocol"] == protocol and r["num_videos"] == 6 and r["num_failed"] == 0
        assert r["views_per_video"] == views and 0 <= r["top1"] <= r["top5"] <= 100
        assert r["checkpoint"].endswith("checkpoint_epoch_00002.pyth")
        preds = json.load(open(os.path.join(out, f"predictions_{protocol}.json")))
        assert (
            len(preds) == 6
            and len(preds[0]["top5_ids"]) == 5
            and preds[0]["top5_names"][0]
            in ("square_growing", "square_shrinking", "disk_brightening", "disk_dimming", "triangle", "stripes")
        )
        rows = open(os.path.join(out, f"predictions_{protocol}.csv")).read().splitlines()
        assert rows[0].startswith("path,label,label_name") and len(rows) == 7
    top = json.load(open(os.path.join(out, "test_results.json")))
    # the headline is the first of TEST.PROTOCOLS (multi-view), not the last one run
    assert top["protocol"] == "multi_view" and [r["protocol"] for r in top["all_protocols"]] == [
        "multi_view",
        "full_video",
    ]


def test_checkpoint_holds_every_state_item(trained):
    out, _ = trained
    data = load_checkpoint_file(os.path.join(checkpoint_dir(out), "checkpoint_epoch_00002.pyth"))
    assert {
        "model_state",
        "optimizer_state",
        "scaler_state",
        "ema_state",
        "epoch",
        "iteration",
        "rng_state",
        "cfg",
        "best_metric",
    } <= set(data)
    assert data["epoch"] == 2 and data["iteration"] == 0
    assert set(data["rng_state"]) >= {"python", "numpy", "torch"}


def test_rerunning_a_finished_run_trains_nothing_and_tests_again(trained, synthetic_dir):
    out, _ = trained
    proc = run_tool("run_net.py", *run_opts(synthetic_dir, out))
    assert "Resuming from" in proc.stdout and "train_iter" not in proc.stdout
    assert "Test results" in proc.stdout


def test_testing_without_a_checkpoint_is_an_error_unless_allowed(synthetic_dir, tmp_path):
    out = str(tmp_path / "empty")
    proc = run_tool("run_net.py", *run_opts(synthetic_dir, out, "TRAIN.ENABLE", False), check=False)
    assert proc.returncode != 0
    assert "No checkpoint to test" in proc.stderr and "TEST.ALLOW_RANDOM_INIT" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_tool("run_net.py", *run_opts(synthetic_dir, out, "TRAIN.ENABLE", False, "TEST.ALLOW_RANDOM_INIT", True))
    assert "Testing RANDOM weights" in proc.stdout and os.path.isfile(os.path.join(out, "test_results.json"))


def test_finetuning_with_new_num_classes_reports_the_head(synthetic_dir, tmp_path):
    from vtn.config import load_config
    from vtn.engine.checkpoint import save_checkpoint
    from vtn.models import build_model

    # a checkpoint of another dataset (8 classes), fine-tuned on the 6 synthetic classes: a new head
    other = load_config(None, run_opts(synthetic_dir, str(tmp_path / "other"), "MODEL.NUM_CLASSES", 8))
    ckpt = str(tmp_path / "other.pyth")
    save_checkpoint(ckpt, other, build_model(other), epoch=2)
    proc = run_tool(
        "run_net.py",
        *run_opts(
            synthetic_dir,
            str(tmp_path / "ft"),
            "TRAIN.CHECKPOINT_FILE_PATH",
            ckpt,
            "SOLVER.MAX_EPOCH",
            1,
            "TEST.ENABLE",
            False,
            "TRAIN.EVAL_PERIOD",
            0,
        ),
    )
    log = proc.stdout
    assert "Re-initialised 2 tensors" in log
    assert "mlp_head.4.weight: checkpoint (8, 192) vs model (6, 192)" in log
    assert "mlp_head.4.bias: checkpoint (8,) vs model (6,)" in log


def test_a_model_with_another_number_of_classes_than_the_dataset_stops_with_one_line(synthetic_dir, tmp_path):
    proc = run_tool("run_net.py", *run_opts(synthetic_dir, str(tmp_path / "x"), "MODEL.NUM_CLASSES", 8), check=False)
    assert proc.returncode == 2
    assert "the dataset has 6 classes (square_growing, " in proc.stderr and "set MODEL.NUM_CLASSES 6" in proc.stderr


def test_a_named_bad_checkpoint_is_a_clear_error(synthetic_dir, tmp_path):
    bad = tmp_path / "bad.pyth"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    for key in ("TEST.CHECKPOINT_FILE_PATH", "TRAIN.CHECKPOINT_FILE_PATH"):
        proc = run_tool(
            "run_net.py",
            *run_opts(synthetic_dir, str(tmp_path / key), key, str(bad), "TRAIN.ENABLE", key.startswith("TRAIN")),
            check=False,
        )
        assert proc.returncode != 0 and f"checkpoint {bad} cannot be read" in proc.stderr


def test_corrupt_newest_checkpoint_is_skipped_on_resume(trained, synthetic_dir, tmp_path):
    import shutil

    out = str(tmp_path / "copy")
    shutil.copytree(trained[0], out)
    newest = os.path.join(checkpoint_dir(out), "checkpoint_epoch_00002.pyth")
    with open(newest, "r+b") as f:
        f.truncate(1000)
    proc = run_tool("run_net.py", *run_opts(synthetic_dir, out, "TEST.ENABLE", False, "TRAIN.EVAL_PERIOD", 0))
    assert "Skipping unusable checkpoint" in proc.stdout and "checkpoint_epoch_00002.pyth cannot be read" in proc.stdout
    # the newest readable one: 2 iterations into epoch 2
    assert "Resuming from" in proc.stdout
    assert "checkpoint_epoch_00002_iter_0000002.pyth: epoch 2, iteration 2" in proc.stdout
    assert load_checkpoint_file(newest)["epoch"] == 2  # retrained and rewritten


def test_a_checkpoint_with_nan_weights_is_never_tested(trained, synthetic_dir, tmp_path):
    from vtn.engine.checkpoint import atomic_save

    data = load_checkpoint_file(os.path.join(checkpoint_dir(trained[0]), "checkpoint_epoch_00002.pyth"))
    name = next(k for k, v in data["model_state"].items() if v.is_floating_point())
    data["model_state"][name] = torch.full_like(data["model_state"][name], float("nan"))
    nan = str(tmp_path / "nan.pyth")
    atomic_save(data, nan)
    out = tmp_path / "test_only"
    opts = run_opts(synthetic_dir, str(out), "TRAIN.ENABLE", False, "TEST.CHECKPOINT_FILE_PATH", nan)
    proc = run_tool("run_net.py", *opts, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"checkpoint {nan} holds NaN or infinite values in 1 of its" in proc.stderr and name in proc.stderr
    assert not (out / "test_results.json").exists()


def test_a_folder_whose_checkpoints_are_all_unusable_is_never_restarted_over_them(synthetic_dir, tmp_path):
    out = tmp_path / "broken"
    folder = out / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "checkpoint_epoch_00001.pyth").write_bytes(b"PK\x03\x04 cut short")
    proc = run_tool("run_net.py", *run_opts(synthetic_dir, str(out), "TEST.ENABLE", False), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"none of the 1 checkpoints in {folder} can be resumed" in proc.stderr
    assert os.listdir(folder) == ["checkpoint_epoch_00001.pyth"]  # kept as it was, nothing trained over it


def test_non_finite_loss_stops_with_epoch_and_iteration(synthetic_dir, tmp_path):
    out = str(tmp_path / "nan")
    opts = run_opts(
        synthetic_dir,
        out,
        "SOLVER.BASE_LR",
        1e30,
        "SOLVER.LR_POLICY",
        "steps_with_relative_lrs",
        "TRAIN.CHECKPOINT_ITERS",
        1,
        "TEST.ENABLE",
        False,
    )
    proc = run_tool("run_net.py", *opts, check=False)
    assert proc.returncode != 0
    assert "Non-finite (NaN or infinite) loss at epoch 1, iteration 2" in proc.stderr
    good = load_checkpoint_file(os.path.join(checkpoint_dir(out), "checkpoint_epoch_00001_iter_0000001.pyth"))
    assert all(torch.isfinite(v).all() for v in good["model_state"].values() if v.dtype.is_floating_point)
    assert not os.path.exists(os.path.join(checkpoint_dir(out), "checkpoint_epoch_00001_iter_0000002.pyth"))
    proc = run_tool(
        "run_net.py",
        *run_opts(
            synthetic_dir,
            str(tmp_path / "skip"),
            "SOLVER.BASE_LR",
            1e30,
            "SOLVER.LR_POLICY",
            "steps_with_relative_lrs",
            "TRAIN.MAX_BAD_STEPS",
            1,
            "TEST.ENABLE",
            False,
        ),
        check=False,
    )
    assert "step skipped (1 of at most 1)" in proc.stdout
    assert "more than TRAIN.MAX_BAD_STEPS = 1 bad steps" in proc.stderr


def test_unwritable_output_dir_is_reported_at_start(synthetic_dir, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    proc = run_tool("run_net.py", *run_opts(synthetic_dir, str(blocker / "out")), check=False)
    assert proc.returncode != 0 and "is not writable" in proc.stderr and "a_file/out" in proc.stderr
    assert "train_iter" not in proc.stdout


def test_full_disk_is_reported_before_training(monkeypatch, tmp_path):
    import shutil
    from collections import namedtuple

    from tests.helpers import tiny_cfg, tiny_model
    from vtn.engine.output_dir import check_output_dir
    from vtn.utils.errors import OutputDirError

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(OutputDirError, match="has 0.00 GiB free; the run keeps up to 5 checkpoints of about"):
        check_output_dir(tiny_cfg("OUTPUT_DIR", str(tmp_path)), tiny_model())


def test_training_with_strong_augmentation_and_mixup(synthetic_dir, tmp_path):
    """AUG.ENABLE and MIXUP.ENABLE (MIXUP.PROB 1): every training batch goes through mixup, the model trains on the
    mixed clips, the loss is that of mixup's soft targets, and no hard-label accuracy is logged."""
    from tests.helpers import synthetic_opts, tiny_cfg
    from vtn.engine.train_loop import HookBase
    from vtn.engine.trainer import Trainer

    mixed, seen, steps = [], [], []  # (clips in, clips out, targets) of each mixup; the model's clips; the steps

    class StepLog(HookBase):
        def after_step(self):
            out = self.trainer.step_output
            steps.append((out["loss"].detach().clone(), out["logits"].detach().clone()))

    class Recording(Trainer):
        @classmethod
        def build_mixup(cls, cfg):
            mix = super().build_mixup(cfg)

            def mix_and_record(frames, labels):
                before = frames.clone()  # mixup works in place
                frames, targets = mix(frames, labels)
                mixed.append((before, frames.clone(), targets.clone()))
                return frames, targets

            return mix_and_record

        def build_hooks(self):
            return super().build_hooks() + [StepLog()]

    out = str(tmp_path / "aug")
    cfg = tiny_cfg(
        *synthetic_opts(synthetic_dir),
        "OUTPUT_DIR",
        out,
        "AUG.ENABLE",
        True,
        "MIXUP.ENABLE",
        True,
        "SOLVER.MAX_EPOCH",
        1,
        "TRAIN.EVAL_PERIOD",
        0,
        "LOG_PERIOD",
        1,
        "DATA.TRAIN_JITTER_SCALES",
        [32, 40],
    )
    trainer = Recording(cfg)
    trainer.model.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs["frames"].clone()), with_kwargs=True
    )
    trainer.train()
    assert len(mixed) == len(seen) == len(steps) == trainer.epoch_iters == 3
    smooth = cfg.MIXUP.LABEL_SMOOTH_VALUE / cfg.MODEL.NUM_CLASSES
    for (_, after, targets), frames, (loss, logits) in zip(mixed, seen, steps):
        assert torch.equal(frames, after)  # the model got the mixed clips
        torch.testing.assert_close(targets.sum(1), torch.ones(len(targets)))
        assert targets.min() >= smooth - 1e-6 and targets.max() <= 1 - cfg.MIXUP.LABEL_SMOOTH_VALUE + smooth + 1e-6
        torch.testing.assert_close(loss, trainer.loss_fn(logits.float(), targets))  # the loss of the soft targets
    assert any(not torch.equal(before, after) for before, after, _ in mixed)  # clips were really mixed
    stats = [json.loads(line) for line in open(os.path.join(out, "json_stats.log"))]
    train = [s for s in stats if s["_type"] == "train_iter"]
    assert len(train) == 3 and "top1_err" not in train[0]  # soft targets: no hard-label accuracy during training


def test_a_corrupt_training_and_test_video_are_counted_and_reported(synthetic_dir, tmp_path):
    import shutil

    from tests.datasets.bad_files import make_bad_files

    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    good = next((data / "videos" / "train").glob("*.mp4"))
    bad = make_bad_files(str(data / "bad"), str(good))
    with open(data / "train.csv", "a") as f:
        f.write(f"{os.path.relpath(bad['truncated'], data)} triangle\n")
    with open(data / "test.csv", "a") as f:
        f.write(f"{os.path.relpath(bad['not_a_video'], data)} stripes\n")
    out = str(tmp_path / "out")
    run_tool("run_net.py", *run_opts(str(data), out, "SOLVER.MAX_EPOCH", 3, "TRAIN.EVAL_PERIOD", 0))
    stats = [json.loads(line) for line in open(os.path.join(out, "json_stats.log"))]
    failures = sum(s["decode_failures"] for s in stats if s["_type"] == "train_epoch")
    assert failures >= 1  # 13 videos, 3 epochs: the truncated one was drawn and replaced at least once
    results = json.load(open(os.path.join(out, "test_results.json")))
    assert (results["num_failed"], results["num_missing"], results["num_videos"], results["num_listed"]) == (1, 0, 6, 7)
    rows = {os.path.basename(r["path"]): r for r in json.load(open(os.path.join(out, "predictions_multi_view.json")))}
    assert rows["notes.mp4"]["status"] == "failed" and rows["notes.mp4"]["top5_ids"] == []
