#!/usr/bin/env bash
# The main job on a fresh machine: set-up, then `wardgate demo` on the embedded SQLite store.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --services
exec .venv/bin/wardgate demo "$@"
