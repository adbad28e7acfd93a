"""Load test: many concurrent MySQL agent sessions against one and against two gateway nodes.

Each scenario starts `wardgate serve` node(s) on a fresh PostgreSQL schema, a development
IdP, and an approver loop (a store follower that approves every held command as an
on-call operator would, through the Approval aggregate). Agents are threads with their own
PyMySQL connection and token, spread over the nodes; each runs point SELECTs, and one
statement in ``--hold-every`` is an UPDATE that the policy holds for approval. After the
warm-up (all sessions connected) the run lasts ``--duration`` seconds; the table shows
commands per second, errors (the goal is 0), p50/p95 latency of plain and held commands,
and each node's peak RSS (VmHWM).

    python scripts/load_test.py --sessions 200 --duration 60 --nodes 1,2

The machine is shared and small: the agents' own CPU (200 Python threads) competes with
the gateway's, so the figures are a floor for the gateway, not its ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pymysql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from events.domain import Approval, DomainError
from events.follow import Follower
from events.projections import ApprovalsView
from events.store import ConcurrencyConflict, EventStore, StoreSettings
from gateway.devidp import DevIdP
from gateway.vault import Vault

PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
DB, USER, PASSWORD = "wg_load", "wg_load", "wg-load-Secret-1"
ROWS = 1000
POLICY = """
version = 1
[policy]
name = "load"
default = "deny"
unknown = "deny"
[policy.review]
approver_groups = ["oncall"]
quorum = 1
expiry = "5m"
[[rule]]
name = "hold-updates"
action = "review"
protocol = "mysql"
statements = ["UPDATE"]
approver_groups = ["oncall"]
[[rule]]
name = "reads"
action = "allow"
protocol = "mysql"
statements = ["SELECT", "SESSION"]
"""


def prepare_mariadb() -> None:
    with pymysql.connect(**MARIADB, autocommit=True) as conn, conn.cursor() as cur:  # type: ignore[arg-type]
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DB}`")
        for host in ("127.0.0.1", "localhost"):
            cur.execute(f"CREATE USER IF NOT EXISTS '{USER}'@'{host}' IDENTIFIED BY '{PASSWORD}'")
            cur.execute(f"GRANT ALL ON `{DB}`.* TO '{USER}'@'{host}'")
        cur.execute(f"DROP TABLE IF EXISTS `{DB}`.items")
        cur.execute(f"CREATE TABLE `{DB}`.items (id INT PRIMARY KEY, name VARCHAR(40), n INT)")
        cur.executemany(
            f"INSERT INTO `{DB}`.items VALUES (%s, %s, 0)",
            [(i, f"item-{i}") for i in range(ROWS)],
        )


@dataclass
class NodeProcess:
    name: str
    proc: subprocess.Popen[str]
    port: int
    config: Path

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0


def start_node(root: Path, name: str, idp: DevIdP, store_url: str) -> NodeProcess:
    data = root / "data"
    config = root / f"{name}.toml"
    config.write_text(f"""
[gateway]
node = "{name}"
data_dir = "{data}"
[store]
url = "{store_url}"
[identity]
issuer = "{idp.url}"
audience = "wardgate"
[policy]
file = "{root / "policy.toml"}"
[[mysql]]
name = "shop"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:3306"
credential = "shop"
max_hold = "60s"
""")
    log = (root / f"{name}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "--config", str(config), "serve"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "listening on port" in line:
            return NodeProcess(
                name=name, proc=proc, port=int(line.rsplit(" ", 1)[1]), config=config
            )
    raise SystemExit(f"node {name} did not start; see {root / f'{name}.log'}")


class Approver:
    """An on-call operator who approves every held command as soon as it is seen."""

    def __init__(self, store_url: str) -> None:
        self.store = EventStore(StoreSettings(url=store_url))
        self.view = ApprovalsView()
        self.follower = Follower(self.store, [self.view], on_change=self._decide)
        self.approved = 0
        self.thread = threading.Thread(target=self.follower.run, daemon=True)

    def _decide(self, _count: int) -> None:
        for record in self.view.pending():
            approval = self.store.load(Approval, uuid.UUID(record.id))
            if approval is None or approval.status != Approval.PENDING:
                continue
            try:
                event = approval.approve(
                    subject="load-oncall",
                    groups={"oncall"},
                    reason="load test",
                    window_seconds=None,
                    now=time.time(),
                )
                self.store.append([event])
                self.approved += 1
            except (DomainError, ConcurrencyConflict):
                continue

    def __enter__(self) -> Approver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.follower.close()
        self.thread.join(5)
        self.store.close()


@dataclass
class Tally:
    plain: list[float] = field(default_factory=list)
    held: list[float] = field(default_factory=list)
    errors: int = 0
    connect_errors: int = 0
    messages: dict[str, int] = field(default_factory=dict)


def agent(
    number: int,
    port: int,
    token: str,
    hold_every: int,
    ready: threading.Barrier,
    start: threading.Event,
    stop: threading.Event,
    tally: Tally,
    connecting: threading.Semaphore,
) -> None:
    try:
        with connecting:  # log in a few at a time, as agents arriving over a minute would
            conn = pymysql.connect(
                host="127.0.0.1", port=port, user="agent", password=token, database=DB,
                autocommit=True, read_timeout=120, connect_timeout=60,
            )  # fmt: skip
    except pymysql.err.MySQLError as exc:
        tally.connect_errors += 1
        key = f"connect: {str(exc.args)[:110]}"
        tally.messages[key] = tally.messages.get(key, 0) + 1
        ready.wait()
        return
    ready.wait()
    start.wait()
    i = 0
    with conn, conn.cursor() as cur:
        while not stop.is_set():
            i += 1
            held = hold_every > 0 and (i + number) % hold_every == 0
            t0 = time.perf_counter()
            try:
                if held:
                    cur.execute(f"UPDATE items SET n = n + 1 WHERE id = {number} /* {i} */")
                else:
                    cur.execute(
                        f"SELECT id, name, n FROM items WHERE id = {(number * 7 + i) % ROWS}"
                    )
                    cur.fetchall()
            except pymysql.err.MySQLError as exc:
                tally.errors += 1
                key = str(exc.args)[:120]
                tally.messages[key] = tally.messages.get(key, 0) + 1
                continue
            (tally.held if held else tally.plain).append(time.perf_counter() - t0)


def diagnose(stuck: int, nodes: list[NodeProcess]) -> None:
    """Sessions still waiting after the run: show where (MariaDB, the nodes' status)."""
    print(f"  {stuck} session(s) still waiting 15 s after the end; MariaDB says:", flush=True)
    with pymysql.connect(**MARIADB) as conn, conn.cursor() as cur:  # type: ignore[arg-type]
        cur.execute(
            "SELECT user, time, state, LEFT(info, 100) FROM information_schema.processlist "
            "WHERE time > 5 AND command <> 'Sleep' AND user <> 'system user'"
        )
        for row in cur.fetchall():
            print(f"    {row}")
    for n in nodes:
        marker = json.loads((Path(n.config).parent / "data" / f"status-{n.name}.json").read_text())
        with urllib.request.urlopen(marker["url"], timeout=5) as response:
            status = json.loads(response.read())
        print(f"    node {n.name}: store {status['store']}, writer {status['writer']}")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


@dataclass
class Result:
    nodes: int
    sessions: int
    seconds: float
    commands: int
    held: int
    errors: int
    connect_errors: int
    p50_ms: float
    p95_ms: float
    held_p95_ms: float
    rss_mb: list[float]
    approved: int
    messages: dict[str, int]


def scenario(n_nodes: int, sessions: int, duration: float, hold_every: int) -> Result:
    schema = f"wg_load_{uuid.uuid4().hex[:8]}"
    store_url = f"{PG_BASE}?schema={schema}"
    root = Path(tempfile.mkdtemp(prefix="wg-load-"))
    (root / "policy.toml").write_text(POLICY)
    (root / "data").mkdir()
    Vault.open(root / "data", {}, create=True).set(
        name="shop", kind="mysql", username=USER, secret=PASSWORD
    )
    nodes: list[NodeProcess] = []
    with DevIdP(root / "idp") as idp:
        try:
            for k in range(n_nodes):
                nodes.append(start_node(root, f"load-{k + 1}", idp, store_url))
            tokens = [idp.issue_token(f"agent-{i}", ["agents"], ttl=3600) for i in range(sessions)]
            ready = threading.Barrier(sessions + 1)
            start, stop = threading.Event(), threading.Event()
            tallies = [Tally() for _ in range(sessions)]
            connecting = threading.Semaphore(20)
            threads = [
                threading.Thread(
                    target=agent,
                    args=(
                        i,
                        nodes[i % n_nodes].port,
                        tokens[i],
                        hold_every,
                        ready,
                        start,
                        stop,
                        tallies[i],
                        connecting,
                    ),
                    daemon=True,
                )
                for i in range(sessions)
            ]
            with Approver(store_url) as approver:
                for t in threads:
                    t.start()
                ready.wait()
                began = time.perf_counter()
                start.set()
                time.sleep(duration)
                stop.set()
                deadline = time.monotonic() + 15
                for t in threads:
                    t.join(max(0.0, deadline - time.monotonic()))
                seconds = time.perf_counter() - began
                stuck = [t for t in threads if t.is_alive()]
                if stuck:
                    diagnose(len(stuck), nodes)
                for t in stuck:
                    t.join(150)
            plain = [v for t in tallies for v in t.plain]
            held = [v for t in tallies for v in t.held]
            messages: dict[str, int] = {}
            for t in tallies:
                for k, v in t.messages.items():
                    messages[k] = messages.get(k, 0) + v
            return Result(
                nodes=n_nodes,
                sessions=sessions,
                seconds=seconds,
                commands=len(plain) + len(held),
                held=len(held),
                errors=sum(t.errors for t in tallies),
                connect_errors=sum(t.connect_errors for t in tallies),
                p50_ms=percentile(plain, 50) * 1000,
                p95_ms=percentile(plain, 95) * 1000,
                held_p95_ms=percentile(held, 95) * 1000,
                rss_mb=[n.peak_rss_mb() for n in nodes],
                approved=approver.approved,
                messages=messages,
            )
        finally:
            for n in nodes:
                n.proc.terminate()
            for n in nodes:
                try:
                    n.proc.wait(20)
                except subprocess.TimeoutExpired:
                    n.proc.kill()
            with psycopg.connect(PG_BASE, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--nodes", default="1,2", help="comma-separated node counts to run")
    parser.add_argument("--hold-every", type=int, default=50, help="one held UPDATE in N")
    args = parser.parse_args()
    os.environ.pop("WARDGATE_CONFIG", None)
    prepare_mariadb()
    results = []
    # Every agent session is one upstream connection: make room for them on the shared
    # server for the length of the run (and put the limit back after).
    with pymysql.connect(**MARIADB, autocommit=True) as conn, conn.cursor() as cur:  # type: ignore[arg-type]
        cur.execute("SELECT @@global.max_connections")
        (limit,) = cur.fetchone()
        if limit < args.sessions + 100:
            cur.execute(f"SET GLOBAL max_connections = {args.sessions + 100}")
        try:
            for count in (int(c) for c in args.nodes.split(",")):
                print(
                    f"running {args.sessions} sessions on {count} node(s) for {args.duration:g} s",
                    flush=True,
                )
                results.append(scenario(count, args.sessions, args.duration, args.hold_every))
        finally:
            cur.execute(f"SET GLOBAL max_connections = {limit}")
    print()
    head = (
        f"{'nodes':>5} {'sessions':>8} {'cmds/s':>8} {'commands':>9} {'held':>5} "
        f"{'approved':>8} {'errors':>6} {'conn err':>8} {'p50 ms':>7} {'p95 ms':>7} {'held p95 ms':>11} "
        f"peak RSS MB"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.nodes:>5} {r.sessions:>8} {r.commands / r.seconds:>8.0f} {r.commands:>9} "
            f"{r.held:>5} {r.approved:>8} {r.errors:>6} {r.connect_errors:>8} {r.p50_ms:>7.1f} {r.p95_ms:>7.1f} "
            f"{r.held_p95_ms:>11.1f} {' + '.join(f'{m:.0f}' for m in r.rss_mb)}"
        )
    for r in results:
        for message, count in sorted(r.messages.items(), key=lambda kv: -kv[1])[:5]:
            print(f"  {r.nodes} node(s): {count} x {message}")
    return 0 if all(r.errors == 0 and r.connect_errors == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
