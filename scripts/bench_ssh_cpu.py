"""The gateway's CPU per MB relayed over SSH: the robust figure behind bench_ssh's throughput.

Run as root (it starts /usr/sbin/sshd with a test user; sshpass needed). The gateway runs in
this process's background thread (the integration-test harness), the client and sshd are
other processes, so this process's CPU time (``os.times``, user + system) over a transfer,
until the gateway is idle again, is the gateway's cost. Throughput on two shared cores is
noisy; CPU per MB moves much less. Each leg runs ``--rounds`` times; the median is printed.

    python scripts/bench_ssh_cpu.py [--mb 200] [--rounds 3] [--legs down,up,pty]
    python scripts/bench_ssh_cpu.py --profile down   # py-spy record of one leg (py-spy needed;
                                                     # SPY_ARGS="--gil": only samples holding the GIL)
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.ssh.gateway import ssh_gateway
from tests.integration.ssh.sshd import running_sshd

SSH_OPTS = [
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR", "-o", "PubkeyAuthentication=no",
]  # fmt: skip
LINE = b"the quick brown fox jumps over the lazy dog again and again\n"


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def system() -> float:
    return os.times().system


def settle(since: float) -> float:
    """This process's CPU once the gateway is idle again (the writer may still be storing)."""
    settled = cpu()
    while True:
        time.sleep(0.2)
        now = cpu()
        if now - settled < 0.005:
            return settled
        settled = now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--legs", default="down,up")
    parser.add_argument("--profile", default="", help="py-spy record this leg once")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        os.chmod(tmp, 0o755)  # the sshd user reads the bulk file
        (tmp / "gw").mkdir()
        bulk = tmp / "bulk.txt"
        with bulk.open("wb") as fh:
            block = LINE * ((1 << 20) // len(LINE))
            size = 0
            while size < args.mb << 20:
                fh.write(block)
                size += len(block)
        bulk.chmod(0o644)
        mb = size / 1e6
        with running_sshd(tmp / "sshd") as sshd, ssh_gateway(tmp / "gw", sshd) as gw:
            token = gw.token("bench", ttl=3600)
            base = ["sshpass", "-e", "ssh", *SSH_OPTS, "-p", str(gw.ports["box"])]
            legs = {
                "down": ([*base, "agent@127.0.0.1", f"cat {bulk}"], None),
                "up": ([*base, "agent@127.0.0.1", "cat > /dev/null"], bulk),
                "pty": ([*base, "-tt", "agent@127.0.0.1", f"cat {bulk}"], None),
            }
            env = {**os.environ, "SSHPASS": token}

            def run(leg: str) -> tuple[float, float, float]:
                argv, stdin = legs[leg]
                settle(cpu())
                c, s, t = cpu(), system(), time.perf_counter()
                with open(stdin or os.devnull, "rb") as fh:
                    subprocess.run(argv, env=env, stdin=fh, stdout=subprocess.DEVNULL, check=True)
                wall = time.perf_counter() - t
                used = settle(c) - c
                return used / mb * 1000, mb / wall, (system() - s) / mb * 1000

            if args.profile:
                spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
                out = tmp.parent / f"wardgate-{args.profile}.txt"
                argv = [spy, "record", "-p", str(os.getpid()), "-r", "200", "-o", str(out),
                        "--nonblocking", "-f", "raw", *os.environ.get("SPY_ARGS", "").split()]  # fmt: skip
                prof = subprocess.Popen(argv)
                time.sleep(1)
                ms, rate, _ = run(args.profile)
                prof.send_signal(signal.SIGINT)
                prof.wait()
                print(f"{args.profile}: {ms:.2f} ms/MB, {rate:.0f} MB/s; profile {out}")
                return
            results: dict[str, list[tuple[float, float, float]]] = {}
            for _ in range(args.rounds):
                for leg in args.legs.split(","):
                    results.setdefault(leg, []).append(run(leg))
            for leg, runs in results.items():
                ms = [r[0] for r in runs]
                rates = [r[1] for r in runs]
                sys_ms = statistics.median(r[2] for r in runs)
                print(
                    f"{leg:5} gateway CPU {statistics.median(ms):5.2f} ms/MB "
                    f"[{min(ms):.2f}-{max(ms):.2f}] (system {sys_ms:.2f}), "
                    f"{statistics.median(rates):5.0f} MB/s "
                    f"[{min(rates):.0f}-{max(rates):.0f}] ({mb:.0f} MB x {len(runs)})"
                )


if __name__ == "__main__":
    main()
