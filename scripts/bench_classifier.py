"""Measure classifier throughput on typical statements, per CPU second of one core.

Three workloads:
- typical: every text distinct (literals vary), ten statement shapes, as an application sends
  them; the per-text cache never hits, the per-shape cache does;
- new shapes: every statement a shape never seen (table names vary): the cold path;
- repeated: the same ten texts again and again (health checks, BEGIN/COMMIT).

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
    """Calls per CPU second of this process: on a shared machine wall time mostly measures
    the neighbours, CPU time what one core spends on us."""
    done = 0
    start = time.process_time()
    while (elapsed := time.process_time() - start) < seconds:
        for item in items:
            fn(item)
        done += len(items)
    return done / elapsed


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    distinct = [t.format(n=n) for n in range(2000) for t in TEMPLATES]
    new_shapes = [
        t.format(n=n).replace("FROM ", f"FROM s{n}_").replace("INTO ", f"INTO s{n}_")
        for n in range(20000)
        for t in TEMPLATES
    ]
    repeated = [t.format(n=1) for t in TEMPLATES]
    results = {
        "classify_sql typical": rate(classify_sql_uncached, distinct, seconds),
        "classify_sql new shapes": rate(classify_sql_uncached, new_shapes, seconds),
        "classify_sql repeated": rate(classify_sql, repeated, seconds),
        "normalize_sql": rate(normalize_sql, distinct, seconds),
        "classify_shell": rate(classify_shell, TYPICAL_SHELL, seconds),
    }
    for name, value in results.items():
        print(f"{name:26s} {value:12,.0f} /s")


if __name__ == "__main__":
    main()
