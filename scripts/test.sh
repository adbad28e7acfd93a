#!/usr/bin/env bash
# The whole test suite: set-up, lint, strict types, the layering contracts, then pytest.
# Extra arguments go to pytest (for example: scripts/test.sh tests/unit -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --services
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check gateway events tui tests scripts; ruff format --check gateway events tui tests scripts
echo "== mypy --strict (gateway, events)"; mypy
echo "== layering contracts"; lint-imports --no-cache
echo "== pytest"
set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi
exit "$rc"
