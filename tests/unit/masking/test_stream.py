"""The stream masker: same output for any chunking, bounded hold-back, PEM suppression."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.masking import (
    DEFAULT_PROFILE,
    CustomPattern,
    MaskingError,
    MaskingProfile,
    StreamMasker,
)
from gateway.masking.engine import Engine
from gateway.masking.strategies import REDACT, Strategy, StrategySpec
from gateway.masking.stream import MAX_HOLD
from tests.unit.masking.helpers import GENERATORS, REDACT_ALL, masked

_NOISE = [
    b"-rw-r--r-- 1 deploy staff 4096 Nov 28 10:41 a.txt\n",
    b"2024-05-01T10:00:00.123Z INFO worker-3 ",
    b"ORD-2024-000123 ",
    b"$ ",
    b"\r\n",
    b"192.168.1.10 ",
    b"v1.2.3 ",
    b"id=",
    b"SSN: ",
    b"aws_secret_access_key = ",
    b"\xff\xfe\x80 ",
    b"-----",
    b"user@",
    b"+1 ",
    b"DE89 ",
]


# What sits between values: separators and fragments that touch their look-behinds.
_GLUE = [
    b" ",
    b"\n",
    b"",
    b", ",
    b"\t",
    b".",
    b"-",
    b"_",
    b"@",
    b"+",
    b"x",
    b"#",
    b"...",
    b"ssn ",
    b"ey",
    b"--",
]


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    rng = draw(st.randoms(use_true_random=False))
    parts: list[bytes] = []
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        choice = rng.random()
        if choice < 0.45:
            parts.append(GENERATORS[rng.choice(sorted(GENERATORS))](rng).encode())
        elif choice < 0.9:
            parts.append(rng.choice(_NOISE))
        else:
            parts.append(draw(st.binary(max_size=12)))
        parts.append(rng.choice(_GLUE))
    return b"".join(parts)


def feed_in_pieces(masker: StreamMasker, data: bytes, cuts: list[int]) -> bytes:
    out = []
    last = 0
    for cut in sorted(set(cuts)):
        out.append(masker.feed(data[last:cut]))
        assert masker.held <= MAX_HOLD
        last = cut
    out.append(masker.feed(data[last:]))
    out.append(masker.flush())
    return b"".join(out)


@settings(max_examples=300, deadline=None)
@given(data=streams(), seed=st.integers(min_value=0, max_value=2**32))
def test_any_chunking_gives_the_unsplit_output(data: bytes, seed: int) -> None:
    rng = random.Random(seed)
    cuts = [rng.randint(0, len(data)) for _ in range(rng.randint(0, 12))]
    whole = masked(data)
    assert feed_in_pieces(StreamMasker(DEFAULT_PROFILE), data, cuts) == whole


@settings(max_examples=40, deadline=None)
@given(data=streams())
def test_byte_at_a_time_gives_the_unsplit_output(data: bytes) -> None:
    assert feed_in_pieces(StreamMasker(REDACT_ALL), data, list(range(len(data)))) == masked(
        data, REDACT_ALL
    )


def test_value_split_across_chunks_is_masked() -> None:
    masker = StreamMasker(DEFAULT_PROFILE)
    out = masker.feed(b"card 4111 11") + masker.feed(b"11 1111 1") + masker.feed(b"111\n")
    assert out == b"card **** **** **** 1111\n"
    assert masker.counts == {"card": 1}


def test_nothing_is_held_that_cannot_start_a_value() -> None:
    masker = StreamMasker(DEFAULT_PROFILE)
    assert masker.feed(b"total 48\n") == b"total 48\n"
    assert masker.feed(b"deploy@host:~$ ") == b"deploy@host:~$ "
    assert masker.held == 0
    assert masker.feed(b"ls") == b""  # could begin john@example.com: held
    assert masker.feed(b"\r\n") == b"ls\r\n"
    assert masker.feed(b"4111") == b""
    assert masker.feed(b" files\n") == b"4111 files\n"


def test_pem_block_over_many_chunks_is_suppressed() -> None:
    body = "\n".join("MIIEpAIBAAKCAQEA" + str(i).zfill(48) for i in range(120))
    block = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
    data = f"$ cat key\n{block}\n$ echo done\n".encode()
    masker = StreamMasker(DEFAULT_PROFILE)
    out = []
    for i in range(0, len(data), 7):
        out.append(masker.feed(data[i : i + 7]))
        assert masker.held <= 200
    out.append(masker.flush())
    assert b"".join(out) == b"$ cat key\n[REDACTED:private_key]\n$ echo done\n"
    assert masker.counts == {"private_key": 1}


def test_unterminated_pem_stays_suppressed_over_an_idle_flush() -> None:
    masker = StreamMasker(DEFAULT_PROFILE)
    first = masker.feed(b"-----BEGIN PRIVATE KEY-----\nMIIE\n") + masker.flush()
    assert first == b"[REDACTED:private_key]"
    assert masker.feed(b"AAAA\nBBBB\n-----END PRIVATE KEY-----\nok ") == b"\nok "


def test_custom_pattern_in_stream() -> None:
    profile = MaskingProfile(
        custom_patterns=(
            CustomPattern(
                name="employee_id", regex=r"EMP-[0-9]{6}", strategy=REDACT, max_length=10
            ),
        )
    )
    masker = StreamMasker(profile)
    out = masker.feed(b"id EMP-12") + masker.feed(b"3456 ok\n") + masker.flush()
    assert out == b"id [REDACTED:employee_id] ok\n"


def test_strict_failure_raises_and_releases_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    masker = StreamMasker(DEFAULT_PROFILE)
    assert masker.feed(b"card 4111 ") == b"card "

    def boom(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(Engine, "next_finding", staticmethod(boom))
    with pytest.raises(MaskingError):
        masker.feed(b"1111 1111 1111\n")
    assert masker.held == 0


def test_best_effort_failure_redacts_the_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    masker = StreamMasker(MaskingProfile(strict=False))

    def boom(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(Engine, "next_finding", staticmethod(boom))
    assert masker.feed(b"4111 1111 1111 1111\n") == b"[REDACTED:error]"
    assert masker.counts == {"error": 1}


def test_null_strategy_redacts_in_streams() -> None:
    profile = MaskingProfile(strategies={"email": StrategySpec(strategy=Strategy.NULL)})
    masker = StreamMasker(profile)
    assert masker.feed(b"a@example.com\n") == b"[REDACTED:email]\n"
