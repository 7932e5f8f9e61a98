"""Checks shared by the tests of each storage backend: every API function behaves the same on a local folder,
in a bucket and (for reading) over http."""

import random

import pytest

from vtn import storage

# 10,000 bytes that differ from their neighbours: a shifted or cut range cannot compare equal by chance
DATA = random.Random(0).randbytes(10_000)


def check_reads(url: str, data: bytes = DATA) -> None:
    """size, isfile, exists and ranged reads (first, middle, last bytes; to the end; empty; past the end) of the
    file at `url` holding `data`."""
    n = len(data)
    assert storage.isfile(url) and storage.exists(url) and not storage.isdir(url)
    assert storage.size(url) == n
    assert storage.read_bytes(url) == data
    for start, end in [(0, 1), (0, 100), (1234, 5678), (n - 1, n), (n - 100, None), (0, None), (5000, n + 50)]:
        assert storage.read_bytes(url, start, end) == data[start:end], (start, end)
    assert storage.read_bytes(url, 300, 300) == b""
    assert storage.read_bytes(url, n) == b"" and storage.read_bytes(url, n + 10, n + 20) == b""
    with storage.open_read(url) as f:
        f.seek(n - 10)
        assert f.read() == data[-10:]
        f.seek(0)
        assert f.read(5) == data[:5] and f.tell() == 5


def check_missing(url: str) -> None:
    """A missing file: not a file, and one-line errors that name it."""
    assert not storage.isfile(url) and not storage.exists(url)
    for call in (storage.size, storage.read_bytes, lambda u: storage.read_bytes(u, 10, 20)):
        with pytest.raises(storage.StorageError, match="does not exist|No such file") as error:
            call(url)
        assert url in str(error.value) and "\n" not in str(error.value)
        assert isinstance(error.value, storage.api.NotFoundError)


def check_tree(root: str) -> None:
    """Writes, listing, walking, uploads and removal under `root` (a writable folder or prefix)."""
    join = storage.join
    storage.write_bytes(join(root, "a.bin"), DATA)
    storage.write_bytes(join(root, "sub", "b.txt"), "b, ß\n".encode())
    storage.write_bytes(join(root, "sub", "deeper", "c.bin"), b"c")
    storage.write_bytes(join(root, "subway.bin"), b"not in sub")
    check_reads(join(root, "a.bin"))
    assert storage.listdir(root) == ["a.bin", "sub", "subway.bin"]
    assert storage.listdir(join(root, "sub")) == ["b.txt", "deeper"]
    assert storage.walk_files(join(root, "sub")) == [join(root, "sub", "b.txt"), join(root, "sub", "deeper", "c.bin")]
    assert storage.walk_files(root) == sorted(storage.walk_files(root))
    assert len(storage.walk_files(root)) == 4
    assert storage.isdir(join(root, "sub")) and storage.exists(join(root, "sub"))
    assert not storage.isfile(join(root, "sub")) and not storage.isdir(join(root, "su"))
    with storage.open_text(join(root, "sub", "b.txt")) as f:
        assert f.read() == "b, ß\n"
    storage.write_bytes(join(root, "a.bin"), b"replaced")
    assert storage.read_bytes(join(root, "a.bin")) == b"replaced"
    storage.remove(join(root, "a.bin"))
    storage.remove(join(root, "a.bin"))  # already gone: nothing
    check_missing(join(root, "a.bin"))
    assert storage.listdir(root) == ["sub", "subway.bin"]


def check_upload(root: str, tmp_path, size: int = 100_000) -> None:
    local = tmp_path / "upload.bin"
    data = random.Random(1).randbytes(size)
    local.write_bytes(data)
    storage.upload_file(str(local), storage.join(root, "up", "loaded.bin"))
    assert storage.read_bytes(storage.join(root, "up", "loaded.bin")) == data
    with pytest.raises(storage.StorageError, match="no-such-file"):
        storage.upload_file(str(tmp_path / "no-such-file"), storage.join(root, "up", "x.bin"))
