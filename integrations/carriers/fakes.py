"""What the fake carrier APIs (`<carrier>/fake.py`) share on top of `integrations.fakeserver`: every request
recorded, faults injected, each carrier's routes and JSON left to a subclass.

Faults, taken in order by the requests they match (`match` is a substring of "METHOD /path"):

* `fail_next(status)`: answer with that status and the carrier's error body (429 carries Retry-After);
* `hang_next(seconds)`: hold the request, then answer normally (the client times out first);
* `hang_after_next(seconds)`: do the work (buy the label), then hold the answer: "maybe bought".
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from integrations.fakeserver import (
    Fault,
    Faults,
    LoopbackServer,
    RecordedRequest,
    Reply,
    retry_after_header,
    split_target,
)

__all__ = ["Answer", "FakeCarrierServer", "Json", "RecordedRequest"]

Json = dict[str, Any]


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    # Sent as text/html instead of `body` as JSON: what a proxy in front of the API answers.
    html: str | None = None


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class FakeCarrierServer(LoopbackServer[RecordedRequest]):
    """Record, inject faults, answer JSON. Subclasses implement `authorized`, `error_body` and `route`."""

    thread_name = "fake-carrier"

    def __init__(self) -> None:
        super().__init__()
        self._faults = Faults()

    # --- faults -------------------------------------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1, *, retry_after: float | None = None,
                  message: str | None = None, match: str | None = None, html: bool = False) -> None:
        """Answer the next `times` matching requests with `status` (429 carries `Retry-After`).

        `html=True` answers with an HTML page instead of the carrier's JSON error, as a load balancer does.
        """
        headers = retry_after_header(retry_after if retry_after is not None else 1) if status == 429 else {}
        text = message or ("Too many requests" if status == 429 else "Internal server error")
        if html:
            headers["Content-Type"] = "text/html"
            body: Any = f"<html><body><h1>{status} {text}</h1></body></html>".encode()
        else:
            body = self.error_body(status, text)
        self._faults.add(Fault(status, headers, body, match=match), times)

    def hang_next(self, seconds: float, times: int = 1, *, match: str | None = None) -> None:
        """Hold the next `times` matching requests for `seconds` before doing anything."""
        self._faults.add(Fault(hang=seconds, match=match), times)

    def hang_after_next(self, seconds: float, times: int = 1, *, match: str | None = None) -> None:
        """Do the work of the next matching requests, then hold their answers for `seconds`."""
        self._faults.add(Fault(hang_after=seconds, match=match), times)

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

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        path, query = split_target(path)
        self.record(RecordedRequest(method, path, query, dict(headers), body, time.time()))
        fault = self._faults.take(f"{method} {path}") or Fault()
        self.hold(fault.hang)
        if fault.status is not None:
            return fault.status, fault.headers, fault.body
        answer = self._route(method, path, query, dict(headers), body)
        self.hold(fault.hang_after)
        if answer.html is not None:
            return answer.status, {"Content-Type": "text/html", **dict(answer.headers)}, answer.html.encode()
        return answer.status, dict(answer.headers), answer.body

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               raw: bytes) -> Answer:
        if not self.authorized(headers):
            return self.error(401, "The API key is missing or not valid.")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self.error(400, "The request body is not JSON.")
        try:
            return self.route(method, path, query, body)
        except (KeyError, TypeError, ValueError) as problem:
            return self.error(422, f"Invalid request: {problem}")

    def encode(self, body: Any) -> bytes:
        return json.dumps(body, default=_default).encode()

