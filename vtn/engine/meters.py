"""Training meters: loss, accuracy, decode failures and times of the steps, kept on the device and gathered from
every process once per log line (one host sync), with each rank's data-wait figures (data_wait.py) in the same
gather; and the log line's format."""

import logging
import time
from typing import Optional

import torch

from vtn.engine import distributed as du
from vtn.engine.data_wait import SUMMARIES, WaitWindow, shares, window_stats
from vtn.utils.logging import format_eta
from vtn.utils.metrics import topk_correct

logger = logging.getLogger(__name__)

STEP_SECONDS, DATA_WAIT_SECONDS = 6, 7  # columns of the meters' tensors (see TrainMeter._zeros)


class TrainMeter:
    """Accumulates loss and accuracy on the device and each step's data wait on the host; `log_iter` and
    `log_epoch` gather every process's figures (one collective), sum the meters and keep the data wait by rank."""

    def __init__(self, epoch_iters: int, max_epoch: int, device: torch.device):
        self.epoch_iters = epoch_iters
        self.max_epoch = max_epoch
        self.device = device
        self._iter_times: list[float] = []
        self.step_seconds = 0.0  # mean step time over every process at the last log line (the same on each)
        self.reset_window()
        self.reset_epoch()

    def _zeros(self):
        # loss sum, samples, top1 hits, top5 hits, samples with hard labels, decode failures, step seconds,
        # data-wait seconds
        return torch.zeros(8, dtype=torch.float64, device=self.device)

    def reset_window(self):
        self.window = self._zeros()
        self.window_data_time = 0.0
        self.window_iter_time = 0.0
        self.window_iters = 0
        self.wait = WaitWindow()

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
        row[STEP_SECONDS] = iter_time
        row[DATA_WAIT_SECONDS] = data_time
        self.window += row
        self.epoch += row
        self.window_data_time += data_time
        self.window_iter_time += iter_time
        self.window_iters += 1
        self.wait.add(data_time, iter_time)
        self._iter_times.append(iter_time)
        self._iter_times = self._iter_times[-200:]

    def _gather(self, stats: torch.Tensor, extra: tuple = ()) -> tuple[list[float], list[list[float]]]:
        """(the sums of `stats` over the processes, every process's row: its `stats` then `extra`), from one
        all-gather of a small fixed-size row per process."""
        row = torch.cat([stats, torch.tensor(extra, dtype=torch.float64, device=stats.device)])
        rows = du.all_gather_rows(row.unsqueeze(0)).tolist()
        sums = [sum(column) for column in zip(*rows)][: stats.numel()]
        return sums, rows

    @staticmethod
    def _summary(stats: list[float]) -> dict[str, float]:
        loss_sum, n, top1, top5, n_hard, failures = stats[:6]
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
        reduced, rows = self._gather(self.window, tuple(self.wait.row()))
        stats = self._summary(reduced)
        iters = max(self.window_iters, 1)
        self.step_seconds = reduced[STEP_SECONDS] / (du.get_world_size() * iters)
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
        stats.update(window_stats([row[self.window.numel() :] for row in rows]))
        self.reset_window()
        return stats

    def log_epoch(self, epoch: int, lr: float) -> dict:
        reduced, rows = self._gather(self.epoch)
        stats = self._summary(reduced)
        stats.update(
            _type="train_epoch",
            epoch=f"{epoch + 1}/{self.max_epoch}",
            epoch_float=float(epoch + 1),
            lr=lr,
            epoch_time=time.perf_counter() - self.epoch_start,
            data_wait_share=shares([r[DATA_WAIT_SECONDS] for r in rows], [r[STEP_SECONDS] for r in rows]),
        )
        self.reset_epoch()
        return stats


def format_stats(stats: dict) -> str:
    """The human line of `stats`: its numbers and strings, and the by-rank lists in short form (data_wait.py);
    the lists themselves are left to json_stats.log."""
    parts = []
    for k, v in stats.items():
        if k in SUMMARIES:
            parts.append(SUMMARIES[k](stats))
        elif k.startswith("_") or v is None or isinstance(v, (list, tuple, dict)):
            continue
        else:
            parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
    return " | ".join(p for p in parts if p)
