"""Database engine, sessions and the column types every model shares."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

import psycopg
from sqlalchemy import JSON, DateTime, Dialect, Numeric, String, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction, sessionmaker
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python; `timestamptz` on PostgreSQL, naive UTC text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused: pass an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """An exact decimal amount. SQLite has no exact decimal type, so it stores the text form there."""

    impl = Numeric(20, 6)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(20, 6))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"money must be a Decimal, got {type(value).__name__}")
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value))


# JSONB on PostgreSQL (indexable), plain JSON elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")


# session.info key: the caller rolls back the whole transaction on any failure and then redoes the work one
# piece at a time (jobs/ingest.py), so code that would guard a piece with a SAVEPOINT can do without.
ALL_OR_NOTHING = "orderline.all_or_nothing"


def all_or_nothing(session: Session) -> bool:
    return bool(session.info.get(ALL_OR_NOTHING))


class Base(DeclarativeBase):
    pass


class Database:
    """One engine and session factory per process; workers and the web app each build their own."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            # No pre-ping: it costs a round trip on every checkout, i.e. on every webhook. After a database
            # restart the first statement on a stale connection fails (a 503 the sender retries) and
            # SQLAlchemy then drops every connection of the old pool at once.
            kwargs.update(pool_size=5, max_overflow=10, pool_timeout=5, pool_recycle=1800,
                          connect_args={"connect_timeout": 5})
        self.engine: Engine = create_engine(url, **kwargs)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin_immediate)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self._autocommit: Engine | None = None
        self._threads = threading.local()
        self._generation = 0  # of thread connections: bumped to replace them all (drop_thread_connections)

    @property
    def autocommit_engine(self) -> Engine:
        """PostgreSQL connections that stay in autocommit: a lone statement is one round trip, and no isolation
        level is switched on checkout and back on return (the job runner counting an attempt, every step)."""
        if self._autocommit is None:
            self._autocommit = create_engine(self.url, isolation_level="AUTOCOMMIT", pool_size=5, max_overflow=10,
                                             pool_timeout=5, pool_recycle=1800, connect_args={"connect_timeout": 5})
        return self._autocommit

    def thread_connection(self) -> psycopg.Connection[Any]:
        """This thread's own autocommitted psycopg connection (PostgreSQL), for the webhook receiver's one
        insert: checking a connection out of a pool and back in cost a webhook more than its HMAC (py-spy,
        16 connections). A web process has as many as it has threads."""
        held = getattr(self._threads, "held", None)
        if held is not None and held[0] == self._generation and not held[1].closed:
            return held[1]
        if held is not None:
            held[1].close()
        connection = psycopg.connect(self.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False), autocommit=True, connect_timeout=5)
        self._threads.held = (self._generation, connection)
        return connection

    def drop_thread_connections(self, broken: psycopg.Connection[Any] | None = None) -> None:
        """After a disconnect: `broken` is closed, and every other thread's connection (opened before the
        database went away too) is replaced before its next use."""
        self._generation += 1
        if broken is not None:
            broken.close()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any error."""
        with self.sessionmaker() as session, session.begin():
            yield session

    def forget_inherited_connections(self) -> None:
        """In a forked child: drop the parent's sockets without closing them under the parent."""
        self._threads = threading.local()
        self.engine.dispose(close=False)
        if self._autocommit is not None:
            self._autocommit.dispose(close=False)

    def dispose(self) -> None:
        held = getattr(self._threads, "held", None)
        if held is not None:
            self.drop_thread_connections(held[1])
        self.engine.dispose()
        if self._autocommit is not None:
            self._autocommit.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not pysqlite, decide when transactions start (see _sqlite_begin_immediate).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    # A deferred transaction that reads then writes can fail with "database is locked" without waiting;
    # taking the write lock up front makes concurrent writers queue on busy_timeout instead.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


# --- what a transaction keeps until it ends --------------------------------------------------------------

_TRANSACTION_KEY = "orderline.transaction"
T = TypeVar("T")


def transaction_info(session: Session) -> dict[str, Any]:
    """`session.info` for the current transaction only: emptied when it commits or rolls back (not when a
    savepoint ends). For what a transaction has locked, read once, or still owes before its commit."""
    info: dict[str, Any] = session.info.setdefault(_TRANSACTION_KEY, {})
    return info


@event.listens_for(Session, "after_transaction_end")
def _forget_transaction_info(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_TRANSACTION_KEY, None)


def once_per_transaction(session: Session, key: str, read: Callable[[], T]) -> T:
    """`read()` the first time this transaction asks for `key`, the same answer after: reference data that
    every order of a batch asks for (the shop's home country, whether any location is active)."""
    memo: dict[str, Any] = transaction_info(session).setdefault("once", {})
    if key not in memo:
        memo[key] = read()
    return cast(T, memo[key])
