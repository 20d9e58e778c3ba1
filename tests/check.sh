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
"$PY" -m pytest -p no:cacheprovider "$@"
