"""Plumbing shared by the fake carrier APIs (`<carrier>/fake.py`): a threaded HTTP server on 127.0.0.1
that records every request and injects faults, leaving each carrier's routes and JSON to a subclass.

Faults, taken in order by the requests they match (`match` is a substring of "METHOD /path"):

* `fail_next(status)`: answer with that status and the carrier's error body (429 carries Retry-After);
* `hang_next(seconds)`: hold the request, then answer normally (the client times out first);
* `hang_after_next(seconds)`: do the work (buy the label), then hold the answer: "maybe bought".
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Json = dict[str, Any]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    # Sent as text/html instead of `body` as JSON: what a proxy in front of the API answers.
    html: str | None = None


@dataclass
class _Fault:
    match: str | None
    status: int | None = None
    retry_after: float | None = None
    message: str | None = None
    html: bool = False
    hang_before: float = 0.0
    hang_after: float = 0.0


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class FakeCarrierServer:
    """Start, stop, record, inject faults. Subclasses implement `authorized`, `error_body` and `route`."""

    thread_name = "fake-carrier"

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> FakeCarrierServer:
        owner = self

        class Handler(_Handler):
            fake = owner

        self._server = _Server(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=self.thread_name, daemon=True)
        thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def root(self) -> str:
        """http://127.0.0.1:<port>, without any API prefix."""
        if self._server is None:
            raise RuntimeError("the fake is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- faults -------------------------------------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1, *, retry_after: float | None = None,
                  message: str | None = None, match: str | None = None, html: bool = False) -> None:
        """Answer the next `times` matching requests with `status` (429 carries `Retry-After`).

        `html=True` answers with an HTML page instead of the carrier's JSON error, as a load balancer does.
        """
        with self._lock:
            self._faults.extend(_Fault(match, status=status, retry_after=retry_after, message=message, html=html)
                                for _ in range(times))

    def hang_next(self, seconds: float, times: int = 1, *, match: str | None = None) -> None:
        """Hold the next `times` matching requests for `seconds` before doing anything."""
        with self._lock:
            self._faults.extend(_Fault(match, hang_before=seconds) for _ in range(times))

    def hang_after_next(self, seconds: float, times: int = 1, *, match: str | None = None) -> None:
        """Do the work of the next matching requests, then hold their answers for `seconds`."""
        with self._lock:
            self._faults.extend(_Fault(match, hang_after=seconds) for _ in range(times))

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        target = f"{method} {path}"
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.match is None or fault.match in target:
                    return self._faults.pop(index)
        return None

    def requests_to(self, path_part: str, method: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests
                    if path_part in r.path and (method is None or r.method == method)]

    # --- for subclasses -----------------------------------------------------------------------------------

    def authorized(self, headers: dict[str, str]) -> bool:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        raise NotImplementedError

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        raise NotImplementedError

    def error(self, status: int, message: str) -> Answer:
        return Answer(status, self.error_body(status, message))

    # --- answering (handler threads) ----------------------------------------------------------------------

    def _answer(self, method: str, raw_path: str, headers: dict[str, str], raw: bytes) -> tuple[Answer, float]:
        parts = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append(RecordedRequest(method, parts.path, query, headers, raw, time.time()))
        fault = self._take_fault(method, parts.path)
        if fault is not None and fault.hang_before:
            time.sleep(fault.hang_before)
        if fault is not None and fault.status is not None:
            extra: tuple[tuple[str, str], ...] = ()
            if fault.status == 429:
                extra = (("Retry-After", f"{fault.retry_after if fault.retry_after is not None else 1:g}"),)
            default = "Too many requests" if fault.status == 429 else "Internal server error"
            if fault.html:
                page = f"<html><body><h1>{fault.status} {fault.message or default}</h1></body></html>"
                return Answer(fault.status, headers=extra, html=page), 0.0
            return Answer(fault.status, self.error_body(fault.status, fault.message or default), extra), 0.0
        if not self.authorized(headers):
            return self.error(401, "The API key is missing or not valid."), 0.0
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self.error(400, "The request body is not JSON."), 0.0
        try:
            answer = self.route(method, parts.path, query, body)
        except (KeyError, TypeError, ValueError) as problem:
            answer = self.error(422, f"Invalid request: {problem}")
        return answer, (fault.hang_after if fault is not None else 0.0)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a held request closes its socket: expected


class _Handler(BaseHTTPRequestHandler):
    fake: FakeCarrierServer
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one write: otherwise Nagle plus delayed ACKs add ~40 ms to every answer.
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read `requests`, not stderr

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
        answer, hold = self.fake._answer(method, self.path, dict(self.headers.items()), raw)
        if hold:
            time.sleep(hold)
        if answer.html is not None:
            payload, content_type = answer.html.encode(), "text/html"
        else:
            payload = b"" if answer.body is None else json.dumps(answer.body, default=_default).encode()
            content_type = "application/json"
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in answer.headers:
                self.send_header(name, value)
            self.end_headers()
            if payload:
                self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left
