"""The PostgreSQL store goes away under load and comes back: refuse clearly, resume, no twins.

The machine's shared PostgreSQL is never touched: the test runs a private server (initdb as
the ``postgres`` user in a temporary directory, its own port) and stops and starts that one.
A gateway (in-process) serves agents that keep running uniquely marked statements; during
the outage each is refused with "the audit store is unavailable" within a few seconds (the
store's connect timeout), never run unrecorded; after the server is back the same gateway
serves again, and every statement appears at most once in the store, with a chain that
verifies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pymysql
import pytest

from events.domain import Session
from events.store import EventStore, StoreSettings

from .harness import RunningGateway, running_gateway
from .nodes import free_port
from .policies import BASIC

PG_BIN = Path("/usr/lib/postgresql/15/bin")
UNAVAILABLE = "audit store is unavailable"
CONNECT_TIMEOUT = 2  # seconds: how long a write may wait for the store before refusing

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.mariadb,
    pytest.mark.skipif(not (PG_BIN / "initdb").exists(), reason="PostgreSQL 15 binaries"),
]


class PrivatePostgres:
    """A throw-away PostgreSQL server on its own port, run as the ``postgres`` user."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="wg-pg-"))
        self.port = free_port()
        self.data = self.root / "data"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._as_owner(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )

    def _as_owner(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=120)

    @property
    def url(self) -> str:
        return (
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
            f"?schema=wg_outage&connect_timeout={CONNECT_TIMEOUT}"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_owner(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._as_owner(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    pg.start()
    try:
        yield pg
    finally:
        pg.remove()


@dataclass
class Outcome:
    mark: str
    started: float
    seconds: float
    error: str | None = None


@dataclass
class Load:
    """Agents on long-lived connections running marked statements, each outcome kept."""

    gw: RunningGateway
    run: str
    agents: int = 6
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def _agent(self, number: int) -> None:
        token = self.gw.token(f"agent-{number}")
        n = 0
        conn = None
        while not self.stop.is_set():
            if conn is None:
                try:
                    conn = self.gw.connect(token, database="wg_it", read_timeout=30)
                except pymysql.err.MySQLError:
                    time.sleep(0.1)
                    continue
            n += 1
            mark = f"outmark-{self.run}-{number}-{n}"
            started = time.monotonic()
            outcome = Outcome(mark=mark, started=started, seconds=0.0)
            try:
                with conn.cursor() as cur:
                    cur.execute(f"SELECT '{mark}'")
            except pymysql.err.OperationalError as exc:
                outcome.error = str(exc.args[-1])
                if not isinstance(exc.args[0], int) or exc.args[0] >= 2000:  # client-side
                    conn = None
            outcome.seconds = time.monotonic() - started
            self.outcomes.append(outcome)
            time.sleep(0.01)  # a steady stream, not a CPU burner on a shared machine

    def __enter__(self) -> Load:
        self.threads = [
            threading.Thread(target=self._agent, args=(i,), daemon=True) for i in range(self.agents)
        ]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def between(self, start: float, end: float) -> list[Outcome]:
        return [o for o in list(self.outcomes) if start <= o.started < end]


def wait_for(predicate: object, timeout: float) -> float:
    """Seconds until ``predicate()`` held; fails after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


def test_outage_refuses_clearly_and_service_resumes_without_restart(
    private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    with running_gateway(tmp_path, policy=BASIC, store_url=private_pg.url) as gw:
        ctx = gw.started.context
        assert ctx is not None
        with Load(gw, run) as load:
            wait_for(lambda: sum(o.error is None for o in load.outcomes) >= 20, 20)
            private_pg.stop()
            down_at = time.monotonic()
            time.sleep(CONNECT_TIMEOUT * 4)
            restarting = time.monotonic()
            private_pg.start()
            up_at = time.monotonic()
            recovered = wait_for(
                lambda: any(o.error is None for o in load.between(up_at, time.monotonic())), 30
            )
            time.sleep(1.0)
            with gw.connect(gw.token("after"), database="wg_it") as conn, conn.cursor() as cur:
                cur.execute("SELECT 'after the outage'")
            wait_for(lambda: ctx.writer.healthy and ctx.views.healthy, 10)
        # Those tried and answered while the server was down (one that waited for the store
        # may rightly succeed once the server is back: its events were stored first).
        during = [
            o for o in load.between(down_at, restarting) if o.started + o.seconds < restarting
        ]
        assert during, "no statement was tried during the outage"
        assert all(o.error is not None for o in during), "a statement ran with the store down"
        assert all(UNAVAILABLE in (o.error or "") for o in during), {o.error for o in during}
        # A refusal waits for the writer's attempt in progress and then its own: at most
        # two connect timeouts (plus scheduling on a busy machine).
        slowest = max(o.seconds for o in load.outcomes)
        assert slowest < CONNECT_TIMEOUT * 2 + 2, f"a statement waited {slowest:.1f} s"
        assert recovered < 4, f"service resumed {recovered:.1f} s after the store came back"
        ok = {o.mark for o in load.outcomes if o.error is None}
        refused = {o.mark for o in load.outcomes if o.error is not None}

    with EventStore(StoreSettings(url=private_pg.url)) as store:
        received: dict[str, int] = {}
        forwarded_keys: set[tuple[uuid.UUID, int]] = set()
        keys: dict[str, tuple[uuid.UUID, int]] = {}
        for _, e in store.iter_events():
            if isinstance(e, Session.CommandReceived) and f"outmark-{run}-" in e.text:
                mark = e.text.split("'")[1]
                received[mark] = received.get(mark, 0) + 1
                keys[mark] = (e.originator_id, e.seq)
            elif isinstance(e, Session.CommandForwarded):
                forwarded_keys.add((e.originator_id, e.seq))
        twins = {m: c for m, c in received.items() if c > 1}
        assert not twins, f"recorded more than once: {twins}"
        assert ok <= set(received), "a statement that ran is missing from the store"
        assert all(keys[m] in forwarded_keys for m in ok)
        assert not any(keys[m] in forwarded_keys for m in refused if m in keys)
        report = store.verify()
        assert report.ok, report
    print(
        f"outage: {len(ok)} ok, {len(refused)} refused, slowest {slowest:.2f} s, "
        f"resumed {recovered:.2f} s after the store was back"
    )


def test_a_new_connection_during_the_outage_is_refused_and_the_node_survives(
    private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    with running_gateway(tmp_path, policy=BASIC, store_url=private_pg.url) as gw:
        with gw.connect(database="wg_it") as conn, conn.cursor() as cur:
            cur.execute("SELECT 'before'")
        private_pg.stop()
        try:
            with pytest.raises(pymysql.err.OperationalError, match=UNAVAILABLE):
                gw.connect(gw.token("late-agent"), database="wg_it").close()
        finally:
            private_pg.start()
        time.sleep(1.0)
        with gw.connect(database="wg_it") as conn, conn.cursor() as cur:
            cur.execute("SELECT 'after'")
