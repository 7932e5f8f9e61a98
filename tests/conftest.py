import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vtn.launch.cli import register_components  # noqa: E402

register_components()  # as in the tools: every package registers its config checks


@pytest.fixture(autouse=True)
def _seeded():
    import torch

    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    """A tiny synthetic dataset (real mpeg4 files), generated once per test session."""
    from tests.helpers import TINY_SYNTHETIC
    from vtn.datasets.synthetic import SyntheticSpec, make_synthetic_dataset

    out = str(tmp_path_factory.mktemp("data") / "synthetic")
    make_synthetic_dataset(out, SyntheticSpec(**TINY_SYNTHETIC))
    return out


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server (tests/servers.py) on 127.0.0.1, started once per session: its endpoint URL."""
    from tests.servers import start_s3_server

    endpoint, stop = start_s3_server()
    yield endpoint
    stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """The standard AWS environment pointing at the moto server, fresh storage backends that read it, tiny retry
    waits, and a new empty bucket: yields "s3://<bucket>"."""
    import uuid

    from vtn.storage import retry
    from vtn.storage.backends import backend_of, forget_backends

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("VTN_STORAGE_BACKOFF", "0.01")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)  # no ~/.aws settings of the machine
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    forget_backends()
    retry.reset_policy()
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    backend_of("s3://" + bucket).request("s3://" + bucket, "CreateBucket", lambda c: c.create_bucket(Bucket=bucket))
    yield "s3://" + bucket
    forget_backends()
    retry.reset_policy()
