"""The s3 backend against moto's S3 server (a real HTTP endpoint on 127.0.0.1, as MinIO or Ceph would be), with
the endpoint and credentials from the standard AWS environment variables (the s3_env fixture)."""

import pytest
import torch.utils.data

from tests.storage import DATA, check_missing, check_reads, check_tree, check_upload
from vtn import storage
from vtn.storage.backends import backend_of
from vtn.storage.s3 import S3Backend, split


def test_every_function_on_a_bucket(s3_env, tmp_path):
    check_tree(s3_env + "/root")
    check_upload(s3_env, tmp_path)


def test_the_bucket_root_in_both_spellings(s3_env):
    assert storage.isdir(s3_env) and storage.isdir(s3_env + "/")  # an empty bucket is a folder
    assert storage.listdir(s3_env) == [] and storage.walk_files(s3_env + "/") == []
    storage.write_bytes(s3_env + "/x/y.bin", DATA)
    storage.write_bytes(s3_env + "/top.bin", b"t")
    for root in (s3_env, s3_env + "/"):
        assert storage.listdir(root) == ["top.bin", "x"]
        assert storage.walk_files(root) == [s3_env + "/top.bin", s3_env + "/x/y.bin"]
        assert not storage.isfile(root)
    assert split(s3_env) == (s3_env[5:], "") and split(s3_env + "/a/b") == (s3_env[5:], "a/b")
    check_reads(s3_env + "/x/y.bin")
    assert storage.isdir(s3_env + "/x/") and storage.listdir(s3_env + "/x/") == ["y.bin"]


def test_folder_markers_are_no_entries(s3_env):
    """Keys ending in "/" (the "folders" S3 consoles create) are neither names nor files."""
    bucket = split(s3_env)[0]
    client = backend_of(s3_env).client()
    for key in ("m/", "m/sub/"):
        client.put_object(Bucket=bucket, Key=key, Body=b"")
    storage.write_bytes(s3_env + "/m/sub/f.bin", b"f")
    assert storage.listdir(s3_env + "/m") == ["sub"] and storage.listdir(s3_env + "/m/sub") == ["f.bin"]
    assert storage.walk_files(s3_env + "/m") == [s3_env + "/m/sub/f.bin"]
    assert not storage.isfile(s3_env + "/m/") and storage.isdir(s3_env + "/m")


def test_a_big_upload_goes_in_parts_and_reads_back(s3_env, tmp_path):
    check_upload(s3_env, tmp_path, size=9 * 2**20)  # over boto3's 8 MiB multipart threshold


def test_listings_follow_every_page(s3_env, monkeypatch):
    monkeypatch.setattr(S3Backend, "PAGE_SIZE", 2)
    names = [f"f{i}.bin" for i in range(5)] + ["sub1/a", "sub2/b", "sub3/c"]
    for name in names:
        storage.write_bytes(f"{s3_env}/p/{name}", b"x")
    before = storage.stats.snapshot()["requests"]
    assert storage.listdir(s3_env + "/p") == [f"f{i}.bin" for i in range(5)] + ["sub1", "sub2", "sub3"]
    assert storage.stats.snapshot()["requests"] - before >= 4  # 8 entries, 2 a page
    assert storage.walk_files(s3_env + "/p") == sorted(f"{s3_env}/p/{n}" for n in names)


def test_missing_keys_buckets_and_folders_are_one_line_each(s3_env):
    check_missing(s3_env + "/missing.bin")
    with pytest.raises(storage.StorageError) as error:
        storage.size(s3_env + "/missing.bin")
    assert str(error.value) == f"{s3_env}/missing.bin does not exist"
    endpoint = backend_of(s3_env).endpoint()
    for call in (storage.size, storage.read_bytes, storage.listdir, storage.walk_files, storage.remove):
        with pytest.raises(storage.StorageError) as error:
            call("s3://no-such-bucket-here/k.bin")
        message = str(error.value)
        assert (
            message
            == f"s3://no-such-bucket-here/k.bin: bucket no-such-bucket-here does not exist (endpoint {endpoint})"
        )
    assert not storage.isfile("s3://no-such-bucket-here/k") and not storage.isdir("s3://no-such-bucket-here")
    with pytest.raises(storage.StorageError, match=r"/nothing: no such folder \(no object has the prefix nothing/\)"):
        storage.listdir(s3_env + "/nothing")
    with pytest.raises(storage.StorageError, match="not an object"):
        storage.write_bytes(s3_env + "/", b"x")
    with pytest.raises(storage.StorageError, match="no bucket name"):
        storage.size("s3:///k")


def test_the_region_defaults_to_us_east_1_and_the_endpoint_comes_from_the_environment(s3_env, s3_server, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    storage.api.forget_backends()
    client = backend_of(s3_env).client()
    assert client.meta.region_name == "us-east-1" and client.meta.endpoint_url == s3_server
    assert client.meta.config.retries["total_max_attempts"] == 1  # our loop retries, not botocore's
    # a host name, not an IP: path-style URLs, which S3-compatible servers take without DNS per bucket
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.replace("127.0.0.1", "localhost"))
    storage.api.forget_backends()
    assert backend_of(s3_env).client().meta.config.s3["addressing_style"] == "path"
    storage.write_bytes(s3_env + "/k.bin", b"via localhost")
    assert storage.read_bytes(s3_env + "/k.bin") == b"via localhost"
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # AWS itself: boto3's own choice (no request is made here)
    storage.api.forget_backends()
    client = backend_of(s3_env).client()
    assert "amazonaws.com" in client.meta.endpoint_url and not (client.meta.config.s3 or {}).get("addressing_style")


def test_missing_credentials_are_one_line(s3_env, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role lookup
    storage.api.forget_backends()
    with pytest.raises(storage.StorageError, match=r"^s3://.*/k: no usable AWS credentials .*AWS_ACCESS_KEY_ID"):
        storage.size(s3_env + "/k")


def test_a_missing_profile_is_one_line(s3_env, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    storage.api.forget_backends()
    with pytest.raises(storage.StorageError, match="^AWS_PROFILE=no-such-profile: .*no-such-profile"):
        storage.size(s3_env + "/k")


class _Reads(torch.utils.data.Dataset):
    """Each item: the object's bytes, the worker's pid, and whether the worker reads through a backend (and
    client) of its own rather than the one it inherited from the parent at the fork."""

    def __init__(self, urls):
        self.urls = urls
        self.parent_backend = backend_of(urls[0])

    def __len__(self):
        return len(self.urls)

    def __getitem__(self, i):
        import os

        data = storage.read_bytes(self.urls[i])
        return data, os.getpid(), backend_of(self.urls[i]) is not self.parent_backend


def test_loader_workers_forked_after_the_parent_used_s3_make_their_own_client(s3_env):
    urls = [f"{s3_env}/clip{i}.bin" for i in range(6)]
    for i, url in enumerate(urls):
        storage.write_bytes(url, DATA[i * 100 : (i + 1) * 100])
    assert storage.read_bytes(urls[0]) == DATA[:100]  # the parent's client exists before the fork
    loader = torch.utils.data.DataLoader(
        _Reads(urls), batch_size=None, num_workers=2, multiprocessing_context="fork", timeout=60
    )
    got = list(loader)
    assert [bytes(data) for data, _, _ in got] == [DATA[i * 100 : (i + 1) * 100] for i in range(6)]
    assert len({int(pid) for _, pid, _ in got}) == 2 and all(own for _, _, own in got)
