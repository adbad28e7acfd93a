"""Key rotation without restarting the verifier, and failing closed when the IdP is down."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.devidp import DevIdP
from gateway.identity import (
    IdentityProviderUnavailable,
    IdentitySettings,
    RejectReason,
    TokenVerifier,
)

from .tokens import AUDIENCE, assert_rejected, claims, sign_with


def _verifier(idp: DevIdP, **changes: object) -> TokenVerifier:
    settings = IdentitySettings(issuer=idp.url, audience=AUDIENCE, jwks_refresh_cooldown=0.5)
    verifier = TokenVerifier(replace(settings, **changes))  # type: ignore[arg-type]
    verifier.warm()
    return verifier


def test_rotated_key_is_picked_up_at_once_and_old_tokens_still_verify(fresh_idp: DevIdP) -> None:
    verifier = _verifier(fresh_idp)
    old_kid = fresh_idp.current_kid
    old_token = fresh_idp.issue_token("alice", ["dba"], 300)
    fetches = verifier.keys.fetches

    new_kid = fresh_idp.rotate_keys()
    assert new_kid != old_kid
    # Within a second of warm-up: a 30 s cool-down would refuse this (NOTES.md).
    new_token = fresh_idp.issue_token("bob", ["ops"], 300)
    assert verifier.verify(new_token).subject == "bob"
    assert verifier.keys.fetches == fetches + 1
    # The old key stays published for the grace period.
    assert {k["kid"] for k in fresh_idp.jwks()["keys"]} == {old_kid, new_kid}
    assert verifier.verify(old_token).subject == "alice"
    assert verifier.keys.fetches == fetches + 1


def test_key_withdrawn_after_grace_stops_verifying(tmp_path: Path) -> None:
    with DevIdP(tmp_path, grace=0.0) as idp:
        verifier = _verifier(idp, jwks_max_age=1.0)
        old_token = idp.issue_token("alice", ["dba"], 300)
        idp.rotate_keys()
        assert verifier.verify(old_token).subject == "alice"  # cached and fresh: no fetch
        time.sleep(1.1)  # the cached set is now older than jwks_max_age
        exc = assert_rejected(verifier, old_token, RejectReason.UNKNOWN_KEY)
        assert "not published" in str(exc)


def test_concurrent_misses_share_one_refresh(fresh_idp: DevIdP) -> None:
    verifier = _verifier(fresh_idp)
    fresh_idp.rotate_keys()
    token = fresh_idp.issue_token("carol", ["ops"], 300)
    fetches = verifier.keys.fetches
    results: list[str] = []

    def worker() -> None:
        results.append(verifier.verify(token).subject)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results == ["carol"] * 8
    assert verifier.keys.fetches == fetches + 1


def test_idp_down_cached_keys_keep_working_unknown_kid_fails_closed(
    fresh_idp: DevIdP, stranger_key: rsa.RSAPrivateKey
) -> None:
    verifier = _verifier(fresh_idp, http_timeout=1.0)
    token = fresh_idp.issue_token("alice", ["dba"], 300)
    fresh_idp.stop()

    assert verifier.verify(token).subject == "alice"
    unknown = sign_with(stranger_key, claims(fresh_idp), kid="rotated-while-down")
    exc = assert_rejected(verifier, unknown, RejectReason.IDP_UNREACHABLE)
    assert "unreachable" in str(exc) and "failing closed" in str(exc)
    assert "rotated-while-down" in str(exc)
    # Within the cool-down the answer is immediate and just as clear.
    started = time.monotonic()
    exc = assert_rejected(verifier, unknown, RejectReason.IDP_UNREACHABLE)
    assert time.monotonic() - started < 0.5
    assert verifier.verify(token).subject == "alice"


def test_stale_keys_survive_an_outage(tmp_path: Path) -> None:
    with DevIdP(tmp_path) as idp:
        verifier = _verifier(idp, jwks_max_age=1.0, http_timeout=1.0)
        token = idp.issue_token("alice", ["dba"], 300)
    time.sleep(1.1)
    assert verifier.verify(token).subject == "alice"


def test_warm_with_idp_down_raises_and_verify_fails_closed(tmp_path: Path) -> None:
    idp = DevIdP(tmp_path)
    idp.start()
    url = idp.url
    token = idp.issue_token("alice", ["dba"], 300)
    idp.stop()
    verifier = TokenVerifier(IdentitySettings(issuer=url, audience=AUDIENCE, http_timeout=1.0))
    with pytest.raises(IdentityProviderUnavailable) as caught:
        verifier.warm()
    assert url in str(caught.value)
    assert_rejected(verifier, token, RejectReason.IDP_UNREACHABLE)


def test_keys_survive_a_dev_idp_restart(tmp_path: Path) -> None:
    with DevIdP(tmp_path, port=0) as first:
        kid = first.current_kid
    with DevIdP(tmp_path) as second:
        assert second.current_kid == kid
        verifier = _verifier(second)
        assert verifier.verify(second.issue_token("alice", ["dba"], 60)).subject == "alice"


def test_verify_async_inline_with_cached_keys_and_threaded_to_fetch(
    fresh_idp: DevIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = _verifier(fresh_idp)
    cached = fresh_idp.issue_token("alice", ["dba"], 300)
    fresh_idp.rotate_keys()
    needs_fetch = fresh_idp.issue_token("bob", ["ops"], 300)
    hops: list[object] = []
    real_run_sync = trio.to_thread.run_sync

    async def counting_run_sync(*args: object, **kwargs: object) -> object:
        hops.append(args[0])
        return await real_run_sync(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(trio.to_thread, "run_sync", counting_run_sync)

    async def main() -> tuple[str, str]:
        first = await verifier.verify_async(cached)
        assert hops == []  # no thread hop when the key is cached
        second = await verifier.verify_async(needs_fetch)
        assert len(hops) == 1
        return first.subject, second.subject

    assert trio.run(main) == ("alice", "bob")


def test_a_token_verified_recently_is_not_verified_again_until_the_keys_change(
    fresh_idp: DevIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = _verifier(fresh_idp)
    token = fresh_idp.issue_token("dave", ["ops"], 300)
    checks: list[str] = []
    real = verifier._check

    def counting(raw: str, *, may_fetch: bool) -> object:
        checks.append(raw[-8:])
        return real(raw, may_fetch=may_fetch)

    monkeypatch.setattr(verifier, "_check", counting)
    first = verifier.verify(token)
    assert verifier.verify(token) == first and len(checks) == 1  # pools reconnect cheaply
    other = fresh_idp.issue_token("erin", ["ops"], 300)
    assert verifier.verify(other).subject == "erin" and len(checks) == 2
    fresh_idp.rotate_keys()
    verifier.verify(fresh_idp.issue_token("frank", ["ops"], 300))  # refreshes the key set
    assert verifier.verify(token).subject == "dave" and len(checks) == 4  # verified again


def test_a_remembered_token_is_never_accepted_past_its_expiry(fresh_idp: DevIdP) -> None:
    verifier = _verifier(fresh_idp, leeway=0.0)  # the cache ends at exp, never later
    token = fresh_idp.issue_token("gina", ["ops"], 2)
    assert verifier.verify(token).subject == "gina"
    time.sleep(2.2)
    assert_rejected(verifier, token, RejectReason.EXPIRED)
