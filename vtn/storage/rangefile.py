"""A read-only, seekable file over a remote object, read by ranged requests in whole aligned blocks.

PyAV reads a container as a file: an MP4 whose index (moov) sits at the end is read at its start, then its end,
then from the first wanted frame on. `RangeFile` fetches the blocks a read touches (several missing neighbours in
one request) and keeps the last few in memory, so that going back and forth costs few requests and a clip of a
long video downloads only the blocks around it.
"""

import io
from collections import OrderedDict
from typing import Optional

from vtn.storage.backends import StorageError, backend_of

BLOCK_SIZE = 4 << 20  # bytes of one request at least (the file's last block may be shorter)
CACHED_BLOCKS = 4


class RangeFile(io.RawIOBase):
    """`path` (a URL) as a binary file: read, readinto, seek, tell. `size`: the object's size when the caller
    knows it already (else one size request). `requests` and `bytes_read` count what it fetched."""

    def __init__(
        self, path: str, block_size: int = BLOCK_SIZE, size: Optional[int] = None, blocks: int = CACHED_BLOCKS
    ):
        super().__init__()
        if block_size <= 0:
            raise ValueError(f"block_size must be positive, got {block_size}")
        self.path = str(path)
        self.block_size = int(block_size)
        self.backend = backend_of(self.path)
        self.size = int(size) if size is not None else self.backend.size(self.path)
        self.max_blocks = max(1, int(blocks))
        self.requests = 0
        self.bytes_read = 0
        self._pos = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()  # block index -> its bytes, least recent first

    @property
    def name(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"RangeFile({self.path!r}, {self.size} bytes, block_size={self.block_size})"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence}")
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        self._checkClosed()
        view = memoryview(buffer).cast("B")
        want = max(0, min(len(view), self.size - self._pos))
        done = 0
        while done < want:
            index = self._pos // self.block_size
            data = self._from_block(index, (self._pos + want - done - 1) // self.block_size)
            offset = self._pos - index * self.block_size
            take = min(len(data) - offset, want - done)
            if take <= 0:
                raise StorageError(f"{self.path}: ended at byte {self._pos} of {self.size} (changed while being read?)")
            view[done : done + take] = memoryview(data)[offset : offset + take]
            done += take
            self._pos += take
        return done

    def read(self, size: Optional[int] = -1) -> bytes:
        self._checkClosed()
        left = max(0, self.size - self._pos)
        buffer = bytearray(left if size is None or size < 0 else min(size, left))
        got = self.readinto(buffer)
        return bytes(buffer[:got]) if got < len(buffer) else bytes(buffer)

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        self._blocks.clear()
        super().close()

    def _from_block(self, index: int, last: int) -> bytes:
        """The bytes from the start of block `index`: the cached block, or blocks index..last fetched in one
        request up to the first one cached (each then cached)."""
        if index in self._blocks:
            self._blocks.move_to_end(index)
            return self._blocks[index]
        stop = index
        while stop < last and stop + 1 not in self._blocks:
            stop += 1
        start = index * self.block_size
        data = self.backend.read_range(self.path, start, min(self.size, (stop + 1) * self.block_size))
        self.requests += 1
        self.bytes_read += len(data)
        for k in range(index, stop + 1):
            piece = data[(k - index) * self.block_size : (k - index + 1) * self.block_size]
            if piece:
                self._blocks[k] = piece
                self._blocks.move_to_end(k)
        while len(self._blocks) > self.max_blocks:
            self._blocks.popitem(last=False)
        return data


class _ClosingWith:
    """`obj` with every attribute of it, whose close() also closes `file` (a container read from a RangeFile)."""

    def __init__(self, obj, file):
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_file", file)

    def __getattr__(self, name):
        return getattr(self._obj, name)

    def __setattr__(self, name, value):
        setattr(self._obj, name, value)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"{self._obj!r} reading {self._file!r}"

    def close(self) -> None:
        try:
            self._obj.close()
        finally:
            self._file.close()


def closing_with(obj, file):
    """`obj` (e.g. a PyAV container opened on `file`) such that closing it closes `file` too: PyAV does not close
    a file object it was given."""
    return _ClosingWith(obj, file)


def open_remote(path: str, opener, size: Optional[int] = None, block_size: int = 0):
    """`opener(file)` (e.g. av.open) on a RangeFile of `path` (`block_size` 0: BLOCK_SIZE), as an object whose
    close() also closes the file; the file is closed at once when `opener` fails."""
    file = RangeFile(path, block_size=block_size or BLOCK_SIZE, size=size)
    try:
        return closing_with(opener(file), file)
    except BaseException:
        file.close()
        raise
