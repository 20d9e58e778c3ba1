"""Every GraphQL document Orderline sends to the Shopify Admin API; tests check each against Shopify's schema.

Shopify refuses a query whose *requested* cost exceeds 1,000 points, and a connection costs its `first`
times its node cost; so the full order is only ever fetched one at a time, and the reconciliation listing
asks for ids alone.
"""

from __future__ import annotations

MONEY = "shopMoney { amount currencyCode }"

ADDRESS_FIELDS = """
fragment AddressFields on MailingAddress {
  name firstName lastName company address1 address2 city province provinceCode zip countryCodeV2 phone
}
"""

LINE_ITEM_FIELDS = f"""
fragment LineItemFields on LineItem {{
  id title name sku variantTitle quantity currentQuantity unfulfilledQuantity requiresShipping
  originalUnitPriceSet {{ {MONEY} }}
  discountAllocations {{ allocatedAmountSet {{ {MONEY} }} }}
}}
"""

LINE_ITEMS_PAGE = 50
REFUNDS_PAGE = 5
REFUND_LINES_PAGE = 20
SHIPPING_LINES_PAGE = 5

ORDER_FIELDS = f"""
fragment OrderFields on Order {{
  id legacyResourceId name createdAt processedAt updatedAt cancelledAt cancelReason
  currencyCode email phone customerLocale note tags taxesIncluded
  displayFinancialStatus displayFulfillmentStatus
  customer {{
    firstName lastName defaultEmailAddress {{ emailAddress }} defaultPhoneNumber {{ phoneNumber }}
  }}
  shippingAddress {{ ...AddressFields }}
  billingAddress {{ ...AddressFields }}
  totalShippingPriceSet {{ {MONEY} }}
  totalTaxSet {{ {MONEY} }}
  totalDiscountsSet {{ {MONEY} }}
  shippingLines(first: {SHIPPING_LINES_PAGE}) {{ nodes {{ title code }} }}
  refunds(first: {REFUNDS_PAGE}) {{
    legacyResourceId processedAt note
    totalRefundedSet {{ {MONEY} }}
    refundLineItems(first: {REFUND_LINES_PAGE}) {{ nodes {{ quantity lineItem {{ id }} }} }}
  }}
  lineItems(first: {LINE_ITEMS_PAGE}) {{ nodes {{ ...LineItemFields }} pageInfo {{ hasNextPage endCursor }} }}
}}
{ADDRESS_FIELDS}
{LINE_ITEM_FIELDS}
"""

FETCH_ORDER = f"""
query FetchOrder($id: ID!) {{
  order(id: $id) {{ ...OrderFields }}
}}
{ORDER_FIELDS}
"""

MORE_LINE_ITEMS_PAGE = 100

# An order with more lines than one page: the rest, page by page.
ORDER_LINE_ITEMS = f"""
query OrderLineItems($id: ID!, $after: String) {{
  order(id: $id) {{
    lineItems(first: {MORE_LINE_ITEMS_PAGE}, after: $after) {{
      nodes {{ ...LineItemFields }}
      pageInfo {{ hasNextPage endCursor }}
    }}
  }}
}}
{LINE_ITEM_FIELDS}
"""

CHANGED_ORDERS_PAGE = 50

CHANGED_ORDERS = """
query ChangedOrders($first: Int!, $after: String, $query: String!) {
  orders(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {
    edges { cursor node { id legacyResourceId updatedAt } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

CREATE_WEBHOOK = """
mutation CreateWebhook($topic: WebhookSubscriptionTopic!, $subscription: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $subscription) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}
"""


# --- fulfilments (shipping helper) ---------------------------------------------------------------------

FULFILMENT_ORDERS_PAGE = 5
FULFILMENT_LINES_PAGE = 25
FULFILMENTS_PAGE = 5

# The order's fulfillment orders (what may still ship, per location) and its fulfillments with their
# tracking, so a repeated push finds the fulfillment it made before instead of making a second.
ORDER_FULFILMENTS = f"""
query OrderFulfilments($id: ID!) {{
  order(id: $id) {{
    id
    fulfillmentOrders(first: {FULFILMENT_ORDERS_PAGE}) {{
      nodes {{
        id status
        assignedLocation {{ location {{ id }} }}
        lineItems(first: {FULFILMENT_LINES_PAGE}) {{ nodes {{ id remainingQuantity lineItem {{ id }} }} }}
      }}
    }}
    fulfillments(first: {FULFILMENTS_PAGE}) {{
      id status
      trackingInfo {{ company number url }}
      fulfillmentLineItems(first: {FULFILMENT_LINES_PAGE}) {{ nodes {{ quantity lineItem {{ id }} }} }}
    }}
  }}
}}
"""

CREATE_FULFILMENT = """
mutation CreateFulfilment($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment { id status trackingInfo { company number url } }
    userErrors { field message }
  }
}
"""

ALL_DOCUMENTS: dict[str, str] = {
    "FetchOrder": FETCH_ORDER,
    "OrderLineItems": ORDER_LINE_ITEMS,
    "ChangedOrders": CHANGED_ORDERS,
    "CreateWebhook": CREATE_WEBHOOK,
    "OrderFulfilments": ORDER_FULFILMENTS,
    "CreateFulfilment": CREATE_FULFILMENT,
}


def order_gid(external_id: str) -> str:
    return f"gid://shopify/Order/{external_id}"


def webhook_topic_enum(topic: str) -> str:
    """"orders/partially_fulfilled" → "ORDERS_PARTIALLY_FULFILLED" (the WebhookSubscriptionTopic name)."""
    return topic.replace("/", "_").upper()


# --- refunds (returns: app/returns.py) ---------------------------------------------------------------------

_REFUND_FIELDS = "id legacyResourceId note createdAt totalRefundedSet { shopMoney { amount currencyCode } }"

ORDER_REFUNDS = f"""
query OrderlineOrderRefunds($id: ID!) {{
  order(id: $id) {{ id refunds {{ {_REFUND_FIELDS} }} }}
}}
"""

REFUND_CREATE = f"""
mutation OrderlineRefundCreate($input: RefundInput!, $idempotencyKey: String!) {{
  refundCreate(input: $input) @idempotent(key: $idempotencyKey) {{
    refund {{ {_REFUND_FIELDS} }}
    userErrors {{ field message }}
  }}
}}
"""

ALL_DOCUMENTS.update({"OrderRefunds": ORDER_REFUNDS, "RefundCreate": REFUND_CREATE})
