"""English texts. Placeholders in braces are filled from the order; every language has the same keys."""

TEXTS: dict[str, str] = {
    # milestones
    "confirmed": "{shop}: Thanks! Order {number} is confirmed. We'll text you when it ships.",
    "backordered": "{shop}: Part of order {number} is on back order. Reply WAIT to keep waiting, "
                   "or CANCEL ORDER to ask us to cancel it.",
    "shipped": "{shop}: Order {number} has shipped with {carrier}. Track it: {tracking_url}",
    "shipped_untracked": "{shop}: Order {number} has shipped with {carrier}.",
    "out_for_delivery": "{shop}: Order {number} is out for delivery today.",
    "delivered": "{shop}: Order {number} has been delivered. Enjoy!",
    "exception": "{shop}: There is a delay with order {number}: {description}. We're on it.",
    "return_label": "{shop}: Your return label for order {number} is ready: {label_url}",
    "refunded": "{shop}: We have refunded {amount} for order {number}. It can take a few days to show.",
    "staff_reply": "{shop}: {text}",
    # answers in the conversation
    "status": "Order {number}: {state}.",
    "status_tracking": "Order {number}: {state}. Track it: {tracking_url}",
    "several_orders": "You have {count} orders: {numbers}. Reply with an order number for its status.",
    "unknown_number": "We could not find an order for this phone number. Please text us from the number "
                      "you gave with your order.",
    "unknown_order": "We could not find order {number} for this phone number.",
    "help": "{shop}: Text STATUS for your order's status, RETURN to start a return, or write your question. "
            "Text STOP to stop texts.",
    "opted_out": "You will get no more texts from us. Text START to get them again.",
    "opted_in": "Texts are back on. Text STOP to stop them.",
    "relayed": "Thanks, a person will answer you here soon.",
    "return_started": "We have your return request for order {number}. We will text you the return label "
                      "and the steps shortly.",
    "return_refused": "Order {number} cannot be returned by text (it may be past the return window or final "
                      "sale). A person will get back to you here.",
    "cancel_requested": "We have asked our team to cancel order {number}. A person will confirm shortly.",
    "cancel_too_late": "Order {number} has already shipped, so it can no longer be cancelled. "
                       "Text RETURN to send it back.",
    "wait_ack": "Thanks, we will ship order {number} as soon as everything is in stock.",
    "text_only": "We can only read text. Please write your question in a message.",
    # order states, as the customer reads them in "Order 1001: …"
    "state.received": "received, we are getting it ready",
    "state.needs_review": "received, we are getting it ready",
    "state.approved": "confirmed, we are getting it ready",
    "state.allocated": "confirmed, we are getting it ready",
    "state.picking": "being packed",
    "state.packed": "packed and about to ship",
    "state.backordered": "waiting for an item to come back in stock",
    "state.on_hold": "being checked by our team",
    "state.partially_shipped": "partly shipped",
    "state.shipped": "shipped",
    "state.delivered": "delivered",
    "state.cancelled": "cancelled",
    "state.return_requested": "return requested",
    "state.returned": "returned",
    "state.refunded": "refunded",
}
