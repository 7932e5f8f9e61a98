"""What every process of `tools/run_net.py` runs: set-up, then the phases the config enables."""

import logging
import os
from typing import Optional

from vtn.datasets import build_dataset, check_splits
from vtn.engine import distributed as du
from vtn.engine.agreement import check_ranks_agree
from vtn.engine.checkpoint import BEST_NAME, CheckpointError, checkpoint_dir, list_checkpoints, remove_stale_temporaries
from vtn.engine.distributed import unwrap
from vtn.engine.output_dir import RunLock, check_output_dir, save_run_config
from vtn.engine.tester import test
from vtn.engine.trainer import Trainer
from vtn.engine.worker_watch import LOADER_ERRORS, raise_if_worker_died
from vtn.inference.demo import run_demo
from vtn.models.model_stats import model_report
from vtn.utils.env import collect_env_info
from vtn.utils.logging import FILE_ONLY, setup_logging
from vtn.utils.rng import seed_everything

logger = logging.getLogger(__name__)


def setup_run(cfg) -> Optional[RunLock]:
    """Start-up checks of OUTPUT_DIR and its lock (master process), logging, seeds, the environment and the
    resolved config in the log. Returns the lock the master holds (release it at the end of the run)."""
    master = du.is_master()
    lock = None
    if master:
        check_output_dir(cfg)
        lock = RunLock(cfg.OUTPUT_DIR).acquire()  # before anything is written into the folder
    setup_logging(cfg.OUTPUT_DIR, master)
    seed_everything(cfg.RNG_SEED + du.get_rank())
    if master:
        remove_stale_temporaries(cfg.OUTPUT_DIR)
        logger.info("Environment:\n%s", collect_env_info(), extra=FILE_ONLY)
        logger.info("Processes: %d (this is rank %d)", du.get_world_size(), du.get_rank())
        logger.info("Config:\n%s", cfg.dump(), extra=FILE_ONLY)
        logger.info("%s", run_summary(cfg))
    return lock


def run_summary(cfg) -> str:
    """The console's few words on the run; the environment and the whole resolved config go to the log file."""
    phases = [p for p, on in (("train", cfg.TRAIN.ENABLE), ("test", cfg.TEST.ENABLE)) if on] or ["nothing"]
    data = cfg.TRAIN.DATASET if cfg.TRAIN.ENABLE else cfg.TEST.DATASET
    return (
        f"Run: {' and '.join(phases)}; {cfg.MODEL.MODEL_NAME} with {cfg.VTN.BACKBONE} and {cfg.VTN.NUM_LAYERS} "
        f"{cfg.VTN.TEMPORAL_ENCODER} layers, {cfg.MODEL.NUM_CLASSES} classes; data: {data} in "
        f"{cfg.DATA.PATH_TO_DATA_DIR or '(DATA.PATH_TO_DATA_DIR is empty)'}; the environment and the whole config "
        f"are in {os.path.join(cfg.OUTPUT_DIR, 'stdout.log')}"
    )


def run_process(cfg) -> None:
    """What every process of tools/run_net.py runs (launch_job starts the processes): set-up, the phases,
    and the OUTPUT_DIR lock released at the end. A loader worker that dies (testing's too) ends it with one line."""
    lock = setup_run(cfg)
    try:
        run_phases(cfg)
    except LOADER_ERRORS as e:
        raise_if_worker_died(e, cfg)
        raise
    finally:
        if lock is not None:
            lock.release()


def check_named_files(cfg) -> None:
    """The weight files the config names and the run will read exist (one line naming the key otherwise):
    TRAIN.CHECKPOINT_FILE_PATH (unless the run resumes from OUTPUT_DIR's checkpoints), TEST.CHECKPOINT_FILE_PATH,
    VTN.PRETRAINED_PATH."""
    resumes = cfg.TRAIN.AUTO_RESUME and bool(list_checkpoints(cfg.OUTPUT_DIR))
    start = '; name the checkpoint to start from, or TRAIN.CHECKPOINT_FILE_PATH "" to start without one'
    named = [
        ("TRAIN.CHECKPOINT_FILE_PATH", cfg.TRAIN.CHECKPOINT_FILE_PATH, cfg.TRAIN.ENABLE and not resumes, start),
        ("TEST.CHECKPOINT_FILE_PATH", cfg.TEST.CHECKPOINT_FILE_PATH, cfg.TEST.ENABLE, ""),
        ("VTN.PRETRAINED_PATH", cfg.VTN.PRETRAINED_PATH, True, ""),
    ]
    for key, path, used, hint in named:
        if path and used and not os.path.isfile(path):
            raise CheckpointError(f"{key} {path} does not exist{hint}")


def run_phases(cfg) -> None:
    """What the config asks for: the demo alone when DEMO.ENABLE, else the training and test phases that
    TRAIN.ENABLE and TEST.ENABLE enable. The config is written into OUTPUT_DIR only once the run's checkpoint has
    been checked against it (see output_dir.py)."""
    if cfg.DEMO.ENABLE:
        if du.is_master():
            save_run_config(cfg, testing=True)
            run_demo(cfg, cfg.DEMO.INPUT_VIDEO, cfg.DEMO.OUTPUT_FILE)
        return
    check_splits(cfg)  # the data first: a missing dataset is reported before any weight download
    check_named_files(cfg)  # then the weights the config names, before the model and the loaders are built
    checkpoint = None
    if cfg.TRAIN.ENABLE:
        trainer = Trainer(cfg)
        if du.is_master():
            save_run_config(cfg, changed=bool(trainer.config_changes))
            check_output_dir(cfg, unwrap(trainer.model))
            if cfg.LOG_MODEL_INFO:
                report = model_report(unwrap(trainer.model), cfg, cfg.DATA.NUM_FRAMES, cfg.TEST.FULL_VIDEO_FRAMES)
                logger.info("Model:\n%s", report)
        checkpoint = trainer.train()
        best = os.path.join(checkpoint_dir(cfg.OUTPUT_DIR), BEST_NAME)
        if cfg.TEST.CHECKPOINT_SELECT == "best" and os.path.isfile(best):
            checkpoint = best
    elif cfg.TEST.ENABLE:
        if du.get_world_size() > 1:  # as the Trainer does: every rank tests with the same code, config and data
            check_ranks_agree(cfg, build_dataset(cfg, "test"))
        if du.is_master():
            save_run_config(cfg, testing=True)
    if cfg.TEST.ENABLE:
        test(cfg, checkpoint=None if cfg.TEST.CHECKPOINT_FILE_PATH else checkpoint)
