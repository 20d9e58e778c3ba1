"""Shopify: signed webhooks in (POST /webhooks/shopify), the Admin GraphQL API out.

Files: `webhook` (read and verify a delivery), `topics` (topic → event), `mapping` (REST Order JSON →
NewOrder), `nodes` (GraphQL Order → NewOrder), `queries` (every GraphQL document), `client` (the API
client; its docstring documents the credentials), `fake` (a loopback Admin API for tests, demos, benchmarks).
"""

from __future__ import annotations

from integrations import register
from integrations.base import ChannelSpec
from integrations.shopify.client import make_client
from integrations.shopify.topics import IGNORED_TOPICS, TOPIC_HANDLERS
from integrations.shopify.webhook import read_delivery, verify

SPEC = register(ChannelSpec(
    slug="shopify",
    display_name="Shopify",
    read_delivery=read_delivery,
    verify=verify,
    topics=TOPIC_HANDLERS,
    ignored_topics=IGNORED_TOPICS,
    make_client=make_client,
    signs_with_app_secret=True,
))
