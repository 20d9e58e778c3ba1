"""BigCommerce: thin order webhooks (`store/order/*`) fetched through the REST v2 API.

Receiver: POST /webhooks/bigcommerce/<shop id>. Authenticity: Standard Webhooks signing or the
X-Orderline-Webhook-Secret header set at registration (`webhooks.py`). Credentials: see `client.py`.
"""

from __future__ import annotations

from integrations import register
from integrations.base import ChannelSpec
from integrations.bigcommerce.client import make_client
from integrations.bigcommerce.events import IGNORED_TOPICS, TOPIC_HANDLERS
from integrations.bigcommerce.webhooks import read_delivery, verify

SPEC = register(ChannelSpec(
    slug="bigcommerce",
    display_name="BigCommerce",
    read_delivery=read_delivery,
    verify=verify,
    topics=TOPIC_HANDLERS,
    ignored_topics=IGNORED_TOPICS,
    make_client=make_client,
))
