"""`wardgate demo agent`: a scripted agent session against a running `wardgate demo`.

It reads customer data (masked on the way), tries a DROP (blocked by policy), and issues an
UPDATE on payments that waits for an on-call approval, printing what happens at each step,
so that a newcomer can watch it in `wardgate tui` and approve it there.
"""

from __future__ import annotations

import ssl
import sys
import time
from pathlib import Path

import pymysql

from gateway.commands.identity import fetch_dev_token
from gateway.config import Settings
from gateway.errors import UserError
from gateway.targets import mysql_targets

STEPS = (
    (
        "read customers (cards, SSNs, e-mails come back masked)",
        "SELECT id, name, email, phone, ssn, card_number FROM customers ORDER BY id LIMIT 3",
    ),
    ("drop the payments table (blocked by policy)", "DROP TABLE payments"),
    (
        "dispute payment 1 (held until someone in 'oncall' approves)",
        "UPDATE payments SET status = 'disputed' WHERE id = 1",
    ),
    (
        "read the disputed payment",
        "SELECT id, amount, status, card_number FROM payments WHERE id = 1",
    ),
)


def say(text: str) -> None:
    print(text, flush=True)


def run_agent(settings: Settings, *, subject: str = "agent-7", out: object = None) -> int:
    targets = [t for t in mysql_targets(settings) if t.name == "shop"]
    if not targets:
        raise UserError("the demo has no MySQL target (is MariaDB running?)")
    target = targets[0]
    token = fetch_dev_token(settings.data_dir, subject, ["agents"], ttl=900)
    context = ssl.create_default_context(cafile=str(target.tls_cert)) if target.tls_cert else None
    say(
        f"agent {subject}: connecting to {target.listen[0]}:{target.listen[1]} with an OIDC token "
        "as the password"
    )
    try:
        conn = pymysql.connect(
            host=target.listen[0],
            port=target.listen[1],
            user=subject,
            password=token,
            database=str(settings.section("demo").get("database", "wardgate_demo")),
            ssl=context,
            autocommit=True,
        )
    except pymysql.err.MySQLError as exc:
        raise UserError(f"cannot connect to the demo gateway: {exc.args[-1]}") from None
    outcomes = []
    with conn, conn.cursor() as cur:
        for title, sql in STEPS:
            say(f"\n== {title}\n   {sql}")
            started = time.monotonic()
            try:
                cur.execute(sql)
                rows = cur.fetchall()
                for row in rows:
                    say("   " + " | ".join("NULL" if v is None else str(v) for v in row))
                if not rows:
                    say(
                        f"   ok, {cur.rowcount} row(s) affected after {time.monotonic() - started:.1f}s"
                    )
                outcomes.append("ok")
            except pymysql.err.MySQLError as exc:
                say(f"   refused: {exc.args[-1]}")
                outcomes.append("refused")
    say("")
    return 0 if outcomes[0] == "ok" else 1


def main(config: Path) -> int:
    from gateway.config import load_settings  # noqa: PLC0415

    return run_agent(load_settings(config))


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
