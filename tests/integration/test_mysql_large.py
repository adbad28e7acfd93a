"""Big data through the gateway: a 200 MB result streamed with bounded gateway memory (the
gateway runs as its own process so its VmRSS can be sampled) and a 20 MB BLOB round trip."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator

import pymysql
import pymysql.cursors
import pytest

from .harness import GatewayProcess, gateway_process, mariadb

DB = "wg_large"
MIB = 1024 * 1024

POLICY = """
version = 1

[policy]
name = "large"
default = "deny"
unknown = "deny"

[[rule]]
name = "work"
action = "allow"
protocol = "mysql"
statements = ["SELECT", "SHOW", "SESSION", "INSERT", "DDL"]
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with mariadb() as conn, conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.max_allowed_packet")
        (before,) = cur.fetchone()
        cur.execute("SET GLOBAL max_allowed_packet = %s", (64 * MIB,))
    try:
        with gateway_process(tmp_path_factory.mktemp("large"), policy=POLICY, database=DB) as g:
            yield g
    finally:
        with mariadb() as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL max_allowed_packet = %s", (before,))


class RssSampler:
    """Samples the gateway's VmRSS every 50 ms in a thread."""

    def __init__(self, gw: GatewayProcess) -> None:
        self.gw = gw
        self.samples: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.05):
            self.samples.append(self.gw.rss_kib())

    def __enter__(self) -> RssSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def test_a_200_mb_result_streams_with_bounded_gateway_memory(gw: GatewayProcess) -> None:
    rows, width = 210_000, 1000
    with gw.connect(database=DB, cursorclass=pymysql.cursors.SSCursor) as conn:
        with conn.cursor() as cur:  # warm up: the first query loads policy, masking, ...
            cur.execute("SELECT REPEAT('w', 100) FROM seq_1_to_1000")
            cur.fetchall()
        baseline = gw.rss_kib()
        got_rows = got_bytes = 0
        with RssSampler(gw) as sampler, conn.cursor() as cur:
            # Text that a masker scans but never changes: the full masking path runs.
            cur.execute(
                f"SELECT seq, REPEAT(CONCAT('row ', seq, ' of the stream '), {width} DIV 20) "
                f"FROM seq_1_to_{rows}"
            )
            for _, text in cur.fetchall_unbuffered():
                got_rows += 1
                got_bytes += len(text)
    assert got_rows == rows
    assert got_bytes >= 200 * 1_000_000
    peak = max(sampler.samples)
    print(f"gateway VmRSS: {baseline} KiB before, {peak} KiB peak while streaming {got_bytes} B")
    assert len(sampler.samples) > 10
    assert (peak - baseline) * 1024 < 100 * MIB, (baseline, peak)


def test_a_20_mb_blob_round_trip_is_byte_identical(gw: GatewayProcess) -> None:
    with mariadb(DB) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS blobs")
        cur.execute("CREATE TABLE blobs (id INT PRIMARY KEY, data LONGBLOB)")
    blob = os.urandom(20 * MIB)  # more than one 16 MiB packet each way
    with gw.connect(database=DB, max_allowed_packet=64 * MIB) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO blobs VALUES (1, %s)", (blob,))
        cur.execute("SELECT data, SHA2(data, 256) FROM blobs WHERE id = 1")
        row = cur.fetchone()
    assert row is not None
    data, digest = row
    assert digest == hashlib.sha256(blob).hexdigest()  # what the server stored
    assert data == blob  # what the client read back
