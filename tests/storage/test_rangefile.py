"""RangeFile: a remote file read by ranged requests in aligned blocks, with a small LRU of blocks."""

import io
import random

import pytest

from tests.servers import RangeHTTPServer
from tests.storage import DATA
from vtn import storage
from vtn.storage.rangefile import RangeFile, closing_with

BLOCK = 1000  # DATA is 10 blocks


@pytest.fixture
def server(tmp_path):
    (tmp_path / "data.bin").write_bytes(DATA)
    with RangeHTTPServer(tmp_path) as server:
        yield server


def test_random_seeks_and_reads_give_the_file_bytes(server, s3_env):
    storage.write_bytes(s3_env + "/data.bin", DATA)
    rng = random.Random(0)
    for url, reads in ((server.url + "/data.bin", 200), (s3_env + "/data.bin", 40)):
        with RangeFile(url, block_size=BLOCK) as f:
            assert f.size == len(DATA) and f.seekable() and f.readable() and f.name == url
            for _ in range(reads):
                whence = rng.choice([io.SEEK_SET, io.SEEK_CUR, io.SEEK_END])
                offset = {io.SEEK_SET: rng.randrange(0, 10_500), io.SEEK_CUR: rng.randrange(-f.tell(), 3000)}.get(
                    whence, -rng.randrange(0, 10_000)
                )
                pos = f.seek(offset, whence)
                assert pos == f.tell()
                n = rng.choice([0, 1, 7, 999, 1000, 1001, 2500, 20_000])
                assert f.read(n) == DATA[pos : pos + n], (url, pos, n)
                assert f.tell() == pos + len(DATA[pos : pos + n])
            f.seek(0)
            assert f.read() == DATA and f.read() == b"" and f.read(10) == b""
            buffer = bytearray(2500)
            f.seek(8000)
            assert f.readinto(buffer) == 2000 and bytes(buffer[:2000]) == DATA[8000:]


def test_blocks_are_fetched_whole_once_and_kept_for_going_back(server):
    server.reset_counts()
    f = RangeFile(server.url + "/data.bin", block_size=BLOCK)
    assert server.methods == {"HEAD": 1}
    assert f.read(10) == DATA[:10] and f.requests == 1 and f.bytes_read == BLOCK
    assert f.read(980) == DATA[10:990] and f.requests == 1  # the same block
    f.seek(9995)
    assert f.read() == DATA[9995:] and f.requests == 2  # the moov at the end
    f.seek(500)
    assert f.read(1000) == DATA[500:1500] and f.requests == 3  # block 0 kept; block 1 fetched
    f.seek(2100)
    assert f.read(3000) == DATA[2100:5100] and f.requests == 4  # blocks 2..5 in one request
    assert server.methods["GET"] == 4 and server.bytes_sent == 7 * BLOCK
    f.close()
    with pytest.raises(ValueError):
        f.read(1)


def test_the_least_recently_used_block_goes_first(server):
    f = RangeFile(server.url + "/data.bin", block_size=BLOCK, blocks=2)
    for start in (0, 1000, 0):  # 0, 1, then 0 again from memory
        f.seek(start)
        f.read(10)
    assert f.requests == 2
    f.seek(2000)
    f.read(10)  # block 2 evicts block 1, the least recent
    f.seek(0)
    f.read(10)
    assert f.requests == 3
    f.seek(1000)
    f.read(10)
    assert f.requests == 4


def test_a_clip_of_a_ten_block_file_takes_fewer_requests_than_blocks(server):
    """PyAV-like: the start, the end (the index), then a stretch in the middle, read in its 32 KiB steps."""
    f = RangeFile(server.url + "/data.bin", block_size=BLOCK)
    for start, length in [(0, 300), (9700, 300), (0, 64), (4000, 1500), (5500, 1500), (4200, 100)]:
        f.seek(start)
        while length > 0:
            step = min(length, 128)
            assert f.read(step) == DATA[start : start + step]
            start, length = start + step, length - step
    assert f.requests == 5 < len(DATA) // BLOCK and f.bytes_read == 5 * BLOCK


def test_seek_errors_and_a_known_size(server):
    server.reset_counts()
    f = RangeFile(server.url + "/data.bin", block_size=BLOCK, size=len(DATA))
    assert server.requests == 0  # the size was given: no request until a read
    with pytest.raises(ValueError, match="negative seek position"):
        f.seek(-1)
    with pytest.raises(ValueError, match="invalid whence"):
        f.seek(0, 7)
    with pytest.raises(ValueError, match="block_size"):
        RangeFile(server.url + "/data.bin", block_size=0)
    with pytest.raises(storage.StorageError, match="does not exist"):
        RangeFile(server.url + "/missing.bin")
    with storage.open_read(server.url + "/data.bin", block_size=BLOCK) as opened:
        assert isinstance(opened, RangeFile) and opened.block_size == BLOCK and opened.read(3) == DATA[:3]
    assert opened.closed


def test_closing_with_closes_the_file_with_its_owner(server):
    class Owner:
        flags = 0

        def __init__(self):
            self.closed = False

        def close(self):
            self.closed = True

    owner, file = Owner(), RangeFile(server.url + "/data.bin", block_size=BLOCK)
    tied = closing_with(owner, file)
    tied.flags = tied.flags | 4  # attributes are the owner's, read and written
    assert owner.flags == 4 and not tied.closed
    with tied:
        pass
    assert owner.closed and file.closed
