"""The relay with a recording row rewriter: rows recorded up to the cap, the rest streamed
without calling the recorder, and the bytes the client gets unchanged."""

from __future__ import annotations

import trio

from gateway.mysql.constants import Capability, ColumnType, Command
from gateway.mysql.framing import frame
from gateway.mysql.packets import ColumnDefinition41, EofPacket
from gateway.mysql.relay import ResponseRelay
from gateway.mysql.result_recording import ResultRecorder
from gateway.mysql.rows import encode_text_row
from gateway.mysql.tracker import ResponseTracker

CAPS = Capability.CLIENT_PROTOCOL_41


def _response(rows: int) -> list[bytes]:
    """A text result set, one packet per element (one read each)."""
    payloads = [
        b"\x01",
        ColumnDefinition41(name=b"n", column_type=ColumnType.MYSQL_TYPE_VAR_STRING).encode(),
        EofPacket().encode(CAPS),
        *(encode_text_row([str(i).encode()]) for i in range(rows)),
        EofPacket().encode(CAPS),
    ]
    return [frame(p, seq)[0] for seq, p in enumerate(payloads, start=1)]


class _Reads(trio.abc.ReceiveStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        return self.chunks.pop(0) if self.chunks else b""

    async def aclose(self) -> None:
        return None


class _Collect(trio.abc.SendStream):
    def __init__(self) -> None:
        self.data = bytearray()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.data += data

    async def wait_send_all_might_not_block(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _relay(rows: int, limit: int) -> tuple[ResultRecorder, ResponseTracker, bytes, bytes]:
    chunks = _response(rows)
    tracker = ResponseTracker(Command.COM_QUERY, CAPS)
    recorder = ResultRecorder(limit, None)
    client = _Collect()
    relay = ResponseRelay(_Reads(chunks), client, tracker, rewrite=recorder)
    trio.run(relay.run)
    return recorder, tracker, bytes(client.data), b"".join(chunks)


def test_rows_past_the_cap_stream_on_without_the_recorder() -> None:
    recorder, tracker, sent, original = _relay(rows=50, limit=5)
    assert sent == original  # recording never changes what the client gets
    assert tracker.complete and tracker.rows == 50
    assert recorder.seen == 6  # one row past the cap, then the relay stopped calling
    transcript = recorder.transcript(tracker.rows)
    assert transcript == {
        "columns": ["n"],
        "rows": [[str(i)] for i in range(5)],
        "limit": 5,
        "rows_total": 50,
    }
    assert recorder.truncated


def test_a_result_within_the_cap_is_recorded_whole() -> None:
    recorder, tracker, sent, original = _relay(rows=3, limit=5)
    assert sent == original and recorder.seen == 3 and not recorder.truncated
    assert recorder.transcript(tracker.rows) == {
        "columns": ["n"],
        "rows": [["0"], ["1"], ["2"]],
        "limit": 5,
    }
