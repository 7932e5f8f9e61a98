"""The training loader alone for the preflight: how many clips per second it gives without the model."""

import time
from collections.abc import Iterator
from itertools import islice

from vtn.datasets import shuffle_dataset


def epochs_of_batches(loader) -> Iterator:
    """The batches of `loader` epoch after epoch, in the training order."""
    epoch = 0
    while True:
        shuffle_dataset(loader, epoch)
        yield from loader
        epoch += 1


def batch_clips(batch) -> int:
    """The clips of a batch (its labels' first dimension)."""
    return int(batch["label"].shape[0])


def measure_loader(loader, batches: int, warmup: int) -> float:
    """Clips per second of `loader` alone (no model), over `batches` batches after `warmup` ones."""
    iterator = epochs_of_batches(loader)
    for _ in range(warmup):
        next(iterator)
    start, clips = time.perf_counter(), 0
    for batch in islice(iterator, batches):
        clips += batch_clips(batch)
    seconds = time.perf_counter() - start
    iterator.close()
    return clips / max(seconds, 1e-9)
