"""Measure classifier throughput on typical statements, on one core.

Every timed text is distinct (literals vary), so the classify_sql cache never hits in the
"uncached" figure; the "repeated" figure shows the cache on a repeating workload.

Run: /work/main/.venv/bin/python scripts/bench_classifier.py [seconds]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from gateway.policy.shell import classify_shell
from gateway.policy.sql import classify_sql, classify_sql_uncached, normalize_sql

TEMPLATES = [
    "SELECT c FROM sbtest1 WHERE id={n}",
    "SELECT id, name, email FROM users WHERE id = {n}",
    "UPDATE payments.charges SET amount = {n}, status = 'paid' WHERE id = 7",
    "INSERT INTO orders (customer_id, total, note) VALUES ({n}, 99.5, 'rush')",
    "SELECT o.id, c.name FROM orders o JOIN customers c ON o.customer_id = c.id "
    "WHERE o.created_at > '2024-01-{n}' ORDER BY o.id DESC LIMIT 50",
    "DELETE FROM sessions WHERE expires_at < NOW() - {n}",
    "SELECT COUNT(*) FROM events WHERE kind IN ('a', 'b', 'c') AND ts > {n}",
    "BEGIN",
    "COMMIT",
    "SELECT DISTINCT c FROM sbtest3 WHERE id BETWEEN {n} AND 199 ORDER BY c",
]
TYPICAL_SHELL = [
    "ls -la /var/log",
    "tail -n 100 /var/log/syslog | grep -i error",
    "systemctl status nginx",
    "df -h && free -m",
]


def rate(fn: Callable[[str], object], items: list[str], seconds: float) -> float:
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for item in items:
            fn(item)
        done += len(items)
    return done / elapsed


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    distinct = [t.format(n=n) for n in range(2000) for t in TEMPLATES]
    repeated = [t.format(n=1) for t in TEMPLATES]
    results = {
        "classify_sql (uncached)": rate(classify_sql_uncached, distinct, seconds),
        "classify_sql (repeated)": rate(classify_sql, repeated, seconds),
        "normalize_sql": rate(normalize_sql, distinct, seconds),
        "classify_shell": rate(classify_shell, TYPICAL_SHELL, seconds),
    }
    for name, value in results.items():
        print(f"{name:26s} {value:12,.0f} /s")


if __name__ == "__main__":
    main()
