"""UpstreamSide against scripted servers: caching_sha2 fast and full auth, switches, TLS."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.mysql.auth import scramble_caching_sha2, scramble_native_password
from gateway.mysql.connection import (
    NEED_DATA,
    LoginFailed,
    LoginSucceeded,
    ServerGreeting,
    UpstreamSide,
    UpstreamState,
)
from gateway.mysql.constants import GATEWAY_CAPABILITIES, AuthPlugin, Capability, ServerStatus
from gateway.mysql.errors import LocalProtocolError, RemoteProtocolError
from gateway.mysql.framing import Deframer, frame
from gateway.mysql.packets import (
    AuthMoreData,
    AuthSwitchRequest,
    ErrPacket,
    HandshakeResponse41,
    HandshakeV10,
    OkPacket,
    SSLRequest,
)

PASSWORD = b"s3cret-vaulted"
NONCE = b"abcdefghij0123456789"
CAPS = GATEWAY_CAPABILITIES


def greeting(plugin: str) -> bytes:
    hs = HandshakeV10(
        server_version="8.0.36",
        connection_id=9,
        auth_plugin_data=NONCE,
        capabilities=CAPS,
        character_set=255,
        status_flags=ServerStatus.SERVER_STATUS_AUTOCOMMIT,
        auth_plugin_name=plugin,
    )
    return frame(hs.encode(), 0)[0]


def sent(up: UpstreamSide) -> list[tuple[bytes, int]]:
    d = Deframer()
    d.feed(up.data_to_send())
    out = []
    while (got := d.next_payload()) is not None:
        out.append((got[0], got[1]))
    return out


def start(plugin: str, **kwargs: object) -> UpstreamSide:
    up = UpstreamSide(username="app", password=PASSWORD, **kwargs)  # type: ignore[arg-type]
    assert up.next_event() is NEED_DATA
    up.receive_data(greeting(plugin))
    event = up.next_event()
    assert isinstance(event, ServerGreeting)
    assert event.handshake.auth_plugin_name == plugin
    return up


def login(up: UpstreamSide) -> HandshakeResponse41:
    up.login(capabilities=CAPS, database="shop")
    [(payload, seq)] = sent(up)
    assert seq == 1
    return HandshakeResponse41.decode(payload)


def ok(seq: int) -> bytes:
    return frame(OkPacket().encode(CAPS), seq)[0]


def test_native_password_login() -> None:
    up = start(AuthPlugin.MYSQL_NATIVE_PASSWORD)
    response = login(up)
    assert response.auth_response == scramble_native_password(PASSWORD, NONCE)
    assert response.database == "shop"
    assert response.capabilities & Capability.CLIENT_CONNECT_WITH_DB
    assert not response.capabilities & Capability.CLIENT_SSL
    up.receive_data(ok(2))
    event = up.next_event()
    assert isinstance(event, LoginSucceeded)
    assert up.state is UpstreamState.READY
    assert "s3cret" not in repr(up)


def test_caching_sha2_fast_auth() -> None:
    up = start(AuthPlugin.CACHING_SHA2_PASSWORD)
    response = login(up)
    assert response.client_plugin_name == AuthPlugin.CACHING_SHA2_PASSWORD
    assert response.auth_response == scramble_caching_sha2(PASSWORD, NONCE)
    up.receive_data(frame(AuthMoreData(data=b"\x03").encode(), 2)[0] + ok(3))
    assert isinstance(up.next_event(), LoginSucceeded)
    assert sent(up) == []


def test_caching_sha2_full_auth_with_rsa_key_request() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    up = start(AuthPlugin.CACHING_SHA2_PASSWORD)
    login(up)
    up.receive_data(frame(AuthMoreData(data=b"\x04").encode(), 2)[0])
    assert up.next_event() is NEED_DATA
    assert sent(up) == [(b"\x02", 3)]  # request the public key
    up.receive_data(frame(AuthMoreData(data=pem).encode(), 4)[0])
    assert up.next_event() is NEED_DATA
    [(cipher, seq)] = sent(up)
    assert seq == 5
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    plain = key.decrypt(cipher, oaep)
    unmasked = bytes(b ^ NONCE[i % len(NONCE)] for i, b in enumerate(plain))
    assert unmasked == PASSWORD + b"\0"
    up.receive_data(ok(6))
    assert isinstance(up.next_event(), LoginSucceeded)


def test_caching_sha2_full_auth_over_tls_sends_clear_password() -> None:
    up = start(AuthPlugin.CACHING_SHA2_PASSWORD, use_tls=True)
    up.login(capabilities=CAPS)
    [(payload, seq)] = sent(up)
    assert seq == 1
    assert SSLRequest.decode(payload).capabilities & Capability.CLIENT_SSL
    assert up.state is UpstreamState.TLS_PENDING
    assert up.next_event() is NEED_DATA  # waiting for the driver to start TLS
    up.tls_started()
    [(payload, seq)] = sent(up)
    assert seq == 2
    assert HandshakeResponse41.decode(payload).capabilities & Capability.CLIENT_SSL
    up.receive_data(frame(AuthMoreData(data=b"\x04").encode(), 3)[0])
    assert up.next_event() is NEED_DATA
    assert sent(up) == [(PASSWORD + b"\0", 4)]
    up.receive_data(ok(5))
    assert isinstance(up.next_event(), LoginSucceeded)


def test_auth_switch_is_answered_once() -> None:
    up = start(AuthPlugin.MYSQL_NATIVE_PASSWORD)
    login(up)
    other_nonce = b"ZYXWVUTSRQPONMLKJIHG"
    switch = AuthSwitchRequest(plugin_name="caching_sha2_password", plugin_data=other_nonce + b"\0")
    up.receive_data(frame(switch.encode(), 2)[0])
    assert up.next_event() is NEED_DATA
    assert sent(up) == [(scramble_caching_sha2(PASSWORD, other_nonce), 3)]
    up.receive_data(frame(switch.encode(), 4)[0])
    with pytest.raises(RemoteProtocolError):
        up.next_event()


def test_clear_password_switch_refused_without_tls() -> None:
    up = start(AuthPlugin.MYSQL_NATIVE_PASSWORD)
    login(up)
    switch = AuthSwitchRequest(plugin_name="mysql_clear_password")
    up.receive_data(frame(switch.encode(), 2)[0])
    with pytest.raises(LocalProtocolError):
        up.next_event()
    assert sent(up) == []


def test_sha256_password_requests_key_without_tls() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    up = start(AuthPlugin.MYSQL_NATIVE_PASSWORD)
    login(up)
    switch = AuthSwitchRequest(plugin_name="sha256_password", plugin_data=NONCE + b"\0")
    up.receive_data(frame(switch.encode(), 2)[0])
    up.next_event()
    assert sent(up) == [(b"\x01", 3)]
    up.receive_data(frame(AuthMoreData(data=pem).encode(), 4)[0])
    up.next_event()
    [(cipher, seq)] = sent(up)
    assert seq == 5
    assert len(cipher) == 256


def test_error_instead_of_greeting() -> None:
    up = UpstreamSide(username="app", password=PASSWORD)
    err = ErrPacket(error_code=1040, sqlstate=None, message=b"Too many connections")
    up.receive_data(frame(err.encode(), 0)[0])
    event = up.next_event()
    assert isinstance(event, LoginFailed)
    assert event.error.error_code == 1040
    assert up.state is UpstreamState.CLOSED


def test_illegal_calls_leave_state_unchanged() -> None:
    up = UpstreamSide(username="app", password=PASSWORD)
    with pytest.raises(LocalProtocolError):
        up.login(capabilities=CAPS)
    assert up.state is UpstreamState.AWAIT_GREETING
    with pytest.raises(LocalProtocolError):
        up.tls_started()
    assert up.state is UpstreamState.AWAIT_GREETING
    with pytest.raises(LocalProtocolError):
        up.start_command(b"\x0e")


def test_out_of_order_packet_is_a_remote_error() -> None:
    up = start(AuthPlugin.MYSQL_NATIVE_PASSWORD)
    login(up)
    up.receive_data(ok(7))
    with pytest.raises(RemoteProtocolError):
        up.next_event()
    assert up.state is UpstreamState.AUTHENTICATING
