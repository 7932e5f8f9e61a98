"""Servers for the storage tests, each on 127.0.0.1 and a free port, in threads of the test process:

- `start_s3_server()`: moto's S3-compatible server (a real HTTP endpoint, as MinIO or Ceph would be);
- `RangeHTTPServer(root)`: static files with Range requests (http.server's own handler ignores Range);
- `FaultProxy(upstream)`: forwards each request to `upstream`, or answers it with the next planned fault
  (an HTTP status, a reset connection, a slow answer) to exercise the retries.

Each counts the requests it got; `stop()` (or leaving a `with` block) shuts it down and joins its threads with a
timeout.
"""

import os
import re
import socket
import struct
import threading
import urllib.parse
from http import client as http_client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JOIN_TIMEOUT = 10.0  # seconds to wait for a server thread at stop
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}


def start_s3_server():
    """moto's S3 server on 127.0.0.1 and a free port: (endpoint URL, stop function)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()

    def stop():
        stopper = threading.Thread(target=server.stop, daemon=True)
        stopper.start()
        stopper.join(JOIN_TIMEOUT)

    return f"http://{host}:{port}", stop


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released): an unreachable endpoint."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 in a thread, with a request count; a context manager."""

    def __init__(self, handler):
        self.lock = threading.Lock()
        self.requests = 0
        self.methods: dict = {}
        self.stopping = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def count(self, method: str) -> None:
        with self.lock:
            self.requests += 1
            self.methods[method] = self.methods.get(method, 0) + 1

    def reset_counts(self) -> None:
        with self.lock:
            self.requests = 0
            self.methods = {}

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(JOIN_TIMEOUT)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers
    disable_nagle_algorithm = True  # no 40 ms Nagle / delayed-ACK stall between headers and body
    timeout = 10  # an idle kept-alive connection ends its thread after this

    def log_message(self, *args):
        pass

    def reply(self, status: int, body: bytes = b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _FileHandler(_Handler):
    def do_HEAD(self):
        self.serve()

    def do_GET(self):
        self.serve()

    def serve(self):
        owner = self.server.owner
        owner.count(self.command)
        if self.command == "HEAD" and not owner.head:
            return self.reply(405, b"HEAD not allowed")
        relative = urllib.parse.unquote(urllib.parse.urlparse(self.path).path).lstrip("/")
        path = os.path.realpath(os.path.join(owner.root, relative))
        if not path.startswith(owner.root + os.sep) or not os.path.isfile(path):
            return self.reply(404, b"not found")
        size = os.path.getsize(path)
        span = self.headers.get("Range") if owner.ranges else None
        if span is None:
            return self.send_file(200, path, 0, size, [])
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", span.strip())
        if not match or match.group(1) == match.group(2) == "":
            return self.reply(400, b"bad range")
        if match.group(1) == "":  # the last N bytes
            start, end = max(0, size - int(match.group(2))), size
        else:
            start = int(match.group(1))
            end = min(size, int(match.group(2)) + 1) if match.group(2) else size
        if start >= size:
            return self.reply(416, b"", [("Content-Range", f"bytes */{size}")])
        self.send_file(206, path, start, end, [("Content-Range", f"bytes {start}-{end - 1}/{size}")])

    def send_file(self, status, path, start, end, headers):
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(end - start) if self.command == "GET" else b""
        self.send_response(status)
        for name, value in [*headers, ("Accept-Ranges", "bytes"), ("Content-Length", str(end - start))]:
            self.send_header(name, value)
        self.end_headers()
        with self.server.owner.lock:  # counted before the client can see the bytes
            self.server.owner.bytes_sent += len(data)
        self.wfile.write(data)


class RangeHTTPServer(_Server):
    """The files under `root` over HTTP with Range requests (206 and Content-Range; 416 past the end).
    `head=False`: HEAD is refused (405), as some servers do; `ranges=False`: Range is ignored (200, the whole
    file). Counts `requests`, `methods` ({method: count}) and `bytes_sent` (of bodies)."""

    def __init__(self, root, head: bool = True, ranges: bool = True):
        self.root = os.path.realpath(str(root))
        self.head, self.ranges = head, ranges
        self.bytes_sent = 0
        super().__init__(_FileHandler)

    def reset_counts(self) -> None:
        super().reset_counts()
        with self.lock:
            self.bytes_sent = 0


class _ProxyHandler(_Handler):
    def do_GET(self):
        self.handle_one()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def handle_one(self):
        proxy = self.server.owner
        fault = proxy.next_fault(self.command)
        body = self.body()
        if fault == "reset":  # close with RST, no answer
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if fault is not None and fault.startswith("slow:"):  # the answer after S seconds
            if proxy.stopping.wait(float(fault.split(":", 1)[1])):
                return
        elif fault not in (None, "cut", "whole"):
            return self.reply(int(fault), f"injected fault {fault}".encode())
        try:
            self.forward(proxy, body, cut=fault == "cut", whole=fault == "whole")
        except OSError:  # the client gave up (after a slow answer) or the upstream went away
            self.close_connection = True

    def forward(self, proxy, body: bytes, cut: bool = False, whole: bool = False):
        dropped = HOP_BY_HOP | ({"range"} if whole else set())
        headers = {k: v for k, v in self.headers.items() if k.lower() not in dropped}
        if body or "Content-Length" in self.headers or "chunked" in self.headers.get("Transfer-Encoding", ""):
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
            headers["Content-Length"] = str(len(body))
        upstream = http_client.HTTPConnection(proxy.host, proxy.port, timeout=JOIN_TIMEOUT)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            self.send_response(response.status, response.reason)
            skip = HOP_BY_HOP | {"content-length", "date", "server"}
            for name, value in response.getheaders():
                if name.lower() not in skip:
                    self.send_header(name, value)
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length if length is not None else str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data[: len(data) // 2] if cut else data)
            if cut:
                self.close_connection = True
        finally:
            upstream.close()


class FaultProxy(_Server):
    """An HTTP proxy on 127.0.0.1 in front of `upstream_url` (its `url` replaces the upstream's in a client):
    forwards every request (method, path, headers with Host, body) and returns the answer, except that each of
    the faults given to `plan` answers one request, in order: "503" (any HTTP status), "reset" (the connection
    closed with a reset, no answer), "slow:S" (the answer after S seconds), "cut" (the answer with half its body,
    then the connection closed), "whole" (the request forwarded without its Range header, as a server that
    ignores Range answers it); "ok" passes its request through. Counts `requests` and `faults`."""

    def __init__(self, upstream_url: str):
        parts = urllib.parse.urlparse(upstream_url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.planned: list = []
        self.faults = 0
        super().__init__(_ProxyHandler)

    def plan(self, faults) -> "FaultProxy":
        """Answer the next requests with `faults`, one each, then pass requests through again."""
        with self.lock:
            self.planned = [str(f) for f in faults]
        return self

    def next_fault(self, method: str):
        self.count(method)
        with self.lock:
            if not self.planned:
                return None
            fault = self.planned.pop(0)
            if fault == "ok":
                return None
            self.faults += 1
            return fault
