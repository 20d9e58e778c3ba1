"""What must hold after the drill, read from the database, Redis and the fakes, and printed as a table.

A check answers PASS or FAIL with the counts behind it, or SKIP naming the module it waits for (the
shipping, Slack and SMS checks switch on when those branches are merged)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import psycopg

from .faults import module_present
from .load import Load

TERMINAL_INBOX = ("processed", "ignored", "stale")
QUEUES = ("ingest", "staff", "fulfilment", "providers", "notify", "background")


@dataclass
class Check:
    name: str
    status: str  # PASS | FAIL | SKIP
    detail: str


def _check(name: str, ok: bool, detail: str) -> Check:
    return Check(name, "PASS" if ok else "FAIL", detail)


def _rows(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return list(conn.execute(sql, params).fetchall())


def _scalar(dsn: str, sql: str, *params: Any) -> Any:
    return _rows(dsn, sql, *params)[0][0]


def rq_backlog(redis: Any) -> dict[str, int]:
    """Jobs waiting or running per queue (RQ's list and its started registry)."""
    client = redis.client()
    return {name: int(client.llen(f"rq:queue:{name}")) + int(client.zcard(f"rq:wip:{name}"))
            for name in QUEUES}


def check_all(dsn: str, redis: Any, load: Load, shop_ids: dict[str, int], extras: dict[str, Any]) -> list[Check]:
    checks: list[Check] = []
    webhooks, attacks = load.webhooks(), load.attacks()

    # 1. The ledger balances: every webhook POST got a final answer; none was given up on.
    statuses = Counter(d.status for d in webhooks)
    gave_up = [d for d in webhooks if not (200 <= d.status < 500) or d.status == 429]
    refused = [d for d in webhooks if 400 <= d.status < 500 and d.status != 429]
    checks.append(_check(
        "ledger: every signed webhook acked (2xx) in the end", not gave_up and not refused,
        f"{len(webhooks)} sent = {sum(200 <= d.status < 300 for d in webhooks)} acked + {len(refused)} refused "
        f"+ {len(gave_up)} given up; first answers {dict(sorted(statuses.items()))}; "
        f"{sum(d.attempts > 1 for d in webhooks)} needed retries"))

    # 1b. No ack without a stored delivery: each distinct acked delivery of an order is one inbox row (a
    # duplicate is the same bytes and headers: stored once). Fewer rows = acked but lost; more = stored twice.
    stored = Counter((shop_id, ext) for shop_id, ext in _rows(
        dsn, "SELECT shop_id, order_external_id FROM inbound_events WHERE order_external_id IS NOT NULL"))
    lost_acks, twice = [], []
    for order in load.orders:
        distinct = {(d.body, tuple(sorted(d.headers.items()))) for d in order.deliveries if 200 <= d.status < 300}
        rows_for = stored.get((shop_ids[order.shop.name], str(order.order_id)), 0)
        if rows_for < len(distinct):
            lost_acks.append(order.key)
        elif rows_for > len(distinct):
            twice.append(order.key)
    checks.append(_check(
        "every ack is one stored delivery (none lost, none stored twice)", not lost_acks and not twice,
        f"{sum(stored.values())} inbox rows with an order; orders with an acked delivery missing {len(lost_acks)} "
        f"{lost_acks[:3]}, with a delivery stored twice {len(twice)} {twice[:3]}"))

    # 2. Every accepted order is exactly one row; nothing else appeared.
    rows = _rows(dsn, "SELECT shop_id, external_id, count(*), max(channel_updated_at) FROM orders "
                      "GROUP BY shop_id, external_id")
    found = {(shop_id, ext): (n, updated) for shop_id, ext, n, updated in rows}
    accepted = [o for o in load.orders if o.fate != "dropped" and o.accepted]
    missing = [o.key for o in accepted if (shop_ids[o.shop.name], str(o.order_id)) not in found]
    doubled = [key for key, (n, _) in found.items() if n > 1]
    expected_keys = {(shop_ids[o.shop.name], str(o.order_id)) for o in load.orders
                     if o.fate == "dropped" or o.accepted}
    unexpected = [key for key in found if key not in expected_keys]
    checks.append(_check(
        "every accepted webhook became exactly one order", not missing and not doubled and not unexpected,
        f"{len(accepted)} accepted orders, {len(found)} order rows; missing {len(missing)} {missing[:3]}, "
        f"duplicated {len(doubled)}, unexpected {len(unexpected)} {unexpected[:3]}"))

    # 3. Out of order and duplicates: the newest version stands.
    multi = [o for o in accepted if o.versions > 1]
    wrong = []
    for order in multi:
        stored = found.get((shop_ids[order.shop.name], str(order.order_id)))
        want = order.updated(order.versions)
        # Newer than the newest version sent is right: Orderline's own push (WooCommerce `completed`) changes
        # the order on the channel, and reconciliation then brings that state in.
        if stored is None or stored[1] is None or stored[1].astimezone(UTC).replace(microsecond=0) < want:
            wrong.append((order.key, stored[1] if stored else None, want))
    reordered = sum(o.fate == "reordered" for o in multi)
    stale = sum(o.fate == "stale_update" for o in multi)
    duplicates = sum(d.kind == "duplicate" for d in webhooks)
    checks.append(_check(
        "newest version wins (updates, out-of-order, duplicates)", not wrong,
        f"{len(multi)} updated orders ({reordered} update before create, {stale} older update after newer), "
        f"{duplicates} duplicate deliveries; "
        f"{len(wrong)} with an older state {wrong[:2]}"))

    # 4. Reconciliation found every dropped order and said so.
    dropped = [o for o in load.orders if o.fate == "dropped"]
    inbound_ids = {(shop_id, ext) for shop_id, ext in _rows(
        dsn, "SELECT shop_id, order_external_id FROM inbound_events WHERE order_external_id IS NOT NULL")}
    lost = [o.key for o in dropped if (shop_ids[o.shop.name], str(o.order_id)) not in found]
    leaked = [o.key for o in dropped if (shop_ids[o.shop.name], str(o.order_id)) in inbound_ids]
    missed = dict(_rows(dsn, "SELECT shop_id, sum(missed_creates) FROM reconcile_runs WHERE kind = 'reconcile' "
                             "GROUP BY shop_id"))
    alerted = {int(str(key).rsplit(":", 1)[1]) for (key,) in _rows(
        dsn, "SELECT DISTINCT dedupe_key FROM alerts WHERE kind = 'missed_webhooks'")}
    per_shop = Counter(shop_ids[o.shop.name] for o in dropped)
    unreported = {shop: n for shop, n in per_shop.items() if (missed.get(shop) or 0) < n or shop not in alerted}
    checks.append(_check(
        "reconciliation found and reported every dropped order", not lost and not leaked and not unreported,
        f"{len(dropped)} dropped; {len(dropped) - len(lost)} found; {int(sum(missed.values()))} missed_creates "
        f"(beyond the dropped: orders whose webhooks did not become orders before the poll); per shop "
        f"{ {k: int(v) for k, v in missed.items()} } vs dropped {dict(per_shop)}; alerted shops {sorted(alerted)}; "
        f"not found {lost[:3]}, short or unalerted {unreported}"))

    # 5. Forged and oversized requests changed nothing.
    attack_status = Counter((d.kind, d.status) for d in attacks)
    let_in = [d for d in attacks if 200 <= d.status < 300]
    forged_rows = _scalar(dsn, "SELECT count(*) FROM orders WHERE note LIKE 'peak v6%%' OR note LIKE 'peak v7%%' "
                               "OR external_id LIKE '99000%%'")
    checks.append(_check(
        "no forged or oversized request changed anything", not let_in and forged_rows == 0,
        f"{len(attacks)} sent, answers {dict(sorted(attack_status.items()))}; {len(let_in)} got a 2xx; "
        f"{forged_rows} orders carry a forged change"))

    # 6. Everything drained. Reconciliation polls recur every interval, so a pending poll is not a backlog
    # unless it has waited longer than a minute; every job still in RQ must belong to such a poll.
    inbox = dict(_rows(dsn, "SELECT status, count(*) FROM inbound_events GROUP BY status"))
    stuck_inbox = {k: v for k, v in inbox.items() if k not in TERMINAL_INBOX}
    outbox = dict(_rows(dsn, "SELECT status, count(*) FROM outbox_events WHERE job <> 'reconcile_shop' "
                             f"AND NOT {HELD_TEXTS} GROUP BY status"))
    held = _scalar(dsn, f"SELECT count(*) FROM outbox_events WHERE status = 'pending' AND {HELD_TEXTS}")
    polls = dict(_rows(dsn, "SELECT status, count(*) FROM outbox_events WHERE job = 'reconcile_shop' "
                            "GROUP BY status"))
    old_polls = _scalar(dsn, "SELECT count(*) FROM outbox_events WHERE job = 'reconcile_shop' AND status = 'pending' "
                             "AND created_at < now() - interval '60 seconds'")
    backlog = rq_backlog(redis)
    by_job = dict(_rows(dsn, "SELECT job, count(*) FROM outbox_events WHERE status = 'pending' GROUP BY job"))
    checks.append(_check(
        "inbox, outbox and queues drained", not stuck_inbox and not outbox.get("pending") and
        not outbox.get("failed") and not polls.get("failed") and not old_polls
        and sum(backlog.values()) <= (polls.get("pending") or 0),
        f"inbox {inbox}; outbox {outbox} (and {held} texts held for the customers' morning); "
        f"reconcile polls {polls} ({old_polls} waiting > 60 s); "
        f"RQ waiting+running {backlog}; pending by job {by_job}"))

    checks.extend(_merged_checks(dsn, load, extras))
    return checks


# Texts due in the customer's quiet hours wait for the morning (app/sms/quiet.py): work for later, not a backlog.
HELD_TEXTS = "(job = 'send_sms' AND next_attempt_at > now() + interval '60 seconds')"


# --- checks that switch on after the merge ----------------------------------------------------------------


def _merged_checks(dsn: str, load: Load, extras: dict[str, Any]) -> list[Check]:
    checks: list[Check] = []
    if module_present("app.shipping"):
        per_shipment = _rows(dsn, "SELECT data->>'shipment_id', count(*) FROM order_events "
                                  "WHERE type = 'shipment.label_purchased' GROUP BY 1")
        twice = [sid for sid, n in per_shipment if n != 1]
        shipped = _rows(dsn, "SELECT o.id, count(s.id) FILTER (WHERE s.tracking_number IS NOT NULL) FROM orders o "
                             "LEFT JOIN shipments s ON s.order_id = o.id WHERE o.status IN ('shipped', "
                             "'partially_shipped', 'delivered') GROUP BY o.id")
        unlabelled = [oid for oid, n in shipped if n < 1]
        carrier = extras.get("carrier_fake")
        if carrier is None:
            bought, counter = None, "carrier fake not wired (bench/peak/plugins.py)"
        else:  # the fake counts labels per shipment reference (refunded ones included)
            references = {str(s.get("reference")) for s in list(carrier.shipments.values()) if s.get("reference")}
            per_reference = {ref: carrier.purchases(ref) for ref in references}
            bought = sum(per_reference.values())
            twice += [ref for ref, n in per_reference.items() if n > 1]
            counter = f"carrier fake bought {bought} labels for {len(per_shipment)} shipments"
        ok = not twice and not unlabelled and (bought is None or bought == len(per_shipment))
        checks.append(_check("one label per shipment, every shipped order labelled", ok,
                             f"{len(per_shipment)} labels, {len(twice)} shipments with !=1; {len(shipped)} shipped "
                             f"orders, {len(unlabelled)} without a label; {counter}"))
        pushes = _rows(dsn, "SELECT data->>'shipment_id', count(*) FROM order_events "
                            "WHERE type = 'shipment.pushed_to_channel' GROUP BY 1")
        twice_pushed = [sid for sid, n in pushes if n != 1]
        checks.append(_check("one fulfilment per shipment on the channel", not twice_pushed,
                             f"{len(pushes)} shipments pushed, {len(twice_pushed)} pushed !=1 times "
                             "(channel fake fulfilment counters: wire in bench/peak/plugins.py)"))
    else:
        checks.append(Check("one label per shipment / one fulfilment per shipment", "SKIP",
                            "app.shipping not present (shipping branch not merged)"))
    if module_present("integrations.slack"):
        slack = extras.get("slack_fake")
        if slack is None:
            checks.append(Check("no duplicate Slack card", "SKIP", "Slack fake not wired (bench/peak/plugins.py)"))
        else:
            cards = Counter(getattr(slack, "card_keys", lambda: [])())
            twice = [k for k, n in cards.items() if n > 1]
            checks.append(_check("no duplicate Slack card", not twice, f"{len(cards)} cards, {len(twice)} twice"))
    else:
        checks.append(Check("no duplicate Slack card", "SKIP", "integrations.slack not present"))
    if module_present("integrations.twilio"):
        twilio = extras.get("twilio_fake")
        if twilio is None:
            checks.append(Check("no SMS milestone twice, nothing after STOP", "SKIP",
                                "Twilio fake not wired (bench/peak/plugins.py)"))
        else:
            # What the fake really delivered, keyed by the milestone Orderline claimed for it (order/shipment, kind).
            keys = dict(_rows(dsn, "SELECT provider_sid, dedupe_key FROM sms_messages WHERE direction = 'outbound' "
                                   "AND provider_sid IS NOT NULL"))
            sent = Counter(keys.get(m["sid"], f"unclaimed:{m['sid']}") for m in twilio.fake.all_sent())
            twice = [k for k, n in sent.items() if n > 1]
            after_stop = getattr(twilio, "sent_after_stop", lambda: [])()
            checks.append(_check("no SMS milestone twice, nothing after STOP", not twice and not after_stop,
                                 f"{len(sent)} milestones, {len(twice)} twice, {len(after_stop)} after STOP"))
    else:
        checks.append(Check("no SMS milestone twice, nothing after STOP", "SKIP", "integrations.twilio not present"))
    return checks


def table(checks: list[Check]) -> str:
    lines = ["| invariant | result | counts |", "|---|---|---|"]
    lines += [f"| {c.name} | {c.status} | {c.detail.replace('|', '/')} |" for c in checks]
    return "\n".join(lines)
