"""The MySQL benchmark: sysbench direct, through haproxy (mode tcp) and through wardgate.

    scripts/bench_mysql.sh [--time 10] [--repeat 2] [--quick] [--masking on|off]

Every wardgate run is bracketed between two haproxy runs and compared with their mean (the
machine drifts a lot between runs); each configuration is repeated ``--repeat`` times and
the medians are printed. The gateway runs as ``wardgate serve`` in its own process with a
permissive policy, full auditing (SQLite, default durability unless WARDGATE_DURABILITY is
set) and the dev IdP's token as the sysbench password; its CPU time per query comes from
/proc/<pid>/stat before and after each run. New authenticated connections per second come
from scripts/bench_mysql_connect.py.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's packages

import pymysql  # noqa: E402

from gateway.devidp import DevIdP  # noqa: E402
from gateway.vault import Vault  # noqa: E402

DB = "sbtest"
USER, PASSWORD = "wg_bench", "wg-bench-Secret-1"
TICKS = os.sysconf("SC_CLK_TCK")

POLICY = """
version = 1

[policy]
name = "bench"
default = "deny"
unknown = "deny"
{masking}

[[rule]]
name = "sysbench"
action = "allow"
protocol = "mysql"
statements = ["SELECT", "SHOW", "TRANSACTION", "SESSION", "INSERT", "UPDATE", "DELETE", "DDL"]
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    qps: float
    tps: float
    p95_ms: float
    queries: int
    cpu_us_per_query: float | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def prepare_database(table_size: int) -> None:
    root = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    with root, root.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {DB}")
        for host in ("127.0.0.1", "localhost"):
            cur.execute(f"CREATE USER IF NOT EXISTS '{USER}'@'{host}' IDENTIFIED BY '{PASSWORD}'")
            cur.execute(f"GRANT ALL ON {DB}.* TO '{USER}'@'{host}'")
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = '{DB}' AND TABLE_NAME = 'sbtest1'"
        )
        exists = cur.fetchone()[0]
    if not exists:
        sysbench(
            "oltp_point_select",
            3306,
            USER,
            PASSWORD,
            1,
            "disable",
            1,
            ["prepare", f"--table-size={table_size}"],
        )


def sysbench(
    workload: str,
    port: int,
    user: str,
    password: str,
    threads: int,
    ps_mode: str,
    seconds: int,
    extra: list[str] | None = None,
) -> str:
    command = [
        "sysbench",
        workload,
        "--mysql-host=127.0.0.1",
        f"--mysql-port={port}",
        f"--mysql-user={user}",
        f"--mysql-password={password}",
        f"--mysql-db={DB}",
        "--mysql-ssl=off",
        f"--db-ps-mode={ps_mode}",
        f"--threads={threads}",
        f"--time={seconds}",
        "--tables=1",
        "--percentile=95",
    ]
    tail = extra if extra is not None else ["run"]
    for _ in range(3):
        out = subprocess.run(command + tail, capture_output=True, text=True, timeout=seconds + 120)
        # libmysqlclient loads the cleartext plugin once per process; threads connecting at
        # the same moment sometimes race on it ("it is already loaded"): a client-side
        # flake, not a refusal by the server. Run again.
        if out.returncode == 0 or "is already loaded" not in out.stdout + out.stderr:
            break
    if out.returncode != 0:
        raise RuntimeError(f"sysbench failed on port {port}: {out.stdout[-800:]}{out.stderr}")
    return out.stdout


def parse(output: str) -> Run:
    def number(pattern: str) -> float:
        found = re.search(pattern, output)
        if found is None:
            raise RuntimeError(f"no {pattern!r} in sysbench output:\n{output}")
        return float(found.group(1))

    return Run(
        qps=number(r"queries:\s+\d+\s+\(([\d.]+) per sec"),
        tps=number(r"transactions:\s+\d+\s+\(([\d.]+) per sec"),
        p95_ms=number(r"95th percentile:\s+([\d.]+)"),
        queries=int(number(r"queries:\s+(\d+)")),
    )


class Haproxy:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        config = workdir / "haproxy.cfg"
        config.write_text(
            f"""global
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
listen mysql
    bind 127.0.0.1:{self.port}
    server mariadb 127.0.0.1:3306
"""
        )
        self.process = subprocess.Popen(
            ["haproxy", "-f", str(config), "-db"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


class Wardgate:
    def __init__(self, workdir: Path, masking: bool) -> None:
        self.idp = DevIdP(workdir / "idp")
        self.idp.start()
        data = workdir / "wardgate"
        data.mkdir()
        policy = data / "policy.toml"
        policy.write_text(POLICY.format(masking="" if masking else 'masking_profile = "none"'))
        self.port = free_port()
        config = data / "wardgate.toml"
        config.write_text(
            f"""
[gateway]
node = "bench"
data_dir = "{data}"

[identity]
issuer = "{self.idp.url}"
audience = "wardgate"

[policy]
file = "{policy}"

[[mysql]]
name = "sbtest"
listen = "127.0.0.1:{self.port}"
upstream = "127.0.0.1:3306"
credential = "sbtest"
"""
        )
        Vault.open(data, {}, create=True).set(
            name="sbtest", kind="mysql", username=USER, secret=PASSWORD
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("WARDGATE_")}
        if os.environ.get("WARDGATE_DURABILITY"):
            env["WARDGATE_DURABILITY"] = os.environ["WARDGATE_DURABILITY"]
        env["PYTHONPATH"] = str(ROOT)
        self.log = (data / "serve.log").open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "--config",
                str(config),
                "serve",
                "--log-level",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        wait_port(self.port)
        self.token = self.idp.issue_token("bench-agent", ("agents",), 6 * 3600)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.log.close()
        self.idp.stop()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def bench_config(
    workload: str,
    threads: int,
    ps_mode: str,
    seconds: int,
    repeat: int,
    relay: Haproxy,
    gw: Wardgate,
) -> dict[str, float]:
    def direct() -> Run:
        return parse(sysbench(workload, 3306, USER, PASSWORD, threads, ps_mode, seconds))

    def via_relay() -> Run:
        before = cpu_seconds(relay.process.pid)
        run = parse(sysbench(workload, relay.port, USER, PASSWORD, threads, ps_mode, seconds))
        used = cpu_seconds(relay.process.pid) - before
        return Run(
            qps=run.qps,
            tps=run.tps,
            p95_ms=run.p95_ms,
            queries=run.queries,
            cpu_us_per_query=used / max(1, run.queries) * 1e6,
        )

    def via_gateway() -> Run:
        before = cpu_seconds(gw.process.pid)
        run = parse(sysbench(workload, gw.port, "agent", gw.token, threads, ps_mode, seconds))
        used = cpu_seconds(gw.process.pid) - before
        return Run(
            qps=run.qps,
            tps=run.tps,
            p95_ms=run.p95_ms,
            queries=run.queries,
            cpu_us_per_query=used / max(1, run.queries) * 1e6,
        )

    directs, gateways, to_relay, to_direct = [], [], [], []
    relays = [via_relay()]
    for _ in range(repeat):
        d = direct()
        g = via_gateway()
        r = via_relay()
        directs.append(d)
        gateways.append(g)
        relays.append(r)
        to_relay.append(g.qps / ((relays[-2].qps + relays[-1].qps) / 2))
        to_direct.append(g.qps / d.qps)
    return {
        "direct_qps": median([r.qps for r in directs]),
        "relay_qps": median([r.qps for r in relays]),
        "gw_qps": median([r.qps for r in gateways]),
        "direct_p95": median([r.p95_ms for r in directs]),
        "relay_p95": median([r.p95_ms for r in relays]),
        "gw_p95": median([r.p95_ms for r in gateways]),
        "gw_relay": median(to_relay),
        "gw_direct": median(to_direct),
        "cpu_us": median([r.cpu_us_per_query or 0.0 for r in gateways]),
        "relay_cpu_us": median([r.cpu_us_per_query or 0.0 for r in relays]),
    }


def connections(port: int, user: str, password: str, seconds: float) -> float:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_mysql_connect.py"),
            "--port",
            str(port),
            "--user",
            user,
            "--password",
            password,
            "--seconds",
            str(seconds),
            "--processes",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=True,
    )
    return float(out.stdout.split()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time", type=int, default=10, help="seconds per sysbench run")
    parser.add_argument("--repeat", type=int, default=2, help="bracketed gateway runs")
    parser.add_argument("--quick", action="store_true", help="point_select, text, 4 threads")
    parser.add_argument(
        "--masking",
        choices=("on", "off"),
        default="off",
        help="the default masking profile on the results (off: the audited path alone)",
    )
    parser.add_argument("--table-size", type=int, default=10000)
    args = parser.parse_args()
    prepare_database(args.table_size)
    durability = os.environ.get("WARDGATE_DURABILITY", "process-crash")
    print(
        f"# wardgate MySQL benchmark: durability={durability} masking={args.masking} "
        f"time={args.time}s repeat={args.repeat}",
        flush=True,
    )
    if args.quick:
        configs = [("oltp_point_select", "disable", 4)]
    else:
        configs = [
            (w, ps, t)
            for w in ("oltp_point_select", "oltp_read_only")
            for ps in ("disable", "auto")
            for t in (1, 4)
        ]
    with tempfile.TemporaryDirectory(prefix="wg-bench-") as tmp:
        workdir = Path(tmp)
        relay = Haproxy(workdir)
        gw = Wardgate(workdir, masking=args.masking == "on")
        try:
            header = (
                f"{'workload':<18}{'ps':<8}{'thr':>4}{'direct qps':>12}{'relay qps':>11}"
                f"{'wg qps':>9}{'wg/relay':>9}{'wg/direct':>10}{'p95 d/r/wg ms':>17}"
                f"{'CPU/q wg (relay)':>18}"
            )
            print(header, flush=True)
            for workload, ps_mode, threads in configs:
                m = bench_config(workload, threads, ps_mode, args.time, args.repeat, relay, gw)
                p95 = f"{m['direct_p95']:.2f}/{m['relay_p95']:.2f}/{m['gw_p95']:.2f}"
                print(
                    f"{workload:<18}{ps_mode:<8}{threads:>4}{m['direct_qps']:>12.0f}"
                    f"{m['relay_qps']:>11.0f}{m['gw_qps']:>9.0f}{m['gw_relay']:>9.2f}"
                    f"{m['gw_direct']:>10.2f}{p95:>17}"
                    f"{m['cpu_us']:>10.0f}us ({m['relay_cpu_us']:.0f}us)",
                    flush=True,
                )
            seconds = max(3.0, args.time / 2)
            direct_cps = connections(3306, USER, PASSWORD, seconds)
            gw_cps = connections(gw.port, "agent", gw.token, seconds)
            print(
                f"new connections/s (connect, SELECT 1, close; 4 processes): "
                f"direct {direct_cps:.0f}, wardgate {gw_cps:.0f}",
                flush=True,
            )
        finally:
            gw.stop()
            relay.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
