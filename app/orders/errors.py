"""Errors the order domain raises; the web layer turns each into a precise HTTP answer."""

from __future__ import annotations

from typing import Any


class OrderError(Exception):
    code = "order_error"
    http_status = 400

    def __init__(self, message: str, *, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class NotFound(OrderError):
    code = "not_found"
    http_status = 404


class IllegalTransition(OrderError):
    code = "illegal_transition"
    http_status = 409

    def __init__(self, current: str, requested: str, *, action: str | None = None) -> None:
        what = f"cannot {action} an order" if action else "cannot move an order"
        super().__init__(f"{what} from '{current}' to '{requested}'")
        self.current = current
        self.requested = requested


class VersionConflict(OrderError):
    code = "version_conflict"
    http_status = 409

    def __init__(self, order_id: int, *, expected: int | None, current: int | None) -> None:
        if expected is not None and current is not None:
            message = (f"order {order_id} changed since you loaded it (you had version {expected}, "
                       f"it is now at version {current}); reload and try again")
        else:
            message = f"order {order_id} was changed by someone else at the same time; reload and try again"
        super().__init__(message)
        self.current_version = current


class InvalidOrder(OrderError):
    code = "validation_error"
    http_status = 422


class Forbidden(OrderError):
    code = "forbidden"
    http_status = 403


class Conflict(OrderError):
    code = "conflict"
    http_status = 409
