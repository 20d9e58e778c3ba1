"""Test harness: real SQLite and PostgreSQL (every store test runs on both), real Redis on a db of its own.

Each run creates its own PostgreSQL database and claims a Redis db number nobody else holds, so parallel
runs on one machine never see each other. PostgreSQL comes from ORDERLINE_TEST_POSTGRES (default: the local
server, database `test`); under CI it must be reachable, elsewhere its tests are skipped with a reason.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from redis import Redis
from rq import Queue, SimpleWorker

from app import create_app, migrate
from app.api.auth import create_token
from app.config import Settings
from app.models import Shop
from app.orders.types import Role
from app.store import Base, Database
from jobs.queues import ALL_QUEUES

PG_ADMIN_URL = os.environ.get("ORDERLINE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_BASE_URL = os.environ.get("ORDERLINE_TEST_REDIS", "redis://127.0.0.1:6379")
RUN_ID = f"{os.getpid()}_{secrets.token_hex(3)}"
SHOPIFY_TEST_SECRET = "hush-shopify-app-secret"


# --- PostgreSQL: one database per run ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"orderline_test_{RUN_ID}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {error.orig}")
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# --- Redis: one db number per run -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    control = Redis.from_url(f"{REDIS_BASE_URL}/0", socket_connect_timeout=3)
    try:
        databases = int(control.config_get("databases").get("databases", 16))
    except Exception as error:  # noqa: BLE001
        pytest.fail(f"Redis is needed for the tests and is not reachable at {REDIS_BASE_URL}: {error}")
    # db 0 is left to people; a claim key with a TTL marks a db as taken by this run.
    for number in range(1, databases):
        if control.set(f"orderline:test-db-claim:{number}", RUN_ID, nx=True, ex=6 * 3600):
            break
    else:
        pytest.fail("every Redis db number is claimed by another test run")
    url = f"{REDIS_BASE_URL}/{number}"
    Redis.from_url(url).flushdb()
    yield url
    Redis.from_url(url).flushdb()
    control.delete(f"orderline:test-db-claim:{number}")


# --- the database under test ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _migrated() -> dict[str, bool]:
    return {}


def _database_url(request: pytest.FixtureRequest, tmp_root: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_root / 'orderline.sqlite3'}"


@pytest.fixture(scope="session")
def _sqlite_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sqlite")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, _sqlite_root: Path, _migrated: dict[str, bool]) -> Iterator[str]:
    url = _database_url(request, _sqlite_root)
    db = Database(url)
    if not _migrated.get(url):
        # Through the real migrations, so every test also proves they build the schema on this backend.
        migrate.upgrade(db)
        _migrated[url] = True
    yield url
    _empty(db)
    db.dispose()


def _empty(db: Database) -> None:
    try:
        _delete_everything(db)
    except sa.exc.OperationalError:  # a test restarted the database under this pool
        db.engine.dispose()
        _delete_everything(db)


def _delete_everything(db: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with db.engine.begin() as connection:
        if db.dialect == "postgresql":
            connection.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(sa.text(f"DELETE FROM {table}"))


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, redis_url=redis_url, instance_dir=tmp_path, secret_key="test-key",
                    job_backoff_base_seconds=0.2, job_backoff_cap_seconds=1.0, sweep_grace_seconds=0,
                    shopify_api_secret=SHOPIFY_TEST_SECRET)


@pytest.fixture
def app(settings: Settings) -> Iterator[Any]:
    app = create_app(settings)
    app.config["TESTING"] = True
    yield app
    runtime = app.extensions["orderline"]
    runtime.redis.flushdb()
    runtime.db.dispose()


@pytest.fixture
def runtime(app: Any) -> Any:
    return app.extensions["orderline"]


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def tokens(runtime: Any) -> dict[str, str]:
    with runtime.db.session() as session:
        return {role.value: create_token(session, f"test {role.value}", role) for role in Role}


@pytest.fixture
def auth(tokens: dict[str, str]) -> Any:
    """auth("operator") → headers carrying a token of that role."""

    def headers(role: str = "manager") -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[role]}"}

    return headers


@pytest.fixture
def manual_shop(runtime: Any) -> int:
    with runtime.db.session() as session:
        shop = Shop(channel="manual", name="Phone sales", external_id="phone", currency="SEK")
        session.add(shop)
        session.flush()
        return shop.id


@pytest.fixture
def run_jobs(runtime: Any) -> Any:
    """Run every queued job to completion in this process, as a worker would; returns whether any ran."""

    def run() -> bool:
        queues = [Queue(str(name), connection=runtime.redis) for name in ALL_QUEUES]
        return bool(SimpleWorker(queues, connection=runtime.redis).work(burst=True, logging_level="WARNING"))

    return run


def order_payload(shop_id: int, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "shop_id": shop_id,
        "currency": "SEK",
        "customer": {"name": "Anna Berg", "email": "anna.berg@example.se", "phone": "070-123 45 67"},
        "shipping_address": {"name": "Anna Berg", "line1": "Storgatan 12", "city": "Göteborg",
                             "postal_code": "411 01", "country_code": "SE"},
        "line_items": [{"sku": "TEE-BLK-M", "title": "T-shirt, black", "quantity": 2, "unit_price": "199.00"},
                       {"sku": "CAP-01", "title": "Cap", "quantity": 1, "unit_price": "149.50"}],
        "shipping_total": "49.00",
        "shipping_level": "standard",
    }
    payload.update(overrides)
    return payload
