"""TensorBoard scalars (TENSORBOARD.ENABLE), written by the master process only."""

import os


class TensorboardWriter:
    def __init__(self, cfg):
        from torch.utils.tensorboard import SummaryWriter  # optional: loads tensorboard only when on

        log_dir = cfg.TENSORBOARD.LOG_DIR or os.path.join(cfg.OUTPUT_DIR, "tensorboard")
        self.writer = SummaryWriter(log_dir=log_dir)

    def add_scalars(self, values: dict, step: int, prefix: str) -> None:
        for k, v in values.items():
            if isinstance(v, (int, float)) and not k.startswith("_"):
                self.writer.add_scalar(f"{prefix}/{k}", v, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
