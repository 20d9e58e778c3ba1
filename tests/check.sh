#!/usr/bin/env bash
# Everything CI checks: lint, types at the boundaries, and the whole suite on SQLite and PostgreSQL.
# Extra arguments go to pytest (e.g. tests/check.sh -k workflow).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
echo "== ruff"
"$PY" -m ruff check .
echo "== mypy (integrations/, jobs/)"
"$PY" -m mypy
echo "== pytest (SQLite and PostgreSQL)"
# Two test processes (pytest-xdist), each with its own PostgreSQL database and Redis db: about 7 minutes on
# two cores instead of 12. ORDERLINE_TEST_WORKERS=0 runs everything in this process.
"$PY" -m pytest -p no:cacheprovider -n "${ORDERLINE_TEST_WORKERS:-2}" "$@"
