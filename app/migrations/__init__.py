"""Alembic migrations; run with `orderline db upgrade` (the Procfile's release step)."""
