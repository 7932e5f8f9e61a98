"""The `s3` backend: object storage through boto3 (AWS S3, and MinIO, Ceph or GCS through their S3 API).

The endpoint, credentials and region come from boto3's standard resolution only: AWS_ENDPOINT_URL (or
AWS_ENDPOINT_URL_S3), AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_DEFAULT_REGION, ~/.aws/config
and ~/.aws/credentials; the region is us-east-1 where none is set. With an endpoint other than AWS's, buckets are
addressed by path (http://host/bucket/key, which every S3-compatible server takes) unless the config file says
otherwise. botocore's own retries are off: every request goes through retry.call, which retries, waits and counts.

The client is made in the process that first uses it (backend_of keeps one backend per process), so DataLoader
workers forked from a process that already read s3:// make their own connections.
"""

import os
import threading
from typing import Optional

import botocore.exceptions as bx
import urllib3.exceptions

from vtn.storage.backends import BACKENDS, Backend, NotFoundError, StorageError
from vtn.storage.retry import call, policy, reason, stats

# error codes of object storage that may pass when the request is made again
THROTTLED = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
}
TRANSIENT_STATUS = {429, 500, 502, 503, 504}
DENIED = {"AccessDenied", "Forbidden", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}
UNREACHABLE = (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ProxyConnectionError)
CREDENTIALS_HINT = "check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"


def split(url: str) -> tuple[str, str]:
    """(bucket, key) of `s3://bucket/key`; the key is "" for the bucket root (`s3://bucket`, `s3://bucket/`)."""
    bucket, _, key = str(url).split("://", 1)[1].partition("/")
    if not bucket:
        raise StorageError(f"{url}: no bucket name (expected s3://bucket/key)")
    return bucket, key


def _inner(error: BaseException) -> BaseException:
    """The botocore error inside a boto3 transfer error (S3UploadFailedError wraps the ClientError)."""
    cause = error.__cause__ or error.__context__
    return cause if isinstance(cause, (bx.ClientError, bx.BotoCoreError)) else error


def _code(error: BaseException) -> tuple[str, int]:
    """(error code, HTTP status) of a ClientError; ("", 0) for anything else."""
    if not isinstance(error, bx.ClientError):
        return "", 0
    response = error.response or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code, int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def transient(error: BaseException) -> bool:
    """Whether a failed request may succeed when made again: connection and timeout errors, a body cut short,
    throttling and server errors (not a missing object, a denied request or a bad one)."""
    error = _inner(error)
    if isinstance(error, bx.ClientError):
        code, status = _code(error)
        return code in THROTTLED or status in TRANSIENT_STATUS
    # urllib3's errors come through unwrapped from a response body read (a connection cut mid-body)
    transient_types = (bx.ConnectionError, bx.HTTPClientError, bx.IncompleteReadError, urllib3.exceptions.HTTPError)
    return isinstance(error, (*transient_types, ConnectionError, TimeoutError))


_sessions: dict = {}


def _session():
    """(botocore session, boto3 session over it) per AWS environment, kept for the process and the loader workers it
    forks: a session parses botocore's endpoint and service data once (0.3-0.4 s of a fresh worker's CPU), and a
    client made from a session a parent used costs about 0.01 s. Clients (and their connections) are still made per
    process. One boto3 session per botocore session: a second would register its client methods twice."""
    import boto3
    import botocore.session

    key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    if key not in _sessions:
        _sessions.clear()
        core = botocore.session.get_session()
        _sessions[key] = core, boto3.session.Session(botocore_session=core)
    return _sessions[key]


@BACKENDS.register_as("s3")
class S3Backend(Backend):
    """`s3://bucket/key` objects; a "folder" is a key prefix ending in `/`."""

    PAGE_SIZE = 1000  # keys per listing request (S3's most)

    def __init__(self):
        self._clients = {}  # request timeout -> boto3 client (configure may change the timeout)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the client and requests
    def client(self):
        """This process's boto3 client for the current request timeout (made on first use)."""
        timeout = policy().timeout
        with self._lock:
            if timeout not in self._clients:
                self._clients[timeout] = self._make_client(timeout)
            return self._clients[timeout]

    @staticmethod
    def _make_client(timeout: float):
        import botocore.config

        try:
            core, session = _session()
            style = core.get_scoped_config().get("s3", {}).get("addressing_style")
        except bx.ProfileNotFound as e:
            raise StorageError(f"AWS_PROFILE={os.environ.get('AWS_PROFILE', '')}: {e}") from e
        region = session.region_name or "us-east-1"
        settings = dict(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=16,
        )
        client = session.client("s3", region_name=region, config=botocore.config.Config(**settings))
        if style is None and "amazonaws.com" not in client.meta.endpoint_url:
            path_style = botocore.config.Config(s3={"addressing_style": "path"}, **settings)
            client = session.client("s3", region_name=region, config=path_style)
        return client

    def endpoint(self) -> str:
        return self.client().meta.endpoint_url

    def request(self, url: str, operation: str, fn):
        """`fn(client)` with retries; its errors as StorageError (NotFoundError for a missing object or bucket)."""
        client = self.client()
        try:
            return call(f"{url} ({operation})", lambda: fn(client), transient, lambda e, n: self._give_up(url, e, n))
        except StorageError:
            raise
        except Exception as e:
            raise self._error(url, _inner(e)) from e

    def _give_up(self, url: str, error: BaseException, attempts: int) -> str:
        error = _inner(error)
        if isinstance(error, UNREACHABLE):
            return (
                f"cannot reach the object storage at {self.endpoint()} for {url}: {reason(error)} (after {attempts} "
                "attempts); check AWS_ENDPOINT_URL"
            )
        return f"{url}: the object storage kept failing ({self._what(error)}) after {attempts} attempts"

    @staticmethod
    def _what(error: BaseException) -> str:
        code, status = _code(error)
        if not code:
            return reason(error)
        return f"HTTP {status}" if code == str(status) else f"{code}, HTTP {status}"

    def _error(self, url: str, error: BaseException) -> Exception:
        """The StorageError of a request that failed for good."""
        if isinstance(error, (bx.NoCredentialsError, bx.PartialCredentialsError)):
            return StorageError(f"{url}: no usable AWS credentials ({error}); {CREDENTIALS_HINT}")
        if not isinstance(error, bx.ClientError):
            return error if not isinstance(error, bx.BotoCoreError) else StorageError(f"{url}: {reason(error)}")
        code, status = _code(error)
        if code == "NoSuchBucket":
            return NotFoundError(f"{url}: bucket {split(url)[0]} does not exist (endpoint {self.endpoint()})")
        if code in ("NoSuchKey", "NotFound", "404") or status == 404:
            return NotFoundError(f"{url} does not exist")
        if code in DENIED or status == 403:
            return StorageError(f"{url}: access denied ({code or status}) at {self.endpoint()}; {CREDENTIALS_HINT}")
        message = error.response.get("Error", {}).get("Message", "")
        return StorageError(f"{url}: {code or status} {message} (endpoint {self.endpoint()})".replace("  ", " "))

    def _missing(self, url: str, error: NotFoundError) -> NotFoundError:
        """The error of an object not found by HEAD (which does not say whether the key or the bucket is
        missing): the bucket's when it is the bucket."""
        bucket = split(url)[0]
        try:
            self.request(f"s3://{bucket}", "HeadBucket", lambda c: c.head_bucket(Bucket=bucket))
        except NotFoundError:
            return NotFoundError(f"{url}: bucket {bucket} does not exist (endpoint {self.endpoint()})")
        return error

    def _head(self, url: str) -> Optional[dict]:
        bucket, key = split(url)
        if not key or key.endswith("/"):
            return None
        try:
            return self.request(url, "HeadObject", lambda c: c.head_object(Bucket=bucket, Key=key))
        except NotFoundError:
            return None

    def _pages(self, url: str, prefix: str, **options):
        """The pages of ListObjectsV2 under `prefix` (one request each)."""
        bucket = split(url)[0]
        args = dict(Bucket=bucket, Prefix=prefix, MaxKeys=self.PAGE_SIZE, **options)
        while True:
            page = self.request(url, "ListObjectsV2", lambda c: c.list_objects_v2(**args))
            yield page
            if not page.get("IsTruncated") or not page.get("NextContinuationToken"):
                return
            args["ContinuationToken"] = page["NextContinuationToken"]

    @staticmethod
    def _prefix(url: str) -> str:
        key = split(url)[1].strip("/")
        return key + "/" if key else ""

    # ------------------------------------------------------------------ Backend
    def isfile(self, path: str) -> bool:
        return self._head(path) is not None

    def isdir(self, path: str) -> bool:
        bucket, key = split(path)
        try:
            if not key.strip("/"):
                self.request(path, "HeadBucket", lambda c: c.head_bucket(Bucket=bucket))
                return True
            args = dict(Bucket=bucket, Prefix=self._prefix(path), MaxKeys=1)
            page = self.request(path, "ListObjectsV2", lambda c: c.list_objects_v2(**args))
        except NotFoundError:
            return False
        return page.get("KeyCount", len(page.get("Contents", []))) > 0

    def size(self, path: str) -> int:
        bucket, key = split(path)
        if not key or key.endswith("/"):
            raise StorageError(f"{path}: not an object (expected s3://bucket/key)")
        try:
            head = self.request(path, "HeadObject", lambda c: c.head_object(Bucket=bucket, Key=key))
        except NotFoundError as e:
            raise self._missing(path, e) from None
        return int(head["ContentLength"])

    def listdir(self, path: str) -> list[str]:
        prefix = self._prefix(path)
        names = set()
        for page in self._pages(path, prefix, Delimiter="/"):
            names.update(p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", []))
            names.update(o["Key"][len(prefix) :] for o in page.get("Contents", []))
        names.discard("")
        if not names and prefix:
            raise NotFoundError(f"{path}: no such folder (no object has the prefix {prefix})")
        return sorted(names)

    def walk_files(self, path: str) -> list[str]:
        bucket, prefix = split(path)[0], self._prefix(path)
        found = []
        for page in self._pages(path, prefix):
            found += [f"s3://{bucket}/{o['Key']}" for o in page.get("Contents", []) if not o["Key"].endswith("/")]
        return sorted(found)

    def read_range(self, path: str, start: int, end: Optional[int]) -> bytes:
        bucket, key = split(path)
        if end is not None and end <= start:
            self.size(path)  # nothing to read, but a missing object is still an error
            return b""
        args = dict(Bucket=bucket, Key=key)
        if start > 0 or end is not None:
            args["Range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))

        def get(client) -> bytes:
            try:
                response = client.get_object(**args)
            except bx.ClientError as e:
                if _code(e)[0] == "InvalidRange":
                    return b""  # `start` is at or past the end
                raise
            with response["Body"] as body:
                data = body.read()  # botocore checks the length against Content-Length (IncompleteReadError)
            if "Range" in args and not response.get("ContentRange"):  # the whole object: the range was ignored
                data = data[start:end]
            return data

        try:
            data = self.request(path, "GetObject", get)
        except NotFoundError as e:
            raise self._missing(path, e) from None
        stats.add(bytes_read=len(data))
        return data

    def write_bytes(self, path: str, data: bytes) -> None:
        bucket, key = self._object(path)
        self.request(path, "PutObject", lambda c: c.put_object(Bucket=bucket, Key=key, Body=data))

    def upload_file(self, local_path: str, path: str) -> None:
        bucket, key = self._object(path)
        if not os.path.isfile(local_path):
            raise NotFoundError(f"{local_path}: cannot be uploaded to {path} (no such file)")
        self.request(path, "upload", lambda c: c.upload_file(local_path, bucket, key))

    def remove(self, path: str) -> None:
        bucket, key = self._object(path)
        self.request(path, "DeleteObject", lambda c: c.delete_object(Bucket=bucket, Key=key))

    @staticmethod
    def _object(path: str) -> tuple[str, str]:
        bucket, key = split(path)
        if not key or key.endswith("/"):
            raise StorageError(f"{path}: not an object (expected s3://bucket/key)")
        return bucket, key
