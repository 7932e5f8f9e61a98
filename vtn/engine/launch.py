"""What every process of `tools/run_net.py` runs: set-up, then the phases the config enables."""
import logging
import os

from vtn.config import dump_config
from vtn.engine import distributed as du
from vtn.engine.checkpoint import BEST_NAME, checkpoint_dir, remove_stale_temporaries
from vtn.utils.env import collect_env_info
from vtn.utils.logging import setup_logging
from vtn.utils.rng import seed_everything

logger = logging.getLogger(__name__)


def setup_run(cfg) -> None:
    """Logging, seeds, start-up checks of OUTPUT_DIR, the resolved config and the environment in the log."""
    from vtn.engine.trainer import check_output_dir

    master = du.is_master()
    if master:
        check_output_dir(cfg)
    setup_logging(cfg.OUTPUT_DIR, master)
    seed_everything(cfg.RNG_SEED + du.get_rank())
    if master:
        remove_stale_temporaries(cfg.OUTPUT_DIR)
        dump_config(cfg, os.path.join(cfg.OUTPUT_DIR, "config.yaml"))
        logger.info("Environment:\n%s", collect_env_info())
        logger.info("Processes: %d (this is rank %d)", du.get_world_size(), du.get_rank())
        logger.info("Config:\n%s", cfg.dump())


def run_job(cfg) -> None:
    from vtn.datasets import check_splits

    setup_run(cfg)
    check_splits(cfg)  # the data first: a missing dataset is reported before any weight download
    checkpoint = None
    if cfg.TRAIN.ENABLE:
        from vtn.engine.trainer import Trainer, check_output_dir
        from vtn.utils.model_stats import model_report, unwrap

        trainer = Trainer(cfg)
        if du.is_master():
            check_output_dir(cfg, unwrap(trainer.model))
            if cfg.LOG_MODEL_INFO:
                logger.info("Model:\n%s", model_report(trainer.model, cfg, cfg.DATA.NUM_FRAMES, cfg.TEST.FULL_VIDEO_FRAMES))
        checkpoint = trainer.train()
        best = os.path.join(checkpoint_dir(cfg.OUTPUT_DIR), BEST_NAME)
        if cfg.TEST.CHECKPOINT_SELECT == "best" and os.path.isfile(best):
            checkpoint = best
    if cfg.TEST.ENABLE:
        from vtn.engine.tester import test

        test(cfg, checkpoint=None if cfg.TEST.CHECKPOINT_FILE_PATH else checkpoint)
    if cfg.DEMO.ENABLE and du.is_master():
        from vtn.engine.demo import run_demo

        run_demo(cfg, cfg.DEMO.INPUT_VIDEO, cfg.DEMO.OUTPUT_FILE)
