"""Masking benchmark: row latency (1,000 rows x 10 columns) and stream throughput.

    /work/main/.venv/bin/python scripts/bench_masking.py [--repeat 30] [--mb 8] [--gateway-rows N]

Pure in-process measurements of gateway.masking; with ``--gateway-rows N`` also a result set
of N typical rows read through a running gateway, masking off and on (separate section at
the end; needs the local MariaDB).
"""

from __future__ import annotations

import argparse
import base64
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's packages

from gateway.masking import DEFAULT_PROFILE, ColumnInfo, RowMasker, StreamMasker

_FIRST = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy"]
_LAST = ["Smith", "Jones", "Brown", "Garcia", "Miller", "Davis", "Wilson", "Moore"]
_CITIES = ["Berlin", "Paris", "Austin", "Osaka", "Lima", "Oslo", "Cairo", "Perth"]
_NOTES = [
    "called back, no answer",
    "prefers e-mail contact",
    "VIP since 2019",
    "order 88231 shipped 2024-03-02",
    "",
    "see ticket OPS-4412",
]
_CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "6011111111111117"]


def _columns() -> list[ColumnInfo]:
    spec = [
        ("id", False),
        ("name", True),
        ("email", True),
        ("amount", False),
        ("created_at", False),
        ("status", True),
        ("city", True),
        ("payment_note", True),
        ("note", True),
        ("country", True),
    ]
    return [
        ColumnInfo(
            schema="shop", table="customers", org_table="customers", name=n, org_name=n, is_text=t
        )
        for n, t in spec
    ]


def typical_rows(n: int, rng: random.Random) -> list[list[bytes | None]]:
    """Mixed data: names, amounts, dates; an e-mail in 30% of rows, a card in 5%."""
    rows: list[list[bytes | None]] = []
    for i in range(n):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        email = f"{first.lower()}.{last.lower()}{i}@example.com" if rng.random() < 0.3 else None
        card = f"paid with {rng.choice(_CARDS)}" if rng.random() < 0.05 else "paid by invoice"
        row = [
            str(10_000 + i),
            f"{first} {last}",
            email,
            f"{rng.randint(1, 99_999)}.{rng.randint(0, 99):02d}",
            f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00",
            rng.choice(["active", "closed", "pending"]),
            rng.choice(_CITIES),
            card,
            rng.choice(_NOTES),
            rng.choice(["DE", "FR", "US", "JP"]),
        ]
        rows.append([None if v is None else v.encode() for v in row])
    return rows


def bench_rows(repeat: int) -> None:
    rng = random.Random(7)
    rows = typical_rows(1000, rng)
    columns = _columns()
    c0 = time.process_time()
    for _ in range(1000):
        RowMasker(DEFAULT_PROFILE, columns)
    print(
        f"RowMasker construction (once per result set): {(time.process_time() - c0) * 1000:.1f} us CPU"
    )
    for label, batch in (("mask_row, one call per row", 1), ("mask_rows, batches of 250", 250)):
        timings = []
        cpu = []
        changed = 0
        for _ in range(repeat):
            masker = RowMasker(DEFAULT_PROFILE, columns)
            c0 = time.process_time()
            t0 = time.perf_counter()
            if batch == 1:
                changed = sum(1 for row in rows if masker.mask_row(row) is not None)
            else:
                changed = 0
                for i in range(0, len(rows), batch):
                    out = masker.mask_rows(rows[i : i + batch])
                    changed += sum(1 for r in out if r is not None)
            timings.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        timings.sort()
        p95 = timings[min(len(timings) - 1, int(len(timings) * 0.95))]
        print(
            f"rows 1000 x 10 ({label}): {changed} rows changed; "
            f"p50 {statistics.median(timings):.2f} ms, p95 {p95:.2f} ms wall, "
            f"p50 {statistics.median(cpu):.2f} ms CPU ({repeat} runs)"
        )


def typical_terminal_output(size: int, rng: random.Random) -> bytes:
    """ls -l, logs, ps, source code; about one sensitive value per 20 KB."""
    lines: list[str] = []
    total = 0
    while total < size:
        r = rng.random()
        if r < 0.25:
            line = (
                f"-rw-r--r--  1 deploy staff {rng.randint(100, 99999):>6} Nov {rng.randint(1, 28):2d} "
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d} report_{rng.randint(1, 999)}.csv"
            )
        elif r < 0.5:
            line = (
                f"2024-05-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
                f"{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z INFO  [worker-{rng.randint(1, 8)}] "
                f"request GET /api/v1/items/{rng.randint(1, 99999)} took {rng.randint(1, 900)} ms status=200"
            )
        elif r < 0.7:
            line = (
                f"deploy   {rng.randint(100, 65000):>5}  {rng.random() * 10:.1f}  {rng.random() * 5:.1f} "
                f"{rng.randint(10000, 999999):>7} {rng.randint(1000, 99999):>6} pts/0    S+   10:{rng.randint(10, 59)}   0:00 python app.py"
            )
        elif r < 0.999:
            line = rng.choice(
                [
                    "    def handle(self, request: Request) -> Response:",
                    "        return self.render(template, context={'user': user})",
                    "for (int i = 0; i < n; i++) { total += values[i]; }",
                    "# Configuration for the staging environment",
                    "Step 4/12 : RUN pip install -r requirements.txt",
                ]
            )
        else:
            line = rng.choice(
                [
                    "customer contact: jane.doe@example.org",
                    "card on file 4111 1111 1111 1111",
                    "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
                ]
            )
        lines.append(line)
        total += len(line) + 1
    return ("\n".join(lines) + "\n").encode()


def bench_stream(megabytes: int, chunk: int) -> None:
    rng = random.Random(11)
    data = typical_terminal_output(megabytes * 1_000_000, rng)
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    best = best_cpu = float("inf")
    for _ in range(3):
        masker = StreamMasker(DEFAULT_PROFILE)
        c0 = time.process_time()
        t0 = time.perf_counter()
        for piece in chunks:
            masker.feed(piece)
        masker.flush()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    print(
        f"stream: {len(data) / 1e6:.1f} MB in {chunk}-byte chunks, {len(data) / best / 1e6:.0f} MB/s "
        f"wall, {len(data) / best_cpu / 1e6:.0f} MB/s CPU (best of 3), "
        f"masked {sum(masker.counts.values())} values"
    )


def adversarial_shapes(size: int) -> dict[str, bytes]:
    """Inputs without line breaks, and runs of the bytes the pre-filters and hold-back key on:
    each was once slow (a Python step per byte or per hit, or a search repeated per feed)."""
    rng = random.Random(3)

    def repeat(unit: bytes) -> bytes:
        return (unit * (size // len(unit) + 1))[:size]

    return {
        "minified JSON": repeat(b'{"id":12345,"name":"widget","tags":["a","b"],"price":9.99},'),
        "base64 blob": base64.b64encode(rng.randbytes(size * 3 // 4)),
        "NUL bytes": bytes(size),
        "digits": repeat(b"7"),
        "random digits": bytes(rng.choice(b"0123456789") for _ in range(size)),
        "word characters": repeat(b"a"),
        "'@.' noise": repeat(b"@."),
        "'a@b.' noise": repeat(b"a@b."),
        "'ssn ' over and over": repeat(b"ssn "),
        "'eyJ' over and over": repeat(b"eyJ"),
        "'DE89' over and over": repeat(b"DE89"),
        "'-----BEGIN ' over and over": repeat(b"-----BEGIN "),
        "card-like groups": repeat(b"1234 5678 "),
    }


def bench_shapes(chunk: int, size: int) -> None:
    """One long line of each adversarial shape: the cost must stay linear."""
    for name, data in adversarial_shapes(size).items():
        masker = StreamMasker(DEFAULT_PROFILE)
        c0 = time.process_time()
        for i in range(0, len(data), chunk):
            masker.feed(data[i : i + chunk])
        masker.flush()
        seconds = max(time.process_time() - c0, 1e-9)
        print(
            f"stream, {len(data) / 1e6:.1f} MB of {name} in {chunk}-byte chunks: "
            f"{len(data) / seconds / 1e6:.1f} MB/s CPU"
        )


# -- through the running gateway ---------------------------------------------------------
# A result set of typical rows read with PyMySQL directly from MariaDB, through wardgate
# with masking off (policy masking_profile = "none"), and through wardgate with the default
# profile: the masking cost as a client sees it. Needs the local MariaDB; uses the helpers
# of scripts/bench_mysql_run.py (a `wardgate serve` subprocess and the dev IdP).


def _load_typical_table(rows: int) -> None:
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS sbtest")
        cur.execute("DROP TABLE IF EXISTS sbtest.masking_rows")
        cur.execute(
            "CREATE TABLE sbtest.masking_rows (id INT PRIMARY KEY, name VARCHAR(80), "
            "email VARCHAR(120), amount VARCHAR(20), created_at VARCHAR(20), "
            "status VARCHAR(12), city VARCHAR(30), payment_note VARCHAR(80), "
            "note VARCHAR(80), country CHAR(2))"
        )
        data = typical_rows(rows, random.Random(7))
        cur.executemany(
            "INSERT INTO sbtest.masking_rows VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            data,
        )


def _read_all(port: int, user: str, password: str) -> float:
    import pymysql

    conn = pymysql.connect(
        host="127.0.0.1",
        port=port,
        user=user,
        password=password,
        database="sbtest",
        ssl_disabled=True,
    )
    with conn, conn.cursor() as cur:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            cur.execute("SELECT * FROM masking_rows")
            cur.fetchall()
            best = min(best, time.perf_counter() - started)
    return best


def bench_through_gateway(rows: int) -> None:
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_mysql_run as mysql_bench

    mysql_bench.prepare_database(1000)
    _load_typical_table(rows)
    direct = _read_all(3306, mysql_bench.USER, mysql_bench.PASSWORD)
    timings = {"direct": direct}
    for masking in (False, True):
        with tempfile.TemporaryDirectory(prefix="wg-mask-bench-") as tmp:
            gw = mysql_bench.Wardgate(Path(tmp), masking=masking)
            try:
                label = "wardgate, masking on" if masking else "wardgate, masking off"
                timings[label] = _read_all(gw.port, "agent", gw.token)
            finally:
                gw.stop()
    for label, seconds in timings.items():
        print(
            f"through the gateway: {rows} rows x 10 columns, {label:<22} "
            f"{seconds * 1000:8.1f} ms ({rows / seconds:,.0f} rows/s, best of 3)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--mb", type=int, default=8)
    parser.add_argument(
        "--gateway-rows",
        type=int,
        default=0,
        help="also read this many typical rows through a running wardgate (needs MariaDB)",
    )
    parser.add_argument(
        "--shape-mb", type=float, default=1.0, help="size of each adversarial shape"
    )
    args = parser.parse_args()
    bench_rows(args.repeat)
    for chunk in (4096, 32768):
        bench_stream(args.mb, chunk)
    for chunk in (4096, 32768):
        bench_shapes(chunk, int(args.shape_mb * 1_000_000))
    if args.gateway_rows:
        bench_through_gateway(args.gateway_rows)


if __name__ == "__main__":
    main()
