"""WooCommerce: full-order webhooks (`order.*`) and the REST API wc/v3 for fetching and reconciliation.

Receiver: POST /webhooks/woocommerce/<Orderline shop id>, signed with the shop's own webhook secret
(`webhooks.py`). Mapping: `mapping.py`. Credentials and auth: `client.py`. Test double: `fake.py`.
"""

from __future__ import annotations

from integrations import register
from integrations.base import ChannelSpec
from integrations.woocommerce.client import make_client
from integrations.woocommerce.events import IGNORED_TOPICS, TOPIC_HANDLERS
from integrations.woocommerce.webhooks import read_delivery, verify

SPEC = register(ChannelSpec(
    slug="woocommerce",
    display_name="WooCommerce",
    read_delivery=read_delivery,
    verify=verify,
    topics=TOPIC_HANDLERS,
    ignored_topics=IGNORED_TOPICS,
    make_client=make_client,
))
