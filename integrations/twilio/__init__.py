"""Twilio Programmable Messaging: the Messages API client, request signatures, and a loopback fake (README.md)."""
