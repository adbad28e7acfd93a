#!/bin/sh
# Direct ssh vs ssh through wardgate, in one run: session set-up p50/p95 over BENCH_RUNS
# connections (default 30), exec round trip of `true` on one connection, and bulk throughput
# (BENCH_BULK_MB, default 200 MB of text, up through `cat > /dev/null`, down from `cat FILE`;
# plus 20 MB of NUL bytes down from `head -c`).
# Needs root (starts /usr/sbin/sshd with a test user), sshpass, MariaDB for the harness.
set -eu
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(dirname "$0")/../.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
exec "$PYTHON" scripts/bench_ssh.py "$@"
