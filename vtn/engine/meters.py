"""Training meters: loss, accuracy, decode failures and times of the steps, kept on the device and reduced
over processes once per log line (one host sync), and the log line's format."""

import logging
import time
from typing import Optional

import torch

from vtn.engine import distributed as du
from vtn.utils.logging import format_eta
from vtn.utils.metrics import topk_correct

logger = logging.getLogger(__name__)


class TrainMeter:
    """Accumulates loss and accuracy on the device; `log` syncs, reduces over processes and prints."""

    def __init__(self, epoch_iters: int, max_epoch: int, device: torch.device):
        self.epoch_iters = epoch_iters
        self.max_epoch = max_epoch
        self.device = device
        self._iter_times: list[float] = []
        self.step_seconds = 0.0  # mean step time over every process at the last log line (the same on each)
        self.reset_window()
        self.reset_epoch()

    def _zeros(self):
        # loss sum, samples, top1 hits, top5 hits, samples with hard labels, decode failures, step seconds
        return torch.zeros(7, dtype=torch.float64, device=self.device)

    def reset_window(self):
        self.window = self._zeros()
        self.window_data_time = 0.0
        self.window_iter_time = 0.0
        self.window_iters = 0

    def reset_epoch(self):
        self.epoch = self._zeros()
        self.epoch_start = time.perf_counter()

    def update(self, loss, logits, labels: Optional[torch.Tensor], decode_failures, data_time, iter_time):
        n = logits.shape[0]
        row = self._zeros()
        row[0] = loss.detach().double() * n
        row[1] = n
        if labels is not None:
            hits = topk_correct(logits.detach(), labels, (1, 5))
            row[2], row[3], row[4] = hits[1], hits[5], n
        row[5] = decode_failures.sum()
        row[6] = iter_time
        self.window += row
        self.epoch += row
        self.window_data_time += data_time
        self.window_iter_time += iter_time
        self.window_iters += 1
        self._iter_times.append(iter_time)
        self._iter_times = self._iter_times[-200:]

    @staticmethod
    def _reduce(stats: torch.Tensor) -> list[float]:
        return du.all_reduce_sum(stats.clone()).tolist()

    @staticmethod
    def _summary(stats: list[float]) -> dict[str, float]:
        loss_sum, n, top1, top5, n_hard, failures, _ = stats
        out = {"loss": loss_sum / max(n, 1), "decode_failures": int(failures)}
        if n_hard:
            out["top1_err"] = 100.0 * (1 - top1 / n_hard)
            out["top5_err"] = 100.0 * (1 - top5 / n_hard)
        return out

    def eta_seconds(self, epoch: int, it: int) -> float:
        avg = sum(self._iter_times) / max(len(self._iter_times), 1)
        remaining = (self.max_epoch - epoch) * self.epoch_iters - (it + 1)
        return avg * remaining

    def log_iter(self, epoch: int, it: int, lr: float, mem_gb: Optional[float] = None) -> dict:
        reduced = self._reduce(self.window)
        stats = self._summary(reduced)
        iters = max(self.window_iters, 1)
        self.step_seconds = reduced[6] / (du.get_world_size() * iters)
        stats.update(
            _type="train_iter",
            epoch=f"{epoch + 1}/{self.max_epoch}",
            epoch_float=round(epoch + (it + 1) / self.epoch_iters, 6),
            iter=f"{it + 1}/{self.epoch_iters}",
            lr=lr,
            data_time=self.window_data_time / iters,
            iter_time=self.window_iter_time / iters,
            eta=format_eta(self.eta_seconds(epoch, it)),
        )
        if mem_gb is not None:
            stats["gpu_mem_gb"] = mem_gb
        self.reset_window()
        return stats

    def log_epoch(self, epoch: int, lr: float) -> dict:
        stats = self._summary(self._reduce(self.epoch))
        stats.update(
            _type="train_epoch",
            epoch=f"{epoch + 1}/{self.max_epoch}",
            epoch_float=float(epoch + 1),
            lr=lr,
            epoch_time=time.perf_counter() - self.epoch_start,
        )
        self.reset_epoch()
        return stats


def format_stats(stats: dict) -> str:
    parts = []
    for k, v in stats.items():
        if k.startswith("_"):
            continue
        parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
    return " | ".join(parts)
