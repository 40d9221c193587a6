"""A real HTTP file server on 127.0.0.1 (random port) for the download tests.

It serves bytes from a dict, honours `Range: bytes=N-` (206, 416), and can be
told to misbehave per path: answer 404, answer 503 a few times, ignore Range
(200 with the whole file), or cut the connection after N bytes on the first
request(s).  Every request is recorded, so tests can assert that none was sent.
"""
import contextlib
import functools
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass(frozen=True)
class SeenRequest:
    path: str
    range: str | None


class FileServer:
    def __init__(self, files: dict[str, bytes] | None = None):
        self.files: dict[str, bytes] = dict(files or {})
        self.missing: set[str] = set()          # always 404
        self.ignore_range: set[str] = set()     # 200 + whole body even with Range
        self.cut_after: dict[str, int] = {}     # a GET sends N bytes, then hangs up...
        self.cut_requests: dict[str, int] = {}  # ...for this many GETs (default: the first)
        self.fail_times: dict[str, int] = {}    # that many 503s before serving
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        # A short poll interval makes shutdown() quick between tests.
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> "FileServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- helpers for tests ----------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def request_count(self) -> int:
        return len(self.requests)

    def requests_for(self, path: str) -> list[SeenRequest]:
        return [seen for seen in self.requests if seen.path == path]

    # -- called by the handler ------------------------------------------------
    def _record(self, path: str, range_header: str | None) -> int:
        """Record the request; returns how many came before it for path."""
        with self._lock:
            earlier = len(self.requests_for(path))
            self.requests.append(SeenRequest(path, range_header))
            return earlier

    def _cut_for(self, path: str, earlier: int) -> int | None:
        if path in self.cut_after and earlier < self.cut_requests.get(path, 1):
            return self.cut_after[path]
        return None

    def _take_failure(self, path: str) -> bool:
        with self._lock:
            if self.fail_times.get(path, 0) > 0:
                self.fail_times[path] -= 1
                return True
            return False


def _make_handler(server: FileServer):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            path = self.path.split("?", 1)[0]
            range_header = self.headers.get("Range")
            earlier = server._record(path, range_header)
            if path in server.missing or path not in server.files:
                return self._plain(404, b"not found\n")
            if server._take_failure(path):
                return self._plain(503, b"try again later\n")
            body = server.files[path]
            start = _range_start(range_header) if path not in server.ignore_range else None
            if start is not None and start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206 if start is not None else 200
            start = start or 0
            self.send_response(status)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            cut = server._cut_for(path, earlier)
            if cut is None:
                self.wfile.write(body[start:])
            else:
                self._send_then_hang_up(body[start:start + cut])

        def _send_then_hang_up(self, partial: bytes) -> None:
            self.wfile.write(partial)
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        def _plain(self, status: int, text: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args):   # keep pytest output clean
            pass

    return Handler


def _range_start(header: str | None) -> int | None:
    """Only the `bytes=N-` form the downloader sends."""
    if not header or not header.startswith("bytes=") or not header.endswith("-"):
        return None
    value = header[len("bytes="):-1]
    return int(value) if value.isdigit() else None


def closed_port_url(path: str = "/down") -> str:
    """A URL on a loopback port where nothing listens: connection refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


@contextlib.contextmanager
def serve_folder(folder: Path):
    """A plain static file server for `folder` on 127.0.0.1 (random port);
    yields its base URL.  What a lab's artifact server is to LAVA."""
    folder.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_QuietFolderHandler, directory=str(folder))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietFolderHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
