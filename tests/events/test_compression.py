"""Compression levels by event size, and that every frame reads back whatever made it."""

from __future__ import annotations

import random
import uuid

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from events.compression import LARGE, LARGE_LEVEL, ZstdDictCompressor, train_dictionary
from events.domain import Session
from events.store import EventStore

from .test_recording import synthetic_writes
from .test_tampering import raw_db, state_of


def _terminal_json(size: int, seed: int = 1) -> bytes:
    """About ``size`` bytes of JSON-escaped terminal output, as recorded chunks are stored."""
    raw = b"".join(d for _, d in synthetic_writes(seed, size))
    text = raw.decode("latin-1").encode("unicode_escape")
    return b'{"data":"' + text[: max(0, size - 11)] + b'"}'


def _reference(level: int, data: bytes, dictionary: bytes | None = None) -> bytes:
    d = zstandard.ZstdCompressionDict(dictionary) if dictionary is not None else None
    return zstandard.ZstdCompressor(
        level=level,
        dict_data=d,
        write_checksum=False,
        write_content_size=True,
        write_dict_id=True,
    ).compress(data)


def _dictionary() -> tuple[int, bytes]:
    rnd = random.Random(7)
    source = _terminal_json(400_000)
    samples = []
    for _ in range(300):
        at = rnd.randrange(len(source) - 2000)
        samples.append(source[at : at + rnd.randint(200, 2000)])
    return train_dictionary(samples)


@pytest.mark.parametrize("with_dictionary", [False, True])
def test_large_events_use_the_large_level_and_the_rest_the_default(
    with_dictionary: bool,
) -> None:
    compressor = ZstdDictCompressor()
    dictionary = None
    if with_dictionary:
        dict_id, dictionary = _dictionary()
        compressor.install({dict_id: dictionary})
    large = _terminal_json(LARGE + 4096)
    small = large[: LARGE - 1]
    # The two levels make different frames of these inputs, so the test tells them apart.
    assert _reference(LARGE_LEVEL, large, dictionary) != _reference(3, large, dictionary)
    assert _reference(LARGE_LEVEL, small, dictionary) != _reference(3, small, dictionary)
    assert compressor.compress(large) == _reference(LARGE_LEVEL, large, dictionary)
    assert compressor.compress(small) == _reference(3, small, dictionary)


def test_events_stored_at_level_3_before_still_decode() -> None:
    dict_id, dictionary = _dictionary()
    reader = ZstdDictCompressor()
    reader.install({dict_id: dictionary})
    for data in (_terminal_json(LARGE * 2), _terminal_json(5000)):
        assert reader.decompress(_reference(3, data)) == data
        assert reader.decompress(_reference(3, data, dictionary)) == data


@settings(max_examples=60, deadline=None)
@given(
    size=st.one_of(
        st.integers(min_value=LARGE - 64, max_value=LARGE + 64),
        st.integers(min_value=1, max_value=3 * LARGE),
    ),
    seed=st.integers(min_value=0, max_value=1000),
    with_dictionary=st.booleans(),
)
def test_any_event_round_trips_through_a_separate_reader(
    size: int, seed: int, with_dictionary: bool
) -> None:
    data = _terminal_json(size, seed)
    writer, reader = ZstdDictCompressor(), ZstdDictCompressor()
    if with_dictionary:
        dict_id, dictionary = _DICTIONARY
        writer.install({dict_id: dictionary})
        # The reader learns the dictionary from the store, as a reader process does.
        reader.loader = lambda: {dict_id: dictionary}
    stored = writer.compress(data)
    assert reader.decompress(stored) == data
    if data[:1] != b"{" or stored[:1] == b"{":
        return
    plain = zstandard.ZstdDecompressor(
        dict_data=zstandard.ZstdCompressionDict(_DICTIONARY[1]) if with_dictionary else None
    )
    assert plain.decompress(stored) == data


_DICTIONARY = _dictionary()


def test_a_tampered_large_chunk_fails_verification(store: EventStore) -> None:
    sid = uuid.uuid4()
    text = b"".join(d for _, d in synthetic_writes(3, 70_000)).decode("latin-1")
    event = Session.OutputRecorded(
        originator_id=sid,
        originator_version=1,
        at=1.0,
        actor="agent",
        stream="pty",
        offset_ms=0,
        data=text,
        encoding="latin-1",
    )
    (nid,) = store.append([event])
    assert store.read(0, 10)[0][1] == event
    assert store.verify().ok
    with raw_db(store) as (conn, events, _, col):
        state = bytearray(state_of(conn, store, events, col, nid))
        state[len(state) // 2] ^= 0x01
        sql = f"UPDATE {events} SET state = ? WHERE {col} = ?"
        conn.execute(sql if store.backend == "sqlite" else sql.replace("?", "%s"), (state, nid))
    report = store.verify()
    assert not report.ok
    assert report.problem is not None
    assert (report.problem.kind, report.problem.notification_id) == ("modified", nid)
