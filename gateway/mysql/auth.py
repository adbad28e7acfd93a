"""Client-side authentication responses for the gateway's upstream login.

The scrambles are PyMySQL's pure helpers (``pymysql._auth``) behind typed wrappers; this module
adds the choice of response per plugin and the policy that a vaulted password never crosses an
unencrypted connection in a form that can be replayed (clear text only over TLS, RSA otherwise).
"""

from __future__ import annotations

from pymysql import _auth as _pymysql_auth

from gateway.mysql.constants import SCRAMBLE_LENGTH, AuthPlugin, ErrorCode
from gateway.mysql.errors import LocalProtocolError

SUPPORTED_PLUGINS = frozenset(
    {
        AuthPlugin.MYSQL_NATIVE_PASSWORD,
        AuthPlugin.CACHING_SHA2_PASSWORD,
        AuthPlugin.SHA256_PASSWORD,
        AuthPlugin.MYSQL_CLEAR_PASSWORD,
    }
)

REQUEST_PUBLIC_KEY = b"\x02"
"""caching_sha2_password: ask the server for its RSA public key."""
SHA256_REQUEST_PUBLIC_KEY = b"\x01"
"""sha256_password: ask the server for its RSA public key."""


def nonce_of(plugin_data: bytes) -> bytes:
    """The scramble in an AuthSwitchRequest's plugin data (servers append a NUL)."""
    return plugin_data[:SCRAMBLE_LENGTH]


def scramble_native_password(password: bytes, nonce: bytes) -> bytes:
    """SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password))); empty for an empty password."""
    result: bytes = _pymysql_auth.scramble_native_password(password, nonce_of(nonce))
    return result


def scramble_caching_sha2(password: bytes, nonce: bytes) -> bytes:
    """caching_sha2_password fast-auth scramble; empty for an empty password."""
    result: bytes = _pymysql_auth.scramble_caching_sha2(password, nonce_of(nonce))
    return result


def sha2_rsa_encrypt(password: bytes, nonce: bytes, public_key_pem: bytes) -> bytes:
    """RSA-OAEP of (password + NUL) XOR nonce, for full authentication without TLS."""
    try:
        result: bytes = _pymysql_auth.sha2_rsa_encrypt(password, nonce_of(nonce), public_key_pem)
    except ValueError as exc:  # a malformed key from the server
        raise LocalProtocolError(
            f"server sent an unusable RSA public key: {exc}",
            error_code=ErrorCode.CR_AUTH_PLUGIN_CANNOT_LOAD,
        ) from None
    return result


def clear_password(password: bytes) -> bytes:
    """mysql_clear_password (and full auth over TLS): the password and a NUL."""
    return password + b"\0"


def first_response(plugin: str, password: bytes, nonce: bytes, *, tls: bool) -> bytes:
    """What to send first for ``plugin``: in HandshakeResponse41 or after an auth switch."""
    if plugin == AuthPlugin.MYSQL_NATIVE_PASSWORD:
        return scramble_native_password(password, nonce)
    if plugin == AuthPlugin.CACHING_SHA2_PASSWORD:
        return scramble_caching_sha2(password, nonce)
    if plugin == AuthPlugin.SHA256_PASSWORD:
        if not password:
            return b"\0"
        return clear_password(password) if tls else SHA256_REQUEST_PUBLIC_KEY
    if plugin == AuthPlugin.MYSQL_CLEAR_PASSWORD:
        if not tls:
            raise LocalProtocolError(
                "refusing to send a vaulted password in clear text without TLS",
                error_code=ErrorCode.CR_AUTH_PLUGIN_CANNOT_LOAD,
            )
        return clear_password(password)
    raise LocalProtocolError(
        f"authentication plugin {plugin!r} is not supported upstream",
        error_code=ErrorCode.CR_AUTH_PLUGIN_CANNOT_LOAD,
    )
