"""`wardgate dev-idp` (the development OpenID provider) and `wardgate token` (a token from it)."""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from gateway.devidp import DEFAULT_AUDIENCE, DevIdP
from gateway.devidp_store import SIGNING_ALGORITHMS, DevStore
from gateway.errors import UserError
from gateway.identity_settings import is_loopback_host

DEFAULT_PORT = 8900
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def register(subparsers: Any) -> None:
    idp = subparsers.add_parser(
        "dev-idp",
        help="run the local development OpenID provider",
        description=(
            "Run a local OpenID provider for development and tests in the foreground until "
            "Ctrl-C. It serves discovery, JWKS, client_credentials tokens and the dev-only "
            "token endpoint used by `wardgate token`. Keys persist in DATA_DIR/dev-idp."
        ),
    )
    idp.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    idp.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    _data_dir_option(idp)
    idp.add_argument("--audience", default=DEFAULT_AUDIENCE, help="aud of issued tokens")
    idp.add_argument(
        "--rotate",
        action="store_true",
        help="rotate the signing key (the old one stays published for the grace period); "
        "asks the dev IdP already running on this data directory, if any, and exits",
    )
    idp.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID[:GROUP,...]",
        help="register a client_credentials client whose subject is ID (repeatable); "
        "its secret is printed",
    )
    idp.add_argument("--algorithm", choices=SIGNING_ALGORITHMS, default="RS256")
    idp.set_defaults(func=run_dev_idp)

    token = subparsers.add_parser(
        "token",
        help="print an access token from the running dev IdP",
        description="Ask the running development IdP for an access token for SUBJECT.",
    )
    token.add_argument("subject", metavar="SUBJECT")
    token.add_argument("--groups", default="", help="comma-separated groups, e.g. dba,oncall")
    token.add_argument("--ttl", type=parse_duration, default=600.0, help="e.g. 90s, 10m, 1h")
    token.add_argument("--idp", help="dev IdP URL (default: the one running on the data directory)")
    token.add_argument("--audience", help=f"aud claim (default: the IdP's, {DEFAULT_AUDIENCE})")
    token.add_argument("--scope", help="space-separated scopes to put in the token")
    _data_dir_option(token)
    token.set_defaults(func=run_token)


def _data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, help="data directory (default: $WARDGATE_DATA_DIR or ./.wardgate)"
    )


def data_dir(args: argparse.Namespace) -> Path:
    chosen: Path | None = args.data_dir
    return chosen or Path(os.environ.get("WARDGATE_DATA_DIR") or ".wardgate")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``1.5h``, ``1d`` in seconds."""
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 90s, 10m, 1h)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def run_dev_idp(args: argparse.Namespace) -> int:
    directory = data_dir(args)
    if args.rotate and _rotate_running(directory):
        return 0
    try:
        idp = DevIdP(
            directory, args.host, args.port, audience=args.audience, algorithm=args.algorithm
        )
    except (ValueError, OSError) as exc:
        raise UserError(f"dev-idp: {exc}") from None
    for spec in args.client:
        client_id, _, groups = spec.partition(":")
        if not client_id:
            raise UserError(f"--client {spec!r}: expected ID[:GROUP,...]")
        client = idp.add_client(client_id, groups=_split_groups(groups))
        print(f"client {client.client_id} secret {client.secret} groups {','.join(client.groups)}")
    if args.rotate:
        print(f"rotated: new signing key {idp.rotate_keys()}")
    try:
        idp.start()
    except OSError as exc:
        raise UserError(
            f"dev-idp: cannot listen on {args.host}:{args.port}: {exc.strerror}"
        ) from None
    print(f"dev IdP issuer {idp.url}  (audience {idp.audience}; Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()  # until Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        idp.stop()
    return 0


def run_token(args: argparse.Namespace) -> int:
    directory = data_dir(args)
    store = DevStore(directory)
    secret = store.admin_secret(create=False)
    if secret is None:
        raise UserError(
            f"no dev IdP in {directory} (no dev-idp/admin-secret): start `wardgate dev-idp "
            f"--data-dir {directory}` first"
        )
    url = args.idp or store.read_issuer() or f"http://127.0.0.1:{DEFAULT_PORT}"
    request: dict[str, Any] = {
        "subject": args.subject,
        "groups": _split_groups(args.groups),
        "ttl": args.ttl,
    }
    if args.audience:
        request["audience"] = args.audience
    if args.scope:
        request["scope"] = args.scope
    answer = _post_admin(url, "/dev/token", secret, request)
    print(answer["access_token"])
    return 0


def fetch_dev_token(directory: Path, subject: str, groups: list[str], ttl: float = 600) -> str:
    """A token from the dev IdP running on ``directory`` (what `wardgate token` prints)."""
    store = DevStore(directory)
    secret = store.admin_secret(create=False)
    if secret is None:
        raise UserError(f"no dev IdP in {directory}")
    url = store.read_issuer() or f"http://127.0.0.1:{DEFAULT_PORT}"
    answer = _post_admin(
        url, "/dev/token", secret, {"subject": subject, "groups": groups, "ttl": ttl}
    )
    return str(answer["access_token"])


def _rotate_running(directory: Path) -> bool:
    store = DevStore(directory)
    url, secret = store.read_issuer(), store.admin_secret(create=False)
    if url is None or secret is None:
        return False
    try:
        answer = _post_admin(url, "/dev/rotate", secret, {})
    except UserError:
        return False  # the recorded IdP is gone: rotate on start instead
    print(f"rotated the running dev IdP at {url}: new signing key {answer['kid']}")
    return True


def _post_admin(url: str, path: str, secret: str, body: dict[str, Any]) -> dict[str, Any]:
    # The admin secret goes only to a loopback dev IdP, never across a network.
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not is_loopback_host(parts.hostname):
        raise UserError(f"{url} is not a loopback http URL; the dev IdP runs on this host only")
    request = urllib.request.Request(  # noqa: S310 (scheme checked just above)
        url.rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = _error_description(exc)
        raise UserError(f"dev IdP at {url} refused: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(
            f"dev IdP at {url} is unreachable ({reason}); start it with `wardgate dev-idp`"
        ) from None
    return answer


def _error_description(exc: urllib.error.HTTPError) -> str:
    try:
        document = json.loads(exc.read())
        return str(document.get("error_description") or document.get("error"))
    except (ValueError, AttributeError):
        return f"HTTP {exc.code}"


def _split_groups(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()]
