"""TensorBoard scalars (TENSORBOARD.ENABLE), written by the master process only."""

import os


class TensorboardWriter:
    def __init__(self, cfg):
        from torch.utils.tensorboard import SummaryWriter  # optional: loads tensorboard only when on

        log_dir = cfg.TENSORBOARD.LOG_DIR or os.path.join(cfg.OUTPUT_DIR, "tensorboard")
        self.writer = SummaryWriter(log_dir=log_dir)

    def add_scalars(self, values: dict, step: int, prefix: str) -> None:
        """One scalar `prefix/key` per number of `values`; a list of numbers (figures by rank, e.g. the data wait)
        is one scalar per rank, `prefix/key/rank_R`. Keys starting with `_`, strings and None are left out."""
        for k, v in values.items():
            if k.startswith("_"):
                continue
            if _is_number(v):
                self.writer.add_scalar(f"{prefix}/{k}", v, step)
            elif isinstance(v, (list, tuple)) and all(_is_number(x) for x in v):
                for rank, x in enumerate(v):
                    self.writer.add_scalar(f"{prefix}/{k}/rank_{rank}", x, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _is_number(value) -> bool:
    return isinstance(value, (int, float))
