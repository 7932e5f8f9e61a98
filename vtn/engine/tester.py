"""The test phase: find and load the checkpoint (never silently random), run each test pass, report.

The test passes are vtn.config.views_to_test(cfg): one ViewSpec each, whose name (e.g. full_video_shuffled) names
the pass in the table, test_results_<name>.json and predictions_<name>.*."""

import datetime
import logging
import os
import shutil
import tempfile
from typing import Optional

from vtn.config import ViewSpec, passes_of, views_to_test
from vtn.datasets import build_loader
from vtn.engine import distributed as du
from vtn.engine.checkpoint import (
    BEST_NAME,
    CheckpointError,
    checkpoint_dir,
    find_resume_checkpoint,
    load_checkpoint_file,
    load_weights,
)
from vtn.engine.convert import to_vtn_state
from vtn.engine.distributed import unwrap
from vtn.engine.evaluator import (
    dataset_fingerprint,
    dataset_metrics,
    public_results,
    results_table,
    run_inference_passes,
    save_results,
    write_predictions,
)
from vtn.engine.output_dir import check_same_config
from vtn.models import build_model
from vtn.utils.errors import DatasetError
from vtn.utils.files import TEMP_PREFIX

logger = logging.getLogger(__name__)


def find_test_checkpoint(cfg) -> Optional[str]:
    """TEST.CHECKPOINT_FILE_PATH, else the best or newest checkpoint of OUTPUT_DIR; None only when
    TEST.ALLOW_RANDOM_INIT says random weights are wanted."""
    if cfg.TEST.CHECKPOINT_FILE_PATH:
        return cfg.TEST.CHECKPOINT_FILE_PATH
    best = os.path.join(checkpoint_dir(cfg.OUTPUT_DIR), BEST_NAME)
    if cfg.TEST.CHECKPOINT_SELECT == "best" and os.path.isfile(best):
        return best
    found = find_resume_checkpoint(cfg.OUTPUT_DIR)
    if found is not None:
        return found[0]
    if cfg.TEST.ALLOW_RANDOM_INIT:
        logger.warning("Testing RANDOM weights: no checkpoint found and TEST.ALLOW_RANDOM_INIT is True.")
        return None
    raise CheckpointError(
        f"No checkpoint to test: TEST.CHECKPOINT_FILE_PATH is empty and {checkpoint_dir(cfg.OUTPUT_DIR)} holds "
        "none. Train first, name a checkpoint with TEST.CHECKPOINT_FILE_PATH, or set TEST.ALLOW_RANDOM_INIT True "
        "to test random weights on purpose."
    )


def is_own_checkpoint(cfg, path: str) -> bool:
    """A checkpoint found in OUTPUT_DIR (not one named by TEST.CHECKPOINT_FILE_PATH): made by this folder's run."""
    folder = os.path.realpath(checkpoint_dir(cfg.OUTPUT_DIR))
    return not cfg.TEST.CHECKPOINT_FILE_PATH and os.path.realpath(os.path.dirname(path)) == folder


def load_for_test(model, path: str, cfg) -> None:
    """Weights that must fit the model exactly (a head of another size would make the test meaningless). A
    checkpoint of OUTPUT_DIR must have been made with this config, except for keys that do not change the
    model or the test data (see output_dir.check_same_config)."""
    data = load_checkpoint_file(path)
    if is_own_checkpoint(cfg, path):
        check_same_config(cfg, data.get("cfg"), path, testing=True)
    use_ema = cfg.TRAIN.EMA_DECAY > 0 and isinstance(data.get("ema_state"), dict)
    state = data["ema_state"] if use_ema else to_vtn_state(data, path, cfg)
    load_weights(model, state, path, strict=True)
    logger.info("Testing %s%s", path, " (EMA weights)" if use_ema else "")


def test(cfg, checkpoint: Optional[str] = None, model=None) -> list[dict]:
    """Run every test pass of the config (the headline first); print one table; write test_results*.json
    (the headline at the top level of test_results.json) and predictions_*, all published together at the end."""
    device = du.device_for(cfg)
    if model is None:
        model = build_model(cfg)
    path = checkpoint or find_test_checkpoint(cfg)
    if path is not None:
        load_for_test(model, path, cfg)
    net = unwrap(model)
    staging = test_staging_dir(cfg.OUTPUT_DIR) if du.is_master() else None
    try:
        views = views_to_test(cfg)
        rows = {}
        for view, twin in passes_of(views):
            rows.update(test_run(cfg, model, net, device, view, path, staging, twin))
        rows = [rows[v.name] for v in views]
        if du.is_master():
            logger.info("Test results (%s):\n%s", path or "random weights", results_table(rows))
            save_results(rows, staging)
            publish_test_outputs(staging, cfg.OUTPUT_DIR)
    finally:
        if staging is not None and os.path.isdir(staging):
            shutil.rmtree(staging)  # an interrupted test run publishes nothing
    return rows


def test_run(
    cfg,
    model,
    net,
    device,
    view: ViewSpec,
    checkpoint: Optional[str],
    staging: Optional[str],
    twin: Optional[ViewSpec] = None,
) -> dict[str, dict]:
    """One pass over the test data of `view` (and of its shuffled `twin` from the same embeddings): inference,
    metrics, and (master) the predictions written into `staging`. Returns {run name: results row}."""
    loader = build_loader(cfg, "test", view)
    dataset = loader.dataset
    if dataset.view.name != view.name:
        raise DatasetError(
            f"the {cfg.TEST.DATASET!r} dataset builder was asked for the view {view.name} and returned a dataset of "
            f"{dataset.view.name}: a builder passes its `view` on to the dataset"
        )
    dataset.check_model(net)  # e.g. a feature cache of another backbone
    # the dataset's view: its views per video (one crop for the feature cache) and the same name
    runs = [dataset.view] + ([dataset.view.with_shuffled(True)] if twin is not None else [])
    desc = "test " + " + ".join(run.name for run in runs)
    results = run_inference_passes(model, loader, cfg, device, [run.shuffled for run in runs], desc=desc)
    return {run.name: run_row(cfg, run, result, dataset, checkpoint, staging) for run, result in zip(runs, results)}


def run_row(cfg, run: ViewSpec, result: dict, dataset, checkpoint: Optional[str], staging: Optional[str]) -> dict:
    """The results row of one test run (metrics, fingerprint, views), its predictions written by the master."""
    name = run.name
    metrics = dataset_metrics(result, dataset, cfg.MODEL.NUM_CLASSES)
    scored = metrics["scored"].tolist()
    fingerprint = dataset_fingerprint(
        [p for p, ok in zip(dataset.paths, scored) if ok],
        [lab for lab, ok in zip(dataset.labels, scored) if ok],
        dataset.data_root,
    )
    extra = {"checkpoint": checkpoint, "shuffle_frames": run.shuffled, "dataset_fingerprint": fingerprint}
    row = public_results(metrics, run, dataset.class_names, extra, dataset.class_groups)
    if du.is_master():
        write_predictions(result, dataset, metrics, staging, checkpoint, view=run)
    if metrics["num_missing"] or metrics["num_failed"]:
        logger.warning(
            "%s: %d of %d listed test videos are missing and %d could not be decoded; they are left "
            "out of top1/top5 and count as wrong in top1_listed/top5_listed (see predictions_%s.csv)",
            name,
            metrics["num_missing"],
            metrics["num_listed"],
            metrics["num_failed"],
            name,
        )
    return row


TEST_OUTPUT_PREFIXES = ("test_results", "predictions_")


def test_staging_dir(output_dir: str) -> str:
    """A fresh folder inside OUTPUT_DIR where a test run writes its files until all of them are done (a temporary
    of `atomic_write`'s kind: a killed run's is removed at the next start)."""
    os.makedirs(output_dir, exist_ok=True)
    return tempfile.mkdtemp(prefix=TEMP_PREFIX + "test-", dir=output_dir)


def publish_test_outputs(staging: str, output_dir: str) -> None:
    """Move one test run's files into OUTPUT_DIR together, test_results.json last, after moving the files of the
    previous test run into previous_tests/<time>/: the folder never shows new predictions beside old results,
    and nothing of an earlier test is lost."""
    old = [f for f in os.listdir(output_dir) if f.startswith(TEST_OUTPUT_PREFIXES)]
    if old:
        keep = os.path.join(output_dir, "previous_tests", datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f"))
        os.makedirs(keep)
        for name in old:
            os.replace(os.path.join(output_dir, name), os.path.join(keep, name))
    for name in sorted(os.listdir(staging), key=lambda n: n == "test_results.json"):
        os.replace(os.path.join(staging, name), os.path.join(output_dir, name))
    os.rmdir(staging)
