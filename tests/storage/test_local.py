"""The storage API on local paths (and file:// URLs): the behaviour the remote backends are held to."""

import pytest

from tests.storage import DATA, check_missing, check_reads, check_tree, check_upload
from vtn import storage


def test_every_function_on_a_local_folder(tmp_path):
    check_tree(str(tmp_path / "root"))
    check_upload(str(tmp_path / "root"), tmp_path)


def test_file_urls_and_missing_files(tmp_path):
    (tmp_path / "x.bin").write_bytes(DATA)
    check_reads(str(tmp_path / "x.bin"))
    check_reads(f"file://{tmp_path}/x.bin")
    check_missing(str(tmp_path / "missing.bin"))
    assert not storage.is_remote(str(tmp_path)) and storage.is_remote("s3://b/k") and storage.is_remote("HTTPS://h/x")
    with pytest.raises(storage.StorageError, match="cannot list the folder"):
        storage.listdir(str(tmp_path / "missing"))
    assert storage.walk_files(str(tmp_path / "missing")) == []


def test_open_read_of_a_local_path_is_a_plain_file(tmp_path):
    (tmp_path / "x.bin").write_bytes(DATA)
    with storage.open_read(str(tmp_path / "x.bin")) as f:
        assert f.read() == DATA and type(f).__name__ == "BufferedReader"
