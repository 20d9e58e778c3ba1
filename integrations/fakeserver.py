"""The plumbing every loopback fake API shares (`<provider>/fake.py`): a threaded HTTP server on 127.0.0.1,
started and stopped from tests, that hands each request to one hook and writes back what it returns.

    class FakeThing(LoopbackServer[RecordedRequest]):
        thread_name = "fake-thing"

        def answer(self, method, path, headers, body):      # runs on the server's threads
            return 200, {}, {"ok": True}                      # (status, extra headers, JSON value)

    with FakeThing() as fake:
        requests.get(fake.url + "/anything")

`answer` gives the body as a JSON value (`encode` writes it, `content_type` labels it), as bytes (sent as they
are: put a Content-Type in the headers), or None (an empty body, no Content-Type); status 0 drops the
connection without answering. `Faults` is a queue of injected faults (fail the next requests, hold them);
what a fault answers is each provider's business. Provider-specific routes, auth and error shapes stay in
the provider's fake: nothing here knows any API.
"""

from __future__ import annotations

import json
import ssl
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

RecordT = TypeVar("RecordT")
# (HTTP status, extra headers, body: a JSON value, bytes, or None); status 0 = hang up without answering.
Reply = tuple[int, Mapping[str, str], Any]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it (path without the query string, the query's last values)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def split_target(target: str) -> tuple[str, dict[str, str]]:
    """A request target's path and query parameters (the last value of a repeated one)."""
    parts = urlsplit(target)
    return parts.path, {name: values[-1] for name, values in parse_qs(parts.query).items()}


def header(headers: Mapping[str, str], name: str, default: str = "") -> str:
    """A header's value, whatever case the client wrote its name in."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), default)


def retry_after_header(seconds: float | None) -> dict[str, str]:
    """A Retry-After header for `seconds`, or no header for None."""
    return {} if seconds is None else {"Retry-After": f"{seconds:g}"}


# --- faults -----------------------------------------------------------------------------------------------


@dataclass
class Fault:
    """One injected fault: hold the request `hang` seconds, then answer `status` with `headers` and `body`
    (None: the provider's usual error for that status) instead of the real answer, or, without a status,
    answer normally and hold the answer `hang_after` seconds. `match` (a substring of "METHOD /path") picks
    the requests it applies to; `after` lets that many of them through first."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    hang: float = 0.0
    hang_after: float = 0.0
    match: str | None = None
    after: int = 0


class Faults:
    """A thread-safe queue of faults, each taken by the first request it matches."""

    def __init__(self) -> None:
        self._queue: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault, times: int = 1) -> None:
        """Queue `times` copies of `fault` (its `after` counts before the first of them only)."""
        with self._lock:
            self._queue.extend(replace(fault, after=fault.after if index == 0 else 0) for index in range(times))

    def take(self, target: str = "") -> Fault | None:
        """The fault for a request to `target` ("METHOD /path"), or None to answer it normally."""
        with self._lock:
            for index, fault in enumerate(self._queue):
                if fault.match is None or fault.match in target:
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    return self._queue.pop(index)
        return None


# --- the server -------------------------------------------------------------------------------------------


class LoopbackServer(Generic[RecordT]):
    """Owns the listening socket and its thread; subclasses implement `answer` (and record into `requests`)."""

    thread_name = "fake-server"
    content_type = "application/json"
    protocol_version = "HTTP/1.1"
    server_version = BaseHTTPRequestHandler.server_version

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.requests: list[RecordT] = []
        self._host, self._port = host, port
        self._lock = threading.RLock()
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._scheme = "http"

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is None:
            self._bind()
        assert self._server is not None
        self._released.clear()
        # A short poll keeps stop() quick: tests start and stop one fake each.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()  # requests held by a fault end now
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            if thread is not None:
                server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def root(self) -> str:
        """http://127.0.0.1:<port> (https with a TLS context), without any API prefix."""
        if self._server is None:
            raise RuntimeError("the fake is not started")
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    @property
    def url(self) -> str:
        return self.root

    def _bind(self) -> None:
        """Open the listening socket (done by `start`, or earlier by a fake whose URL is wanted before)."""
        owner = self

        class Handler(_Handler):
            fake = owner
            protocol_version = owner.protocol_version
            server_version = owner.server_version

        server = _QuietServer((self._host, self._port), Handler)
        context = self.ssl_context()
        if context is not None:
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._scheme = "https" if context is not None else "http"
        self._server = server

    # --- for subclasses -----------------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext | None:
        """A server-side TLS context to serve HTTPS with; called each time the socket opens."""
        return None

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """(status, extra headers, body) for one request; runs on the server's threads."""
        raise NotImplementedError

    def encode(self, body: Any) -> bytes:
        """The bytes of a JSON answer."""
        return json.dumps(body).encode()

    def record(self, request: RecordT) -> None:
        with self._lock:
            self.requests.append(request)

    def hold(self, seconds: float) -> None:
        """Wait `seconds`, or until stop(): how a fault holds a request."""
        if seconds > 0:
            self._released.wait(seconds)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up on a held request closes its socket: expected, not worth a traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)  # a bug in a fake: printed to stderr


class _Handler(BaseHTTPRequestHandler):
    fake: LoopbackServer[Any]
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one write: otherwise Nagle plus delayed ACKs add ~40 ms to every answer.
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read the fake's `requests`, not stderr

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, headers, body = self.fake.answer(method, self.path, dict(self.headers.items()), raw)
        if status == 0:
            self.close_connection = True  # a hang that ended: drop the connection, answer nothing
            return
        if body is None:
            payload = b""
        else:
            payload = body if isinstance(body, bytes) else self.fake.encode(body)
        try:
            self.send_response(status)
            if payload and not any(name.lower() == "content-type" for name in headers):
                self.send_header("Content-Type", self.fake.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if payload:
                self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            pass  # the client timed out and left
