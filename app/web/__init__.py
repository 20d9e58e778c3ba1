"""Web-only pieces: operations endpoints and request instrumentation."""
