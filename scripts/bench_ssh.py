"""Direct ssh to a test sshd vs the same through wardgate: set-up, exec round trip, bulk.

Run by scripts/bench_ssh.sh (as root: it starts /usr/sbin/sshd with a test user). The gateway
runs in this process's background thread (the integration-test harness); the clients are the
real OpenSSH client (set-up, bulk) and asyncssh (exec round trips on one connection).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncssh

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.ssh.gateway import ssh_gateway
from tests.integration.ssh.sshd import PASSWORD, USER, running_sshd

RUNS = int(os.environ.get("BENCH_RUNS", "30"))
BULK_MB = int(os.environ.get("BENCH_BULK_MB", "200"))
SSH_OPTS = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "PubkeyAuthentication=no",
]


def ssh(port: int, user: str, secret: str, command: str, **kw: object) -> float:
    argv = ["sshpass", "-e", "ssh", *SSH_OPTS, "-p", str(port), f"{user}@127.0.0.1", command]
    started = time.perf_counter()
    subprocess.run(argv, env={**os.environ, "SSHPASS": secret}, check=True, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def round_trips(port: int, user: str, secret: str) -> list[float]:
    async with asyncssh.connect(
        "127.0.0.1",
        port,
        username=user,
        password=secret,
        known_hosts=None,
        client_keys=[],
        agent_path=None,
        config=[],
    ) as conn:
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            await conn.run("true", check=True)
            times.append(time.perf_counter() - started)
        return times


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "gw").mkdir()
        with running_sshd(tmp / "sshd") as sshd, ssh_gateway(tmp / "gw", sshd) as gw:
            token = gw.token("bench", ttl=3600)
            legs = {
                "direct": (sshd.port, USER, PASSWORD),
                "wardgate": (gw.ports["box"], "agent", token),
            }
            bulk = tmp / "bulk.txt"
            line = b"the quick brown fox jumps over the lazy dog again and again\n"
            with bulk.open("wb") as fh:
                block = line * (1 << 20 // len(line))
                size = 0
                while size < BULK_MB << 20:
                    fh.write(block)
                    size += len(block)
            results: dict[str, dict[str, float]] = {name: {} for name in legs}
            setups: dict[str, list[float]] = {name: [] for name in legs}
            for _ in range(RUNS):  # interleaved, so that noise hits both legs alike
                for name, leg in legs.items():
                    setups[name].append(ssh(*leg, "true"))
            for name, leg in legs.items():
                r = results[name]
                r["setup_p50_ms"] = pct(setups[name], 0.5)
                r["setup_p95_ms"] = pct(setups[name], 0.95)
                trips = asyncio.run(round_trips(*leg))
                r["exec_p50_ms"] = pct(trips, 0.5)
                r["exec_p95_ms"] = pct(trips, 0.95)
            os.chmod(tmp, 0o755)  # the sshd user reads the bulk file for the download
            zeros = min(size, 20 << 20)
            for name, leg in legs.items():
                with bulk.open("rb") as stdin:
                    up = ssh(*leg, "cat > /dev/null", stdin=stdin)
                down = ssh(*leg, f"cat {bulk}", stdout=subprocess.DEVNULL)
                binary = ssh(*leg, f"head -c {zeros} /dev/zero", stdout=subprocess.DEVNULL)
                results[name]["up_MBps"] = size / up / 1e6
                results[name]["down_MBps"] = size / down / 1e6
                results[name]["down0_MBps"] = zeros / binary / 1e6
            print(f"{'':10}" + "".join(f"{k:>15}" for k in results["direct"]))
            for name, r in results.items():
                print(f"{name:10}" + "".join(f"{v:15.1f}" for v in r.values()))
            d, w = results["direct"], results["wardgate"]
            print(
                f"set-up overhead p50: {w['setup_p50_ms'] - d['setup_p50_ms']:+.1f} ms "
                "(goal <= +50 ms); "
                f"throughput ratio upload {w['up_MBps'] / d['up_MBps']:.2f}x, "
                f"download text {w['down_MBps'] / d['down_MBps']:.2f}x, "
                f"download NUL bytes {w['down0_MBps'] / d['down0_MBps']:.2f}x (goal >= 0.5x)"
            )


if __name__ == "__main__":
    main()
