"""The order domain: statuses, the one way to change an order, and its timeline."""
