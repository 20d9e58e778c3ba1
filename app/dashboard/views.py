"""Dashboard routes: pages (HTML) and the JSON they poll. Every change goes through the same functions as the
API: `actions.perform` for orders, `requeue_failed` for jobs, `inbox.replay` for deliveries."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from app import inbox, stock
from app.api.schemas import CHANNELS, OrderListArgs, in_currency
from app.dashboard import analytics, auth, board, operations, panels
from app.models import OutboxEvent
from app.orders import actions
from app.orders.errors import OrderError
from app.orders.statuses import OrderStatus
from app.orders.types import Role
from app.runtime import Runtime
from jobs.ingest import wake
from jobs.relay import requeue_failed

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="../templates",
               static_folder="../static", static_url_path="/static")

# The filters the board accepts: the API's list arguments without its paging.
BOARD_FILTERS = ("status", "channel", "shop_id", "placed_from", "placed_to", "q")


def _runtime() -> Runtime:
    return current_app.extensions["orderline"]  # type: ignore[no-any-return]


def _db() -> Any:
    return _runtime().db


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    actor = g.get("actor")
    return {"csrf_token": auth.csrf_token, "actor": actor, "demo": current_app.extensions.get("orderline.demo"),
            # Pages of the demo's sandboxes (Slack channel, phone), listed in the navigation while a demo runs.
            "sandbox_pages": current_app.extensions.get("orderline.demo.pages", []),
            "may": lambda role: actor is not None and actor.may(Role(role))}


# Only this origin's scripts, styles and forms; never framed (a framed dashboard invites clickjacking).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@bp.after_request
def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        if name == "Cache-Control" and request.endpoint == "dashboard.static":
            continue  # the scripts and styles may be cached; pages and their data may not
        response.headers.setdefault(name, value)
    return response


@bp.app_template_filter("money")
def _money(amount: Any, currency: str) -> str:
    return "" if amount is None else f"{in_currency(str(amount), currency)} {currency}"


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Any:
    # JSON for the pages' scripts, a page for people; never Flask's bare default.
    if request.path.endswith(".json") or request.accept_mimetypes.best == "application/json":
        return jsonify(error={"code": error.name.lower().replace(" ", "_"), "message": error.description}), error.code
    return render_template("dashboard/error.html", error=error), error.code


# --- signing in -----------------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    # Only a path inside the dashboard: never an open redirect to another site.
    # SANDBOX PAGES: the demo's /sandbox/ pages sign in through here too.
    if target and target.startswith(("/dashboard", "/sandbox/")) and not urlsplit(target).netloc \
            and "\\" not in target:
        return target
    return url_for("dashboard.board_page")


@bp.get("/sign-in")
def sign_in_page() -> str:
    auth.ensure_csrf_token()  # the sign-in form is a POST like any other: it carries one too
    return render_template("dashboard/sign_in.html", next=request.args.get("next", ""), problem="")


@bp.post("/sign-in")
def sign_in() -> Any:
    # Checked before the token: a forged sign-in (into someone else's account) is refused like any forged POST.
    auth.check_csrf()
    actor, problem = auth.sign_in(request.form.get("token", ""))
    if actor is None:
        return render_template("dashboard/sign_in.html", next=request.form.get("next", ""), problem=problem), 401
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/sign-out")
@auth.staff()
def sign_out() -> Any:
    auth.sign_out()
    return redirect(url_for("dashboard.sign_in_page"))


# --- the order board ------------------------------------------------------------------------------------


def _board_filters() -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for name in BOARD_FILTERS:
        if name == "status":
            values = [v for v in request.args.getlist("status") if v]
            if values:
                raw["status"] = values
        elif request.args.get(name, "").strip():
            raw[name] = request.args[name].strip()
    try:
        loaded = OrderListArgs().load(raw)
    except ValidationError as error:
        fields = error.messages if isinstance(error.messages, dict) else {}
        abort(Response(_json({"error": {"code": "invalid_filter", "message": "a filter is not valid",
                                        "fields": fields}}), 422, mimetype="application/json"))
    return dict(loaded)


def _json(value: Any) -> str:
    return current_app.json.dumps(value)  # type: ignore[no-any-return]


@bp.get("/")
@auth.staff()
def board_page() -> str:
    with _db().session() as session:
        shops = board.shops(session)
    return render_template("dashboard/board.html", shops=shops, channels=CHANNELS,
                           statuses=[str(s) for s in OrderStatus])


@bp.get("/board.json")
@auth.staff()
def board_json() -> Any:
    filters = _board_filters()
    with _db().session() as session:
        return jsonify(board.board(session, filters))


# --- one order ------------------------------------------------------------------------------------------


def _order_or_404(session: Any, order_id: int) -> Any:
    try:
        return board.full_order(session, order_id)
    except OrderError as error:
        abort(404, description=error.message)


@bp.get("/orders/<id:order_id>")
@auth.staff()
def order_page(order_id: int) -> Any:
    with _db().session() as session:
        order = _order_or_404(session, order_id)
        sms = [e for e in order.events if e.type in board.SMS_TYPES]
        # Where the goods come from (reserved, picked or shipped; per location): a split order shows two groups.
        ships_from = stock.by_location(stock.allocations_of(
            session, order.id, statuses=[*stock.HOLDING, stock.AllocationStatus.SHIPPED.value]))
        return render_template("dashboard/order.html", order=order, sms=sms, panels=panels.render_all(order),
                               forms=board.action_forms(g.actor, order.status), ships_from=ships_from)


@bp.get("/orders/<id:order_id>/version.json")
@auth.staff()
def order_version(order_id: int) -> Any:
    """Polled by the order's page so it can say when someone else changed the order."""
    with _db().session() as session:
        order = _order_or_404(session, order_id)
        return jsonify(id=order.id, version=order.version, status=order.status)


@bp.post(f"/orders/<id:order_id>/actions/<any({', '.join(actions.ACTIONS)}):name>")
@auth.staff()
def order_action(order_id: int, name: str) -> Any:
    """Run an action from its form; refusals (role, transition, a stale view) come back as a message."""
    version = request.form.get("expected_version", "")
    try:
        arguments = board.action_arguments(name, request.form.to_dict())
        if version.isdigit():
            arguments["expected_version"] = int(version)
        with _db().session() as session:
            order = actions.perform(session, order_id, name, g.actor, **arguments)
            status = order.status
        flash(f"{name}: done — the order is now {status.replace('_', ' ')}", "ok")
    except OrderError as error:
        flash(f"{name}: {error.message}", "error")
    return redirect(url_for("dashboard.order_page", order_id=order_id), code=303)


# --- operations -----------------------------------------------------------------------------------------


@bp.get("/ops")
@auth.staff()
def ops_page() -> str:
    with _db().session() as session:
        return render_template(
            "dashboard/ops.html", depths=operations.queue_depths(_runtime()),
            outbox=operations.outbox_summary(session), failed=operations.failed_jobs(session),
            inbox=operations.inbox_problems(session), inbox_counts=operations.inbox_counts(session),
            reconciliation=operations.reconciliation(session), alerts=operations.open_alerts(session))


@bp.get("/ops.json")
@auth.staff()
def ops_json() -> Any:
    with _db().session() as session:
        return jsonify(depths=operations.queue_depths(_runtime()), outbox=operations.outbox_summary(session),
                       inbox=operations.inbox_counts(session))


@bp.post("/ops/jobs/<id:job_id>/requeue")
@auth.staff(Role.MANAGER)  # as POST /api/v1/jobs/<id>/requeue
def requeue_job(job_id: int) -> Any:
    with _db().session() as session:
        row = session.get(OutboxEvent, job_id)
        state = None if row is None else row.status
    if state != "failed":
        flash(f"job {job_id} " + ("does not exist" if state is None else
                                  f"is {state}; only failed jobs can be requeued"), "error")
    else:
        requeue_failed(_runtime(), [job_id])
        flash(f"job {job_id} requeued", "ok")
    return redirect(url_for("dashboard.ops_page"), code=303)


@bp.post("/ops/inbound/<id:inbound_id>/replay")
@auth.staff(Role.MANAGER)  # as POST /api/v1/inbound/<id>/replay
def replay_inbound(inbound_id: int) -> Any:
    try:
        with _db().session() as session:
            inbox.replay(session, inbound_id)
    except LookupError:
        flash(f"inbound delivery {inbound_id} does not exist", "error")
    else:
        wake(_runtime())
        flash(f"delivery {inbound_id} queued for processing again", "ok")
    return redirect(url_for("dashboard.ops_page"), code=303)


@bp.post("/ops/burst")
@auth.staff(Role.OPERATOR)
def demo_burst() -> Any:
    """Black Friday on demand: only while `orderline demo` runs (it registers the generator)."""
    demo = current_app.extensions.get("orderline.demo")
    if demo is None:
        abort(404, description="there is no demo running: start one with `orderline demo`")
    count = demo.burst()
    flash(f"Black Friday burst: {count} orders on their way from the sandbox shops", "ok")
    return redirect(url_for("dashboard.ops_page"), code=303)


# --- analytics ------------------------------------------------------------------------------------------


def _days() -> int:
    raw = request.args.get("days", "30")
    if not raw.isdigit() or not 1 <= int(raw) <= analytics.MAX_DAYS:
        abort(422, description=f"days must be a whole number from 1 to {analytics.MAX_DAYS}")
    return int(raw)


@bp.get("/analytics")
@auth.staff()
def analytics_page() -> str:
    return render_template("dashboard/analytics.html", days=_days())


@bp.get("/analytics.json")
@auth.staff()
def analytics_json() -> Any:
    days = _days()
    with _db().session() as session:
        return jsonify(analytics.summary(session, days))
