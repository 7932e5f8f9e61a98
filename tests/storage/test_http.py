"""The http(s) backend against a local static file server that honours Range (tests/servers.py): sizes, ranged
reads, servers that refuse HEAD or ignore Range, and the one-line errors of what URLs cannot do."""

import pytest

from tests.servers import RangeHTTPServer
from tests.storage import DATA, check_missing, check_reads
from vtn import storage


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "a.bin").write_bytes(DATA)
    (root / "sub" / "b c.txt").write_bytes("b, ß\n".encode())
    (root / "empty.bin").write_bytes(b"")
    return root


@pytest.fixture
def server(served):
    with RangeHTTPServer(served) as server:
        yield server


def test_sizes_and_ranged_reads(server):
    check_reads(server.url + "/a.bin")
    check_missing(server.url + "/missing.bin")
    assert storage.size(server.url + "/empty.bin") == 0 and storage.read_bytes(server.url + "/empty.bin") == b""
    with storage.open_text(server.url + "/sub/b%20c.txt") as f:
        assert f.read() == "b, ß\n"
    with pytest.raises(
        storage.StorageError, match=r"^http://127\.0\.0\.1:\d+/missing\.bin does not exist \(HTTP 404\)$"
    ):
        storage.read_bytes(server.url + "/missing.bin", 0, 10)


def test_a_ranged_read_is_one_request_and_moves_only_its_bytes(server):
    server.reset_counts()
    before = storage.stats.snapshot()
    assert storage.read_bytes(server.url + "/a.bin", 5000, 5100) == DATA[5000:5100]
    assert server.methods == {"GET": 1} and server.bytes_sent == 100
    after = storage.stats.snapshot()
    assert after["requests"] - before["requests"] == 1 and after["bytes_read"] - before["bytes_read"] == 100


def test_a_server_that_refuses_head_gives_the_size_from_a_ranged_get(served):
    with RangeHTTPServer(served, head=False) as server:
        assert storage.size(server.url + "/a.bin") == len(DATA)
        assert storage.isfile(server.url + "/a.bin") and not storage.isfile(server.url + "/missing.bin")
        assert storage.size(server.url + "/empty.bin") == 0
        with pytest.raises(storage.StorageError, match="does not exist"):
            storage.size(server.url + "/missing.bin")
        assert server.methods["HEAD"] >= 1 and server.methods["GET"] >= 1


def test_a_server_that_ignores_range_still_gives_the_asked_bytes(served):
    with RangeHTTPServer(served, ranges=False) as server:
        check_reads(server.url + "/a.bin")
        server.reset_counts()
        assert storage.read_bytes(server.url + "/a.bin", 10, 20) == DATA[10:20]
        assert server.bytes_sent == len(DATA)  # the whole file came, the ten bytes were cut from it


def test_urls_cannot_be_listed_or_written(server, tmp_path):
    url = server.url + "/sub"
    assert not storage.isdir(url)
    calls = {
        "listed": [storage.listdir, storage.walk_files],
        "written": [lambda u: storage.write_bytes(u, b"x"), storage.remove, lambda u: storage.upload_file(__file__, u)],
    }
    for what, functions in calls.items():
        for call in functions:
            with pytest.raises(storage.StorageError) as error:
                call(url)
            assert str(error.value) == f"http(s) URLs cannot be {what}: {url}; use s3:// or a local path"
    assert storage.backends.backend_of("https://example.invalid/x") is not None  # https is registered too
