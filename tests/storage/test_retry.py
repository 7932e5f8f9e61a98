"""Retries with backoff, through a fault-injecting proxy in front of moto's S3 server and of a static http server:
what may pass (5xx, resets, timeouts, cut bodies) is retried and counted and the read returns the right bytes;
what will not pass (404, 403) is not retried; when the attempts run out, or nothing listens, one clear line."""

import logging
import threading
import time

import pytest

from tests.servers import FaultProxy, RangeHTTPServer, free_port
from tests.storage import DATA
from vtn import storage
from vtn.storage import retry

FAULTS = ["503", "500", "reset", "slow:2.0", "cut"]  # each answers one request, then requests pass


def tight_policy():
    """Tiny waits, requests that time out after half a second, and attempts enough for FAULTS."""
    retry.reset_policy()
    retry.configure(retries=len(FAULTS) + 1, timeout=0.5, backoff=0.01)


@pytest.fixture
def policy():
    tight_policy()
    yield
    retry.reset_policy()


@pytest.fixture
def s3_proxied(s3_env, s3_server, monkeypatch):
    """(s3:// URL of an object holding DATA, the FaultProxy in front of moto that its requests go through)."""
    tight_policy()  # (s3_env reset it)
    storage.write_bytes(s3_env + "/data.bin", DATA)
    with FaultProxy(s3_server) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        storage.api.forget_backends()
        yield s3_env + "/data.bin", proxy
    storage.api.forget_backends()
    retry.reset_policy()


@pytest.fixture
def http_proxied(tmp_path, policy):
    """(http:// URL of a file holding DATA, the FaultProxy in front of the file server)."""
    (tmp_path / "data.bin").write_bytes(DATA)
    with RangeHTTPServer(tmp_path) as server, FaultProxy(server.url) as proxy:
        yield proxy.url + "/data.bin", proxy


@pytest.fixture(params=["s3", "http"])
def proxied(request):
    return request.getfixturevalue(f"{request.param}_proxied")


def test_failures_that_may_pass_are_retried_counted_and_logged(proxied, caplog):
    url, proxy = proxied
    storage.size(url)  # the connection is open and the client made: only the faults below count
    before, requests = storage.stats.snapshot(), proxy.requests
    proxy.plan(FAULTS)
    with caplog.at_level(logging.WARNING, logger="vtn.storage.retry"):
        assert storage.read_bytes(url, 1000, 3000) == DATA[1000:3000]
    after = storage.stats.snapshot()
    assert after["retries"] - before["retries"] == len(FAULTS) and after["failures"] == before["failures"]
    assert after["requests"] - before["requests"] == len(FAULTS) + 1 == proxy.requests - requests
    assert after["bytes_read"] - before["bytes_read"] == 2000 and proxy.faults == len(FAULTS)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == len(FAULTS) and all(url in line and "\n" not in line for line in lines)
    assert f"attempt 1 of {len(FAULTS) + 1} failed" in lines[0] and "503" in lines[0] and "retrying in" in lines[0]


def test_an_answer_with_the_whole_file_to_a_ranged_request_gives_the_asked_bytes(proxied):
    url, proxy = proxied
    proxy.plan(["whole", "whole"])
    assert storage.read_bytes(url, 1000, 1010) == DATA[1000:1010]
    assert storage.read_bytes(url, 9990) == DATA[9990:] and proxy.faults == 2


def test_a_write_is_retried_too(s3_proxied):
    url, proxy = s3_proxied
    proxy.plan(["503", "reset"])
    storage.write_bytes(url + ".copy", DATA[:100])
    assert storage.read_bytes(url + ".copy") == DATA[:100] and proxy.faults == 2


def test_more_faults_than_attempts_is_one_error_naming_the_url(proxied):
    url, proxy = proxied
    retry.configure(retries=3)
    before, requests = storage.stats.snapshot(), proxy.requests
    proxy.plan(["503"] * 3)
    with pytest.raises(storage.StorageError) as error:
        storage.read_bytes(url, 0, 10)
    message = str(error.value)
    assert url in message and "503" in message and "after 3 attempts" in message and "\n" not in message
    after = storage.stats.snapshot()
    assert after["failures"] - before["failures"] == 1 and after["retries"] - before["retries"] == 2
    assert proxy.requests - requests == 3
    assert storage.read_bytes(url, 0, 10) == DATA[:10]  # the faults are over


def test_missing_and_denied_are_not_retried(proxied, caplog):
    url, proxy = proxied
    storage.size(url)
    requests, retries = proxy.requests, storage.stats.snapshot()["retries"]
    assert not storage.isfile(url + ".missing")
    assert proxy.requests - requests == 1
    proxy.plan(["403"])
    with pytest.raises(storage.StorageError, match="access denied") as error:
        storage.read_bytes(url, 0, 10)
    if url.startswith("s3"):
        assert "AWS_ACCESS_KEY_ID" in str(error.value) and "AWS_PROFILE" in str(error.value)
    proxy.plan(["404"])
    with pytest.raises(storage.StorageError, match="does not exist"):
        storage.read_bytes(url, 0, 10)
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert not [m for m in retried if "403" in m or "404" in m or "Forbidden" in m or "Not Found" in m], retried
    # (a pooled connection the proxy closed after a fault may be retried once: that is not a retry of the answer)
    assert storage.stats.snapshot()["retries"] - retries <= 1


def test_an_unreachable_s3_endpoint_is_one_line_after_bounded_retries(s3_env, monkeypatch):
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    storage.api.forget_backends()
    tight_policy()
    retry.configure(retries=2)
    failures, start = storage.stats.snapshot()["failures"], time.monotonic()
    with pytest.raises(storage.StorageError) as error:
        storage.read_bytes(s3_env + "/k.bin")
    message = str(error.value)
    assert message.startswith(f"cannot reach the object storage at {endpoint} for {s3_env}/k.bin: ")
    assert message.endswith("(after 2 attempts); check AWS_ENDPOINT_URL") and "\n" not in message
    assert time.monotonic() - start < 5 and storage.stats.snapshot()["failures"] == failures + 1


def test_an_unreachable_http_server_is_one_line(policy):
    retry.configure(retries=2)
    url = f"http://127.0.0.1:{free_port()}/x.mp4"
    with pytest.raises(storage.StorageError, match=rf"^cannot reach the server of {url}: .*\(after 2 attempts\)$"):
        storage.size(url)


def test_the_policy_comes_from_configure_then_the_environment_then_defaults(monkeypatch):
    for name in ("VTN_STORAGE_RETRIES", "VTN_STORAGE_TIMEOUT", "VTN_STORAGE_BACKOFF"):
        monkeypatch.delenv(name, raising=False)
    retry.reset_policy()
    assert retry.policy() == retry.Policy(attempts=5, timeout=60.0, backoff=0.25)
    monkeypatch.setenv("VTN_STORAGE_RETRIES", "7")
    monkeypatch.setenv("VTN_STORAGE_TIMEOUT", "3.5")
    assert retry.policy() == retry.Policy(attempts=7, timeout=3.5, backoff=0.25)
    try:
        retry.configure(retries=2, backoff=0.0)
        assert retry.policy() == retry.Policy(attempts=2, timeout=3.5, backoff=0.0)
        retry.configure(timeout=1)
        assert retry.policy() == retry.Policy(attempts=2, timeout=1.0, backoff=0.0)
    finally:
        retry.reset_policy()
    monkeypatch.setenv("VTN_STORAGE_RETRIES", "many")
    with pytest.raises(storage.StorageError, match=r"^VTN_STORAGE_RETRIES='many' is not a number"):
        retry.policy()


def test_the_backoff_doubles_with_jitter_up_to_the_cap():
    for attempt, full in [(1, 0.25), (2, 0.5), (3, 1.0), (5, 4.0), (6, 8.0), (12, 8.0)]:
        waits = [retry.wait_before(attempt, 0.25) for _ in range(50)]
        assert all(full / 2 <= w <= full for w in waits) and len(set(waits)) > 1, attempt


def test_call_retries_only_what_may_pass_and_counts_from_threads(monkeypatch):
    monkeypatch.setenv("VTN_STORAGE_BACKOFF", "0")
    retry.reset_policy()
    tries = []

    def flaky():
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionResetError("reset by peer")
        return "ok"

    assert retry.call("x", flaky, lambda e: isinstance(e, ConnectionError)) == "ok" and len(tries) == 3
    tries.clear()
    with pytest.raises(ValueError):
        retry.call("x", lambda: tries.append(1) or int("bad"), lambda e: isinstance(e, ConnectionError))
    assert len(tries) == 1

    counts = retry.RequestStats()

    def add_many():
        for _ in range(2000):
            counts.add(requests=1, bytes_read=2)

    threads = [threading.Thread(target=add_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts.snapshot() == {"requests": 8000, "retries": 0, "failures": 0, "bytes_read": 16000}
    counts.reset()
    assert counts.snapshot()["requests"] == 0
