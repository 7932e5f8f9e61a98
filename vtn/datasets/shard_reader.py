"""Reading samples out of tar shards with ranged requests: one sample (`SampleFetcher.fetch`), a run of
consecutive ones in one request (`fetch_run`), or a lane's stream in the planned order (`LaneReader`).

Offsets and sizes come from the index (shard_index.py), so a reader starts anywhere in a shard and never lists
or scans one. A sample is its video member's bytes; its json member is in the index already.
"""

import io
import tarfile
from typing import Callable, Optional

import numpy as np

from vtn import storage
from vtn.datasets.shard_index import ShardIndex
from vtn.video.decoder import VideoDecodeError

DEFAULT_READ_BYTES = 16 * 2**20


def video_member(data: bytes, where: str) -> bytes:
    """The bytes of the video member of one sample's tar bytes (its members other than `.json`)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                if member.isfile() and not member.name.endswith(".json"):
                    return tar.extractfile(member).read()
    except tarfile.TarError as e:
        raise VideoDecodeError(f"{where}: the shard's bytes of this sample are not a tar member ({e})") from e
    raise VideoDecodeError(f"{where}: the sample has no video member in its shard")


class SampleFetcher:
    """The video bytes of samples of one split's shards (`split_url`: the folder or prefix of index.json)."""

    def __init__(self, split_url: str, index: ShardIndex, read_bytes: int = DEFAULT_READ_BYTES):
        self.split_url, self.read_bytes = split_url, max(1, int(read_bytes))
        s = index.samples
        self.shard = np.asarray(s["shard"], dtype=np.int64)
        self.offset = np.asarray(s["offset"], dtype=np.int64)
        self.size = np.asarray(s["size"], dtype=np.int64)
        self.source = s["source"]
        self.shard_urls = [storage.join(split_url, shard["name"]) for shard in index.shards]
        self.requests = 0

    def where(self, sample: int) -> str:
        return f"{self.source[sample]} (sample {sample} of {self.shard_urls[self.shard[sample]]})"

    def adjacent(self, a: int, b: int) -> bool:
        """Whether sample b follows sample a in the same shard, byte for byte."""
        return self.shard[a] == self.shard[b] and self.offset[a] + self.size[a] == self.offset[b]

    def fetch(self, sample: int) -> bytes:
        return self.fetch_run([sample])[sample]

    def fetch_run(self, samples: list[int]) -> dict[int, bytes]:
        """The video bytes of consecutive samples of one shard (`adjacent` in a row), read in one request."""
        first, last = samples[0], samples[-1]
        start, end = int(self.offset[first]), int(self.offset[last] + self.size[last])
        try:
            data = storage.read_bytes(self.shard_urls[self.shard[first]], start, end)
        except storage.StorageError as e:
            raise VideoDecodeError(f"{self.where(first)}: cannot be read ({e})") from e
        self.requests += 1
        if len(data) != end - start:
            raise VideoDecodeError(
                f"{self.where(first)}: the shard ended after {len(data)} of the {end - start} bytes the index gives "
                "(a shard rewritten after its index? write the split again with tools/make_shards.py)"
            )
        out = {}
        for sample in samples:
            a = int(self.offset[sample]) - start
            out[sample] = video_member(data[a : a + int(self.size[sample])], self.where(sample))
        return out


class LaneReader:
    """The samples of one lane (shard_plan.EpochPlan) in output order, read front to back in runs of up to the
    fetcher's `read_bytes`; a sample waits in `held` until its turn. `start` outputs are taken as done (a resumed
    epoch): they are never read, unless a run spans them."""

    def __init__(self, fetcher: SampleFetcher, stream: np.ndarray, order: np.ndarray, start: int = 0):
        self.fetcher, self.stream, self.order = fetcher, stream, order
        self.pending = np.ones(len(stream), dtype=bool)
        self.pending[order[:start]] = False
        self.next_pos = 0
        self.held: dict[int, bytes] = {}

    def take(self, q: int, fetch: Optional[Callable[[int], bytes]] = None) -> bytes:
        """The video bytes of output `q` of the lane."""
        pos = int(self.order[q])
        if pos not in self.held:
            if pos < self.next_pos or not self.pending[pos]:  # asked again, or out of turn: fetched alone
                return (fetch or self.fetcher.fetch)(int(self.stream[pos]))
            while pos not in self.held:
                self._read_run()
        self.pending[pos] = False
        return self.held.pop(pos)

    def _read_run(self) -> None:
        n, pending = len(self.stream), self.pending
        while self.next_pos < n and not pending[self.next_pos]:
            self.next_pos += 1
        first = self.next_pos
        run, total = [first], int(self.fetcher.size[self.stream[first]])
        while first + len(run) < n:
            p = first + len(run)
            a, b = int(self.stream[p - 1]), int(self.stream[p])
            if (
                not pending[p]
                or not self.fetcher.adjacent(a, b)
                or total + self.fetcher.size[b] > self.fetcher.read_bytes
            ):
                break
            run.append(p)
            total += int(self.fetcher.size[b])
        try:
            got = self.fetcher.fetch_run([int(self.stream[p]) for p in run])
        except VideoDecodeError:
            self.next_pos = first + len(run)  # the run's other samples are fetched alone when their turn comes
            raise
        for p in run:
            self.held[p] = got[int(self.stream[p])]
        self.next_pos = first + len(run)
