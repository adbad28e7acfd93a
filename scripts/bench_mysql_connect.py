"""New authenticated connections per second: connect, ``SELECT 1``, close, in a loop, from
several processes at once; prints the total rate.

    python scripts/bench_mysql_connect.py --port P --user U --password X [--seconds 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import pymysql


def worker(port: int, user: str, password: str, seconds: float) -> int:
    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn = pymysql.connect(
            host="127.0.0.1", port=port, user=user, password=password, ssl_disabled=True
        )
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchall()
        conn.close()
        done += 1
    return done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", default="")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    job = (args.port, args.user, args.password, args.seconds)
    with multiprocessing.Pool(args.processes) as pool:
        started = time.monotonic()
        counts = pool.starmap(worker, [job] * args.processes)
        elapsed = time.monotonic() - started
    print(f"{sum(counts) / elapsed:.1f} connections/s ({sum(counts)} in {elapsed:.1f} s)")


if __name__ == "__main__":
    main()
