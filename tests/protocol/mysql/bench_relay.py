"""Brief benchmark of the codec's hot path (not a test): framing + classification per read.

Run: ``python tests/protocol/mysql/bench_relay.py``. Prints CPU per point-select-sized
response (column count, one definition, one row, OK) and per row of a large result read in
64 KiB buffers, both through ``ResponseRelay`` (FrameScanner.scan + ResponseTracker.classify,
forwarding slices), the loop a relay runs for every response.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from gateway.mysql.constants import GATEWAY_CAPABILITIES, ColumnType, Command
from gateway.mysql.framing import frame
from gateway.mysql.packets import ColumnDefinition41, OkPacket
from gateway.mysql.rows import encode_text_row
from gateway.mysql.tracker import ResponseTracker
from gateway.mysql.wire import int_lenenc
from tests.protocol.mysql.relay import ResponseRelay

CAPS = GATEWAY_CAPABILITIES


def response(rows: int, width: int) -> bytes:
    column = ColumnDefinition41(name=b"c", column_type=ColumnType.MYSQL_TYPE_VAR_STRING)
    payloads = [int_lenenc(1), column.encode()]
    payloads += [encode_text_row([b"x" * width])] * rows
    payloads.append(OkPacket(header=0xFE).encode(CAPS))
    return b"".join(frame(p, i + 1)[0] for i, p in enumerate(payloads))


def point_selects(n: int) -> float:
    data = response(1, 120)
    start = time.process_time()
    for _ in range(n):
        relay = ResponseRelay(ResponseTracker(Command.COM_QUERY, CAPS))
        relay.feed(data)
    return (time.process_time() - start) / n


def big_result(rows: int, width: int) -> tuple[float, float]:
    data = response(rows, width)
    relay = ResponseRelay(ResponseTracker(Command.COM_QUERY, CAPS))
    start = time.process_time()
    for pos in range(0, len(data), 65536):
        relay.feed(data[pos : pos + 65536])
    elapsed = time.process_time() - start
    assert relay.tracker.complete
    return elapsed / rows, len(data) / elapsed / 1e6


def main() -> None:
    per_query = point_selects(20_000)
    print(f"point-select response: {per_query * 1e6:.1f} us CPU (4 packets, one read)")
    per_row, mbps = big_result(200_000, 100)
    print(f"200k rows x 100 B in 64 KiB reads: {per_row * 1e9:.0f} ns/row, {mbps:.0f} MB/s")
    per_row, mbps = big_result(2_000, 20_000)
    print(f"2k rows x 20 kB in 64 KiB reads: {per_row * 1e6:.1f} us/row, {mbps:.0f} MB/s")


if __name__ == "__main__":
    main()
