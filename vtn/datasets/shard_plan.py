"""Which samples of a sharded split each process reads in an epoch, in which order: the same on every process,
computed from (RNG_SEED, epoch) and the index alone, never from the data.

The epoch's order: the shards in an order drawn from (seed, epoch), their samples in the order the shard holds
them. Rank r reads the r-th of `world` equal, contiguous parts of that order: `batches` batches of `batch` each,
the same number on every rank, whatever the counts of shards, ranks and workers (`batches` =
floor(samples / world / batch): the last samples of the epoch's order, fewer than `world * batch`, are left out,
other ones each epoch; nothing is seen twice).

A rank's part is cut into `lanes` contiguous streams, one per loader worker: batch j of the rank is lane j % lanes's
(j // lanes)-th batch, which is the worker the DataLoader hands batch j to. A lane reads its stream front to back
(byte runs of its shards, few and large requests) and shuffles it through a buffer of `buffer` samples: each
output is drawn from the buffer, which the next sample of the stream refills. The buffer's draws come from
(seed, epoch, rank, lane) and not from the data, so the whole order is known in advance, and a run resumed at
batch s of an epoch reads exactly the samples of batches s, s+1, ... of an uninterrupted run.
"""

from functools import cached_property

import numpy as np


def shard_starts(counts: list[int]) -> np.ndarray:
    """The id of each shard's first sample (samples are numbered shard after shard), and the total at the end."""
    return np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.int64))])


def epoch_order(counts: list[int], seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """Sample ids of the epoch in reading order: the shards permuted by (seed, epoch), each in its own order."""
    starts = shard_starts(counts)
    shards = np.random.default_rng([seed, epoch, 104729]).permutation(len(counts)) if shuffle else range(len(counts))
    parts = [np.arange(starts[s], starts[s + 1]) for s in shards]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def buffer_shuffle(length: int, buffer: int, rng: np.random.Generator) -> np.ndarray:
    """The output order of a stream of `length` items shuffled through a buffer of `buffer` items: output k is
    a position of the stream. Position p is output no earlier than p - buffer + 1 and is held at most until the
    stream ends, so a reader holds at most `buffer` items."""
    if buffer <= 1 or length <= 1:
        return np.arange(length)
    held = list(range(min(buffer, length)))
    out = np.empty(length, dtype=np.int64)
    nxt, k = len(held), 0
    while held:
        pick = int(rng.integers(len(held)))
        out[k] = held[pick]
        k += 1
        if nxt < length:
            held[pick] = nxt
            nxt += 1
        else:
            held[pick] = held[-1]
            held.pop()
    return out


class EpochPlan:
    """The samples of one rank in one epoch: `sample(j, t)` is the sample id of slot t of the rank's batch j.

    `lane_stream(lane)` gives the ids a lane reads, in stream order, and `lane_order(lane)` the positions of that
    stream in output order (see the module docstring)."""

    def __init__(self, counts, seed, epoch, rank, world, batch, lanes, buffer, shuffle=True):
        self.counts, self.seed, self.epoch, self.rank, self.world = list(counts), seed, epoch, rank, world
        self.batch, self.lanes, self.buffer, self.shuffle = batch, max(1, lanes), buffer, shuffle
        total = int(sum(self.counts))
        self.batches = (total // world) // batch
        self.order = epoch_order(self.counts, seed, epoch, shuffle)
        per_rank = self.batches * batch
        self.mine = self.order[rank * per_rank : (rank + 1) * per_rank]

    def lane_batches(self, lane: int) -> int:
        return len(range(lane, self.batches, self.lanes))

    @cached_property
    def _lane_starts(self) -> np.ndarray:
        sizes = [self.lane_batches(lane) * self.batch for lane in range(self.lanes)]
        return shard_starts(sizes)

    def lane_stream(self, lane: int) -> np.ndarray:
        """The sample ids lane `lane` reads, in stream order (a contiguous part of the rank's share)."""
        start, end = self._lane_starts[lane], self._lane_starts[lane + 1]
        return self.mine[start:end]

    def lane_order(self, lane: int) -> np.ndarray:
        """Positions in `lane_stream(lane)` in the order the lane outputs them."""
        if lane not in self._orders:
            rng = np.random.default_rng([self.seed, self.epoch, self.rank, lane, 15485863])
            length = self.lane_batches(lane) * self.batch
            self._orders[lane] = buffer_shuffle(length, self.buffer if self.shuffle else 1, rng)
        return self._orders[lane]

    @cached_property
    def _orders(self) -> dict:
        return {}

    def position(self, j: int, t: int) -> tuple[int, int]:
        """(lane, output position in the lane) of slot t of the rank's batch j."""
        if not 0 <= j < self.batches or not 0 <= t < self.batch:
            raise IndexError(f"batch {j} slot {t} is outside the epoch's {self.batches} batches of {self.batch}")
        return j % self.lanes, (j // self.lanes) * self.batch + t

    def sample(self, j: int, t: int) -> int:
        lane, q = self.position(j, t)
        return int(self.lane_stream(lane)[self.lane_order(lane)[q]])
