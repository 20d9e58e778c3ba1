"""The `orderline` command: serving, workers, migrations, tokens, shops and jobs."""

from __future__ import annotations

import json
import os
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup
from sqlalchemy import select

from app import create_app
from app.config import load_settings
from app.orders.types import Role
from app.runtime import Runtime


def _runtime() -> Runtime:
    return current_app.extensions["orderline"]  # type: ignore[no-any-return]


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group(cls=FlaskGroup, create_app=create_app, add_default_commands=False, add_version_option=False)
def cli() -> None:
    """Orderline: one order hub for every sales channel."""


# --- serving --------------------------------------------------------------------------------------------


def _dev_bootstrap(app: Flask) -> dict[str, str]:
    """First run on embedded defaults: a schema, a manual shop to put orders in, and an API token."""
    from app import migrate
    from app.api.auth import create_token
    from app.models import Shop

    runtime: Runtime = app.extensions["orderline"]
    migrate.upgrade(runtime.db)
    token_file = runtime.settings.instance_dir / "dev-api-token"
    with runtime.db.session() as session:
        if session.execute(select(Shop.id).where(Shop.channel == "manual")).first() is None:
            session.add(Shop(channel="manual", name="Phone and counter sales", external_id="manual",
                             currency="USD"))
        if not token_file.exists():
            token = create_token(session, "development", Role.MANAGER)
            token_file.write_text(token)
            token_file.chmod(0o600)
    return {"token": token_file.read_text().strip()}


@cli.command("serve", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-worker", is_flag=True, help="Do not start a worker beside the web server.")
def serve(host: str, port: int, no_worker: bool) -> None:
    """Run Orderline. With no settings: SQLite, an embedded Redis and a worker, for a first look.

    In production (ORDERLINE_ENV=production) this runs gunicorn as the Procfile does; run workers apart.
    """
    settings = load_settings()
    if settings.is_production:
        os.execvp("gunicorn", ["gunicorn", "--config", "python:app.gunicorn_conf",  # noqa: S606,S607
                               "--bind", f"{host}:{port}", "app:create_app()"])
    from app.devserver import redis_reachable, start_embedded_redis, start_worker_process

    env: dict[str, str] = {}
    if not redis_reachable(settings.redis_url):
        env["REDIS_URL"] = start_embedded_redis(settings.instance_dir / "redis")
        os.environ.update(env)
        settings = settings.with_overrides(redis_url=env["REDIS_URL"])
    app = create_app(settings)
    bootstrap = _dev_bootstrap(app)
    if not no_worker:
        start_worker_process(env)
    base = f"http://{host}:{port}"
    click.secho(f"""
Orderline is running at {base}
  development defaults: {'embedded Redis, ' if env else ''}database {settings.sqlalchemy_url}
  API token (manager):  {bootstrap['token']}
  Try:  curl -s {base}/healthz
        curl -s -H 'Authorization: Bearer {bootstrap['token']}' {base}/api/v1/orders
  API description:  {base}/api/v1/openapi.json
""", fg="green", err=True)
    from werkzeug.serving import run_simple

    run_simple(host, port, app, threaded=True, use_reloader=False)


@cli.command("worker")
@click.argument("queues", nargs=-1)
@click.option("--burst", is_flag=True, help="Run what is queued, then exit.")
@click.option("--simple", is_flag=True, help="Run jobs in this process instead of a fork per job.")
def worker(queues: tuple[str, ...], burst: bool, simple: bool) -> None:
    """Work the job queues (all of them by default), with the scheduler and the outbox sweeper."""
    from jobs.worker import run_worker

    run_worker(_runtime(), queues, burst=burst, simple=simple)


# --- database -------------------------------------------------------------------------------------------


@cli.group("db")
def db_group() -> None:
    """Database migrations (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the database to REVISION (the newest by default)."""
    from app import migrate

    migrate.upgrade(_runtime().db, revision)
    click.echo(f"database at {migrate.current_revision(_runtime().db)}")


@db_group.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Migrate the database back to REVISION."""
    from app import migrate

    migrate.downgrade(_runtime().db, revision)


@db_group.command("current")
def db_current() -> None:
    """Show the database's migration revision."""
    from app import migrate

    click.echo(migrate.current_revision(_runtime().db) or "empty (run `orderline db upgrade`)")


@db_group.command("revision")
@click.option("-m", "--message", required=True)
def db_revision(message: str) -> None:
    """Write a new migration from the difference between the models and the database."""
    from app import migrate

    migrate.revision(_runtime().db, message)


# --- tokens ---------------------------------------------------------------------------------------------


@cli.group("tokens")
def tokens_group() -> None:
    """API tokens."""


@tokens_group.command("create")
@click.option("--name", required=True, help="Who or what uses it.")
@click.option("--role", type=click.Choice([r.value for r in Role]), default="operator", show_default=True)
def tokens_create(name: str, role: str) -> None:
    """Create a token; it is shown once and stored only as a hash."""
    from app.api.auth import create_token

    with _runtime().db.session() as session:
        token = create_token(session, name, Role(role))
    click.echo(token)


@tokens_group.command("list")
def tokens_list() -> None:
    """List tokens (never their values)."""
    from app.models import ApiToken

    with _runtime().db.session() as session:
        for t in session.execute(select(ApiToken).order_by(ApiToken.id)).scalars():
            state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "active"
            click.echo(f"{t.id}\t{t.name}\t{t.role}\t{state}\tlast used {t.last_used_at or 'never'}")


@tokens_group.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke a token by id."""
    from app.models import ApiToken
    from app.store import utcnow

    with _runtime().db.session() as session:
        token = session.get(ApiToken, token_id)
        if token is None:
            raise click.ClickException(f"no token {token_id}")
        token.revoked_at = utcnow()
    click.echo(f"token {token_id} revoked")


# --- shops ----------------------------------------------------------------------------------------------


@cli.group("shops")
def shops_group() -> None:
    """Shops on every channel."""


@shops_group.command("add")
@click.option("--channel", required=True, type=click.Choice(["shopify", "woocommerce", "bigcommerce", "manual"]))
@click.option("--name", required=True)
@click.option("--external-id", required=True,
              help="Shopify: the myshopify domain; WooCommerce: the store URL; BigCommerce: the store hash")
@click.option("--currency", default="USD", show_default=True)
@click.option("--timezone", default="UTC", show_default=True)
@click.option("--credential", "credentials", multiple=True, metavar="KEY=ENV_VAR",
              help="A credential read from an environment variable, e.g. access_token=SHOPIFY_TOKEN (repeatable).")
@click.option("--webhook-secret-env", metavar="ENV_VAR", help="Environment variable holding the webhook secret.")
def shops_add(channel: str, name: str, external_id: str, currency: str, timezone: str,
              credentials: tuple[str, ...], webhook_secret_env: str | None) -> None:
    """Register a shop. Secrets come from the environment, never the command line, and are stored encrypted."""
    from app.api.schemas import ShopIn
    from app.models import Shop

    data: dict[str, Any] = {"channel": channel, "name": name, "external_id": external_id, "currency": currency,
                            "timezone": timezone}
    if credentials:
        data["credentials"] = {key: _from_env(var) for key, var in (_pair(c) for c in credentials)}
    if webhook_secret_env:
        data["webhook_secret"] = _from_env(webhook_secret_env)
    errors = ShopIn().validate(data)
    if errors:
        raise click.ClickException(f"not a valid shop: {errors}")
    box = _runtime().secrets
    with _runtime().db.session() as session:
        shop = Shop(channel=channel, name=name, external_id=external_id, currency=currency, timezone=timezone)
        if "credentials" in data:
            shop.credentials_encrypted = box.seal(data["credentials"])
        if "webhook_secret" in data:
            shop.webhook_secret_encrypted = box.seal(data["webhook_secret"])
        session.add(shop)
        session.flush()
        click.echo(f"shop {shop.id} registered: {channel} {external_id}")


def _pair(text: str) -> tuple[str, str]:
    key, sep, var = text.partition("=")
    if not sep or not key or not var:
        raise click.BadParameter(f"'{text}' is not KEY=ENV_VAR", param_hint="--credential")
    return key, var


def _from_env(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise click.ClickException(f"${var} is empty or not set")
    return value


@shops_group.command("list")
def shops_list() -> None:
    """List shops."""
    from app.models import Shop

    with _runtime().db.session() as session:
        for s in session.execute(select(Shop).order_by(Shop.id)).scalars():
            click.echo(f"{s.id}\t{s.channel}\t{s.external_id}\t{s.name}\t{'active' if s.active else 'inactive'}")


@shops_group.command("register-webhooks")
@click.argument("shop_id", type=int)
def shops_register_webhooks(shop_id: int) -> None:
    """Subscribe PUBLIC_BASE_URL's receiver to the shop's order topics, through the channel's API."""
    from integrations import channel
    from jobs.ingest import client_for

    runtime = _runtime()
    with runtime.db.session() as session:
        shop = _shop(session, shop_id)
        spec = channel(shop.channel)
        path = f"/webhooks/{shop.channel}" + ("" if spec.signs_with_app_secret else f"/{shop.id}")
        address = runtime.settings.public_base_url.rstrip("/") + path
        created = client_for(runtime, shop).register_webhooks(address, sorted(spec.topics))
    click.echo(f"registered {len(created)} webhook subscription(s) to {address}")


@shops_group.command("backfill")
@click.argument("shop_id", type=int)
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3650))
def shops_backfill(shop_id: int, days: int) -> None:
    """Import the shop's orders of the last DAYS days (first install), through the ingest path."""
    from datetime import timedelta

    from app.store import utcnow
    from jobs.reconcile import poll

    runtime = _runtime()
    with runtime.db.session() as session:
        shop = _shop(session, shop_id)
        run = poll(runtime, session, shop, since=utcnow() - timedelta(days=days), kind="backfill")
    click.echo(f"backfill of shop {shop_id}: {run.orders_seen} order(s) imported or brought up to date")


@shops_group.command("reconcile")
@click.argument("shop_id", type=int)
def shops_reconcile(shop_id: int) -> None:
    """Poll the shop's channel now for orders the webhooks missed (workers do this every 5 minutes)."""
    from app.store import utcnow
    from jobs.reconcile import FIRST_POLL_LOOKBACK, OVERLAP, poll

    runtime = _runtime()
    with runtime.db.session() as session:
        shop = _shop(session, shop_id)
        since = (shop.reconciled_until - OVERLAP) if shop.reconciled_until else utcnow() - FIRST_POLL_LOOKBACK
        run = poll(runtime, session, shop, since=since, kind="reconcile")
    click.echo(f"reconciled shop {shop_id}: {run.orders_seen} seen, {run.missed_creates} missed order(s), "
               f"{run.missed_updates} missed update(s)")


def _shop(session: Any, shop_id: int) -> Any:
    from app.models import Shop

    shop = session.get(Shop, shop_id)
    if shop is None:
        raise click.ClickException(f"no shop {shop_id}")
    return shop


# --- inbound webhooks -----------------------------------------------------------------------------------


@cli.group("inbound")
def inbound_group() -> None:
    """The webhook inbox: what arrived, what failed, replaying it."""


@inbound_group.command("list")
@click.option("--status", type=click.Choice(["received", "processed", "ignored", "stale", "failed"]))
@click.option("--limit", default=50, show_default=True)
def inbound_list(status: str | None, limit: int) -> None:
    """List deliveries, newest first (failed ones with their reason)."""
    from app.models import InboundEvent

    with _runtime().db.session() as session:
        query = select(InboundEvent).order_by(InboundEvent.id.desc()).limit(limit)
        if status:
            query = query.where(InboundEvent.status == status)
        rows = session.execute(query).scalars().all()
        if not rows:
            click.echo("no deliveries")
        for r in rows:
            when = f"{r.received_at:%Y-%m-%d %H:%M:%S}"
            click.echo(f"{r.id}\t{r.provider}\t{r.topic}\t{r.status}\t{when}\t{r.error or ''}")


@inbound_group.command("replay")
@click.argument("inbound_ids", nargs=-1, type=int, required=True)
def inbound_replay(inbound_ids: tuple[int, ...]) -> None:
    """Process stored deliveries again, after a fix (any status)."""
    from app import inbox
    from jobs.ingest import wake

    with _runtime().db.session() as session:
        for inbound_id in inbound_ids:
            try:
                inbox.replay(session, inbound_id)
            except LookupError as error:
                raise click.ClickException(str(error)) from None
    wake(_runtime())
    click.echo(f"replaying {len(inbound_ids)} delivery(ies)")


# --- jobs -----------------------------------------------------------------------------------------------


@cli.group("jobs")
def jobs_group() -> None:
    """Background jobs: what failed, and running it again."""


@jobs_group.command("failed")
@click.option("--json", "as_json", is_flag=True)
def jobs_failed(as_json: bool) -> None:
    """List failed jobs with their last error."""
    from app.models import OutboxEvent

    with _runtime().db.session() as session:
        rows = session.execute(select(OutboxEvent).where(OutboxEvent.status == "failed")
                               .order_by(OutboxEvent.id)).scalars().all()
    if as_json:
        _echo_json([{"id": r.id, "job": r.job, "payload": r.payload, "attempts": r.attempts,
                     "error": r.last_error, "finished_at": r.finished_at} for r in rows])
        return
    if not rows:
        click.echo("no failed jobs")
    for r in rows:
        click.echo(f"{r.id}\t{r.job}\t{json.dumps(r.payload)}\tattempts={r.attempts}\t{r.last_error}")


@jobs_group.command("requeue")
@click.argument("job_ids", nargs=-1, type=int)
@click.option("--all", "requeue_all", is_flag=True, help="Requeue every failed job.")
def jobs_requeue(job_ids: tuple[int, ...], requeue_all: bool) -> None:
    """Run failed jobs again, once the cause is fixed."""
    from jobs.relay import requeue_failed

    if not job_ids and not requeue_all:
        raise click.UsageError("name the job ids to requeue, or pass --all")
    done = requeue_failed(_runtime(), None if requeue_all else job_ids)
    missing = sorted(set(job_ids) - set(done))
    click.echo(f"requeued {len(done)} job(s)" + (f"; not failed or unknown: {missing}" if missing else ""))


@jobs_group.command("sweep")
def jobs_sweep() -> None:
    """Enqueue outbox work that never reached Redis or was lost there (workers do this every 15 s)."""
    from jobs.relay import sweep

    click.echo(f"enqueued {sweep(_runtime())} job(s)")


# --- stock ----------------------------------------------------------------------------------------------


@cli.group("locations")
def locations_group() -> None:
    """Stock locations (warehouses)."""


@locations_group.command("add")
@click.option("--code", required=True, help="Short code used in stock files and on the timeline, e.g. STHLM.")
@click.option("--name", required=True)
@click.option("--country", required=True, help="ISO 3166 two-letter country code, e.g. SE.")
@click.option("--priority", default=100, show_default=True, type=int, help="Lower ships first.")
@click.option("--timezone", default="UTC", show_default=True)
@click.option("--line1")
@click.option("--line2")
@click.option("--city")
@click.option("--region")
@click.option("--postal-code")
@click.option("--inactive", is_flag=True, help="Keep its stock figures but never allocate from it.")
def locations_add(code: str, name: str, country: str, priority: int, timezone: str, line1: str | None,
                  line2: str | None, city: str | None, region: str | None, postal_code: str | None,
                  inactive: bool) -> None:
    """Add a stock location."""
    from marshmallow import ValidationError
    from sqlalchemy.exc import IntegrityError

    from app.api.inventory import LocationIn
    from app.models import Location

    raw = {"code": code, "name": name, "country_code": country.upper(), "priority": priority,
           "timezone": timezone, "active": not inactive, "line1": line1, "line2": line2, "city": city,
           "region": region, "postal_code": postal_code}
    try:
        data = LocationIn().load({k: v for k, v in raw.items() if v is not None})
    except ValidationError as error:
        raise click.ClickException(f"not a valid location: {error.messages}") from None
    try:
        with _runtime().db.session() as session:
            location = Location(**data)
            session.add(location)
            session.flush()
            click.echo(f"location {location.id} added: {location.code} ({location.name}, {location.country_code})")
    except IntegrityError:
        raise click.ClickException(f"there is already a location {data['code']}") from None


@locations_group.command("list")
def locations_list() -> None:
    """List stock locations in the order they ship from."""
    from app.models import Location

    with _runtime().db.session() as session:
        rows = session.execute(select(Location).order_by(Location.priority, Location.code)).scalars().all()
        if not rows:
            click.echo("no locations")
        for loc in rows:
            click.echo(f"{loc.id}\t{loc.code}\t{loc.name}\t{loc.country_code}\tpriority {loc.priority}\t"
                       f"{'active' if loc.active else 'inactive'}")


@cli.group("stock")
def stock_group() -> None:
    """Stock levels per location and SKU."""


@stock_group.command("import")
@click.argument("file", type=click.File("rb"))
def stock_import(file: Any) -> None:
    """Set counted stock from a CSV FILE (columns location, sku, on_hand and optionally bin; `-` reads
    standard input). All rows or none; backordered orders the stock completes are allocated."""
    from app import stock

    data = file.read()
    try:
        with _runtime().db.session() as session:
            result = stock.import_stock(session, data)
    except stock.StockImportError as error:
        lines = "\n".join(f"  {problem}" for problem in error.problems)
        more = "\n  … (stopped counting)" if error.truncated else ""
        raise click.ClickException(f"nothing was imported; the file has problems:\n{lines}{more}") from None
    click.echo(f"{result.rows} row(s): {result.created} created, {result.updated} updated, "
               f"{result.unchanged} unchanged; {len(result.queued_orders)} waiting order(s) queued for allocation")


@stock_group.command("show")
@click.option("--sku", help="Only this SKU.")
@click.option("--location", help="Only this location (its code).")
def stock_show(sku: str | None, location: str | None) -> None:
    """Show stock: on hand, reserved for orders, available, and the bin."""
    from app import stock

    with _runtime().db.session() as session:
        rows = session.execute(stock.stock_query(sku=sku, location=location)).scalars().all()
        if not rows:
            click.echo("no stock")
            return
        click.echo("LOCATION\tSKU\tON_HAND\tRESERVED\tAVAILABLE\tBIN")
        for level in rows:
            click.echo(f"{level.location.code}\t{level.sku}\t{level.on_hand}\t{level.reserved}\t"
                       f"{level.available}\t{level.bin or ''}")


@cli.command("picklist")
@click.argument("location")
@click.option("--order", "order_ids", type=int, multiple=True, help="Only this order id (repeatable).")
@click.option("--html", "html_file", type=click.File("w", encoding="utf-8"),
              help="Write the printable HTML page to this file (`-` for standard output).")
@click.option("--pdf", "pdf_file", type=click.File("wb"), help="Write an A4 PDF to this file (for printers).")
def picklist(location: str, order_ids: tuple[int, ...], html_file: Any, pdf_file: Any) -> None:
    """Print the pick list of LOCATION (its code): by bin then SKU, with per-bin totals and the orders."""
    from app import picking
    from app.orders.errors import NotFound

    try:
        with _runtime().db.session() as session:
            pick = picking.pick_list(session, location, order_ids=list(order_ids) or None)
    except NotFound as error:
        raise click.ClickException(error.message) from None
    if pdf_file is not None:
        from app.pdf import pick_list_pdf

        pdf_file.write(pick_list_pdf(pick))
        click.echo(f"pick list of {pick.location} ({pick.total} units) written to {pdf_file.name}", err=True)
        return
    if html_file is not None:
        html_file.write(picking.render_pick_list(pick))
        if html_file.name != "<stdout>":
            click.echo(f"pick list of {pick.location} ({pick.total} units, {len(pick.orders)} order(s)) "
                       f"written to {html_file.name}")
        return
    click.echo(f"Pick list {pick.location} ({pick.location_name}): {pick.total} units, {len(pick.orders)} order(s)")
    if not pick.bins:
        click.echo("nothing to pick")
        return
    click.echo("BIN\tSKU\tQTY\tORDERS")
    for group in pick.bins:
        for line in group.lines:
            orders = ", ".join(f"#{o.number}×{o.quantity}" for o in line.orders)
            click.echo(f"{group.bin or '-'}\t{line.sku}\t{line.quantity}\t{orders}")
        click.echo(f"{group.bin or '-'}\ttotal\t{group.total}")
    for order in pick.orders:
        if order.split:
            elsewhere = ", ".join(f"{e.quantity}× {e.sku} from {e.location}" for e in order.elsewhere)
            click.echo(f"split: #{order.number} also ships {elsewhere}")


# --- shipping helper: orders retry, catalogue import --------------------------------------------------------


@cli.group("orders")
def orders_group() -> None:
    """Orders: resume a stopped step."""


@orders_group.command("retry")
@click.argument("order_id", type=int)
def orders_retry(order_id: int) -> None:
    """Resume ORDER_ID's pipeline where it stopped (a carrier or channel refused; the cause is fixed)."""
    from app import shipping
    from app.orders.errors import OrderError
    from app.orders.types import Actor

    try:
        with _runtime().db.session() as session:
            steps = shipping.retry_order(session, order_id, Actor.system("orderline orders retry"))
    except OrderError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"order {order_id}: queued {', '.join(steps)}")


# --- Slack: `orderline slack staff add|list|remove`, `orderline slack digest` ---
def _add_slack_commands() -> None:
    from app.slack_app import slack_cli

    cli.add_command(slack_cli)


_add_slack_commands()
# --- end Slack ---


@cli.group("catalogue")
def catalogue_group() -> None:
    """The product catalogue: weights, sizes and customs data per shop and SKU."""


@catalogue_group.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--shop", "shop_id", type=int, required=True, help="The shop whose catalogue it is.")
def catalogue_import(file: Any, shop_id: int) -> None:
    """Create or update products from a CSV FILE (sku and any of weight_grams, length_cm, width_cm,
    height_cm, hs_code, origin_country, tags; `-` reads standard input). All rows or none."""
    from app import catalogue
    from app.orders.errors import OrderError
    from app.stock import StockImportError

    try:
        with _runtime().db.session() as session:
            result = catalogue.import_products(session, shop_id, file.read())
    except StockImportError as error:
        lines = "\n".join(f"  {problem}" for problem in error.problems)
        raise click.ClickException(f"nothing was imported; the file has problems:\n{lines}") from None
    except OrderError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"{result.rows} row(s): {result.created} created, {result.updated} updated, "
               f"{result.unchanged} unchanged")


# --- demo (sandbox shops, order stream, dashboard) ------------------------------------------------------


@cli.command("demo", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--every", default=4.0, show_default=True, type=click.FloatRange(0.2, 3600),
              help="Seconds between orders (on average).")
@click.option("--burst", "burst", default=0, type=click.IntRange(0, 10000),
              help="Send a Black Friday burst of this many orders at the start.")
@click.option("--seed", "seed_value", type=int, help="Seed the order generator (the same stream every run).")
def demo(host: str, port: int, every: float, burst: int, seed_value: int | None) -> None:
    """Try Orderline in a minute: sandbox Shopify and WooCommerce shops send orders, a worker runs, and the
    staff dashboard shows them. Nothing leaves this machine. Refused in production."""
    from app import demo as demo_module
    from app.devserver import redis_reachable, start_embedded_redis, start_worker_process, stop_process

    settings = load_settings()
    if settings.is_production:
        raise click.ClickException("the demo uses sandboxes and development defaults; it is refused in production")
    if not redis_reachable(settings.redis_url):
        os.environ["REDIS_URL"] = start_embedded_redis(settings.instance_dir / "redis")
    base = f"http://{host}:{port}"
    running = demo_module.start(load_settings(), base_url=base, every=every, seed_value=seed_value)
    worker = start_worker_process({**running.env,
                                   "REDIS_URL": running.app.extensions["orderline"].settings.redis_url})
    token = (running.app.extensions["orderline"].settings.instance_dir / "dev-api-token").read_text().strip()
    pages = "".join(f"\n  {title}: {base}{path}" for title, path in
                    running.app.extensions.get("orderline.demo.pages", []))
    click.secho(f"""
Orderline demo is running. Open {base}/dashboard/ and sign in with this token (manager):

  {token}

  Sandbox shops: Shopify {running.fakes.shopify.url}, WooCommerce {running.fakes.woocommerce.url}
  A new order about every {every:g} s; Black Friday: the button on {base}/dashboard/ops{pages}
""", fg="green", err=True)
    import threading

    threading.Timer(1.0, running.stream.start).start()  # once the server listens
    if burst:
        threading.Timer(1.5, running.stream.burst, kwargs={"count": burst}).start()
    import signal
    import sys

    from werkzeug.serving import run_simple

    # SIGTERM ends the demo like Ctrl-C does: the worker and the embedded Redis are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        run_simple(host, port, running.app, threaded=True, use_reloader=False)
    finally:
        # The worker first: stopping the sandboxes under a job it is running would fail that job's call.
        stop_process(worker)
        running.stop()


def main() -> None:
    cli(prog_name="orderline")
