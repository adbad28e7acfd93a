"""Benchmark of session recordings: compression, recording cost, seek latency.

A synthetic one-hour terminal session (default 200 MB of raw output: colored listings,
top-like redraws, logs with UTF-8, a full-screen editor, some binary garbage; a distinct
corpus of --corpus-mb cycled to the size, writes spread evenly over the hour) is recorded
through ``SessionRecorder`` into a SQLite event store, then:

* compression: stored bytes (every stored event of the session and of its index, as the
  store keeps them: zstd-compressed JSON) against the raw output bytes;
* recording cost, in isolation: CPU time of ``SessionRecorder.output`` per MB, against the
  CPU cost of relaying the same bytes through a socket pair and a trio task; the store's
  write cost per MB is reported too;
* recording overhead on the real SSH data path (issue #8's goal), in the same run: the
  synthetic session's bytes sent as terminal output (``ssh -tt HOST cat FILE``: remote
  PTY, masking, recording, keyframes) through an in-process gateway with three targets on
  one sshd: ``record_limit = 0`` (the same path, nothing recorded) and the default (a
  budget of 8 MiB per stream of a channel, refilled at 256 KiB/s; past it, counts) in
  every round, swapping places every other round (ABBA) so that a drift of the machine's
  speed favours neither, and everything recorded in the first ``--everything-rounds`` (2;
  the renderer takes 2-3 minutes a round over its keyframes). Each leg reports the
  gateway's CPU per MB (this process's CPU, until the gateway is idle again after the
  transfer, so the writer's backlog counts for the leg that caused it, plus the CPU it
  spends taking keyframes back; the clients and sshd are other processes), the keyframe
  renderer process's CPU apart (it renders only while the gateway is not busy: the next
  leg starts when it is done) and throughput; overhead = recording leg / unrecorded leg of
  the same round - 1, median over the rounds, each round's ratio printed too (the
  machine's noise is of the order of the effect). ``--ssh-repeat N`` sends the session N
  times in each leg (and leaves out everything): ``--ssh-repeat 15`` is a 3 GB transfer,
  over a minute, long enough for the renderer's queue to spill to disk while the relay is
  busy. Needs root, OpenSSH and sshpass (as scripts/bench_ssh.sh); skipped otherwise, or
  with ``--ssh-mb 0``;
* seeking: opening the recording, then 100 random times, each rendered from the nearest
  keyframe (in-memory keyframe caching off, so every seek pays full price).

Run: ``python scripts/bench_replay.py [--size-mb 200] [--corpus-mb 16] [--ssh-mb 200]
[--ssh-rounds 6] [--everything-rounds 2] [--ssh-repeat 1]`` (``--ssh-only``: the SSH
section alone, about 10 minutes).
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from events.domain import DomainEvent, RecordingIndex, RecordingKeyframes, Session
from events.recording import Recording
from events.store import EventStore, StoreSettings
from gateway.recording import SessionRecorder
from gateway.session import SessionLog
from tests.events.test_recording import synthetic_writes

MB = 1_000_000


class BatchingSink:
    """Collects events like the writer's channel; the bench stores them in batches apart."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def submit(self, events: Sequence[DomainEvent]) -> None:
        self.events.extend(events)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def relay_cost(writes: list[bytes], total: int) -> float:
    """CPU seconds per MB to pass the writes through a socket pair."""
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sent = 0
    start = time.thread_time()
    while sent < total:
        for w in writes:
            a.sendall(w)
            got = 0
            while got < len(w):
                got += len(b.recv(1 << 20))
            sent += len(w)
            if sent >= total:
                break
    cpu = time.thread_time() - start
    a.close()
    b.close()
    return cpu / (sent / MB)


def trio_relay_cost(writes: list[bytes], total: int) -> float:
    """CPU seconds per MB for a trio relay task (receive_some, send_all) between socket pairs."""
    import trio

    async def run() -> float:
        a_in, b_in = trio.socket.socketpair()
        a_out, b_out = trio.socket.socketpair()
        src, relay_in = trio.SocketStream(a_in), trio.SocketStream(b_in)
        relay_out, dst = trio.SocketStream(a_out), trio.SocketStream(b_out)
        cpu = 0.0

        async def produce() -> None:
            sent = 0
            while sent < total:
                for w in writes:
                    await src.send_all(w)
                    sent += len(w)
                    if sent >= total:
                        break
            await src.send_eof()

        async def relay() -> None:
            nonlocal cpu
            while True:
                start = time.thread_time()
                data = await relay_in.receive_some(65536)
                if not data:
                    await relay_out.send_eof()
                    return
                await relay_out.send_all(data)
                cpu += time.thread_time() - start

        async def consume() -> None:
            while await dst.receive_some(1 << 20):
                pass

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            nursery.start_soon(relay)
            nursery.start_soon(consume)
        return cpu

    return trio.run(run) / (total / MB)


def coalesce(pieces: list[bytes], size: int) -> list[bytes]:
    """Writes of about ``size`` bytes, as a relay reading a busy PTY receives them."""
    out: list[bytes] = []
    buf = bytearray()
    for p in pieces:
        buf += p
        if len(buf) >= size:
            out.append(bytes(buf))
            buf.clear()
    if buf:
        out.append(bytes(buf))
    return out


SSH_TARGETS = {
    "unrecorded": "norec",
    "default budget": "box",  # 8 MiB, refilled at 256 KiB/s: the goal is judged here
    "everything": "full",  # record_limit unlimited (opt-in)
}


def ssh_overhead(
    corpus: list[bytes], size: int, rounds: int, repeat: int = 1, everything_rounds: int = 2
) -> None:
    """The recording's cost on the real SSH path: see the module docstring."""
    import shutil
    import subprocess

    from tests.integration.ssh.gateway import ssh_gateway
    from tests.integration.ssh.sshd import have_openssh, running_sshd

    if os.geteuid() != 0 or not have_openssh() or shutil.which("sshpass") is None:
        print("\n== SSH data path: skipped (needs root, OpenSSH and sshpass)")
        return
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        os.chmod(tmp, 0o755)  # the sshd user reads the file
        source = tmp / "session.bin"
        written = 0
        with source.open("wb") as fh:
            while written < size:
                for data in corpus:
                    fh.write(data)
                    written += len(data)
                    if written >= size:
                        break
        source.chmod(0o644)
        (tmp / "gw").mkdir()
        with running_sshd(tmp / "sshd") as sshd:
            extra = "".join(
                f"""
[[ssh]]
name = "{name}"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:{sshd.port}"
credential = "{credential}"
host_key = "{sshd.host_key}"
record_limit = {limit}
"""
                for name, credential, limit in (("norec", "down", 0), ("full", "keyed", 1 << 40))
            )
            with ssh_gateway(tmp / "gw", sshd, extra=extra) as gw:
                token = gw.token("bench-replay", ttl=3600)
                cpu: dict[str, list[float]] = {leg: [] for leg in SSH_TARGETS}
                rate: dict[str, list[float]] = {leg: [] for leg in SSH_TARGETS}
                render: dict[str, list[float]] = {leg: [] for leg in SSH_TARGETS}
                spilled: dict[str, list[int]] = {leg: [] for leg in SSH_TARGETS}
                ran: dict[str, list[int]] = {leg: [] for leg in SSH_TARGETS}  # round numbers
                context = gw.started.context
                renderer = context.keyframes if context is not None else None
                for n in range(rounds):
                    order = ["unrecorded", "default budget"]
                    if repeat == 1 and n < everything_rounds:
                        order.append("everything")  # its keyframes take minutes a round
                    if n % 2:  # ABBA: a drift of the machine does not favour one leg
                        order[0], order[1] = order[1], order[0]
                    for leg in order:
                        target = SSH_TARGETS[leg]
                        argv = [
                            "sshpass", "-e", "ssh", "-tt", "-o", "StrictHostKeyChecking=no",
                            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                            "-o", "PubkeyAuthentication=no", "-p", str(gw.ports[target]),
                            "agent@127.0.0.1", "cat " + " ".join([str(source)] * repeat),
                        ]  # fmt: skip
                        c, t = time.process_time(), time.perf_counter()
                        k = _process_cpu(renderer.pid if renderer else None)
                        spill = renderer.spilled if renderer else 0
                        subprocess.run(
                            argv,
                            env={**os.environ, "SSHPASS": token},
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            check=True,
                        )
                        wall = time.perf_counter() - t
                        # The writer may still be storing queued chunks and the keyframe
                        # worker finishing: that CPU is this leg's, not the next one's.
                        settled = time.process_time()
                        while True:
                            time.sleep(0.25)
                            now = time.process_time()
                            if now - settled < 0.01:
                                break
                            settled = now
                        # The renderer process works on after the transfer (spare CPU):
                        # its CPU is its own column, and the next leg starts when it is done.
                        # Taking its keyframes back is the gateway's CPU: added to the leg.
                        ingested = renderer.ingest_cpu if renderer else 0.0
                        child = _process_cpu(renderer.pid if renderer else None)
                        while True:
                            time.sleep(0.25)
                            now = _process_cpu(renderer.pid if renderer else None)
                            if now - child < 0.01 and not (renderer and renderer.pending):
                                break
                            child = now
                        ingested = (renderer.ingest_cpu if renderer else 0.0) - ingested
                        moved = written * repeat / MB
                        cpu[leg].append((settled - c + ingested) / moved)
                        render[leg].append((child - k) / moved)
                        rate[leg].append(moved / wall)
                        spilled[leg].append((renderer.spilled if renderer else 0) - spill)
                        ran[leg].append(n)
    print(
        f"\n== recording overhead on the SSH data path ({written / MB:.0f} MB of the session "
        f"as PTY output{f', sent {repeat} times in each leg' if repeat > 1 else ''}, "
        f"{rounds} rounds, the first two legs in ABBA order; everything recorded in "
        f"{len(cpu['everything'])} of them)"
    )
    print(
        "  each leg: median [min-max]; overhead: the median over rounds of the leg against "
        "the unrecorded leg of the same round"
    )
    for leg in [leg for leg in SSH_TARGETS if cpu[leg]]:
        # each round's ratio to the unrecorded leg of the same round
        cpu_ratios = [a / cpu["unrecorded"][n] - 1 for a, n in zip(cpu[leg], ran[leg], strict=True)]
        rate_ratios = [
            a / rate["unrecorded"][n] - 1 for a, n in zip(rate[leg], ran[leg], strict=True)
        ]
        c, r = statistics.median(cpu[leg]), statistics.median(rate[leg])
        print(
            f"  {leg:<16} gateway CPU {c * 1000:6.2f} ms/MB [{min(cpu[leg]) * 1000:.2f}-"
            f"{max(cpu[leg]) * 1000:.2f}] ({statistics.median(cpu_ratios):+.0%}), "
            f"{r:6.1f} MB/s [{min(rate[leg]):.1f}-{max(rate[leg]):.1f}] "
            f"({statistics.median(rate_ratios):+.0%}); "
            f"keyframe process CPU {statistics.median(render[leg]) * 1000:.2f} ms/MB"
            + (f"; spilled to disk {max(spilled[leg]) / MB:.1f} MB" if max(spilled[leg]) else "")
        )
        if leg != "unrecorded":
            print(
                f"  {'':<16} by round: CPU {' '.join(f'{x:+.0%}' for x in cpu_ratios)}; "
                f"throughput {' '.join(f'{x:+.0%}' for x in rate_ratios)}"
            )


def _process_cpu(pid: int | None) -> float:
    """CPU seconds of another process (the gateway's keyframe renderer), 0 if none."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=float, default=200)
    parser.add_argument("--corpus-mb", type=float, default=16)
    parser.add_argument("--seeks", type=int, default=100)
    parser.add_argument("--write-kb", type=float, default=4, help="average size of a write")
    parser.add_argument(
        "--ssh-mb", type=float, default=200, help="the session's first MB sent over SSH; 0: skip"
    )
    parser.add_argument("--ssh-rounds", type=int, default=6)
    parser.add_argument(
        "--everything-rounds",
        type=int,
        default=2,
        help="rounds with the everything-recorded leg (its keyframes take minutes a round)",
    )
    parser.add_argument(
        "--ssh-repeat", type=int, default=1, help="each leg sends the SSH session this many times"
    )
    parser.add_argument("--ssh-only", action="store_true", help="only the SSH section")
    args = parser.parse_args()
    size = int(args.size_mb * MB)

    t = time.perf_counter()
    corpus = coalesce(
        [d for _, d in synthetic_writes(42, int(args.corpus_mb * MB))], int(args.write_kb * 1024)
    )
    corpus_bytes = sum(map(len, corpus))
    print(
        f"corpus: {len(corpus)} writes, {corpus_bytes / MB:.1f} MB in {time.perf_counter() - t:.1f} s"
    )
    if args.ssh_mb > 0:
        ssh_overhead(
            corpus, int(args.ssh_mb * MB), args.ssh_rounds, args.ssh_repeat, args.everything_rounds
        )
    if args.ssh_only:
        return
    n_writes = len(corpus) * size // corpus_bytes + 1
    step = 3600.0 / n_writes

    tmp = Path(tempfile.mkdtemp(prefix="wg-bench-replay-"))
    store = EventStore(StoreSettings(url=f"sqlite:///{tmp / 'events.db'}"))
    log = SessionLog(node="bench")
    sink, clock = BatchingSink(), Clock()
    accepted = log.event(
        Session.ConnectionAccepted, node="bench", protocol="ssh", target="t", listener="l", peer="p"
    )
    store.append([accepted])
    # An hour replayed in seconds: the keyframe worker's real-time CPU cap (10% of a core,
    # twice what this session's 55 KB/s needs) would stretch it into an hour: no cap here.
    recorder = SessionRecorder(
        log, sink, pty=True, clock=clock, keyframe_queue=1_000_000, keyframe_share=None
    )
    raw = 0
    record_cpu = store_cpu = 0.0
    process_start = time.process_time()
    wall = time.perf_counter()
    i = 0
    while raw < size:
        data = corpus[i % len(corpus)]
        clock.now = i * step
        c = time.thread_time()
        recorder.output("pty", data)
        record_cpu += time.thread_time() - c
        raw += len(data)
        i += 1
        if len(sink.events) >= 100:
            c = time.thread_time()
            store.append(sink.events)
            store_cpu += time.thread_time() - c
            sink.events = []
    c = time.thread_time()
    recorder.flush()
    record_cpu += time.thread_time() - c
    print(
        f"recorded {raw / MB:.0f} MB in {time.perf_counter() - wall:.1f} s wall; waiting for keyframes"
    )
    worker = recorder._worker
    assert worker is not None
    recorder.close(wait=3600)
    c = time.thread_time()
    store.append(sink.events)
    store_cpu += time.thread_time() - c
    worker_cpu = time.process_time() - process_start - record_cpu - store_cpu
    lost = " (worker fell behind: keyframes stopped)" if worker.lost else ""
    print(
        f"keyframes: {recorder.stats['keyframes']}{lost}; total wall {time.perf_counter() - wall:.1f} s"
    )

    db = sqlite3.connect(tmp / "events.db")
    index_id = RecordingIndex.id_for(log.id)
    keyframes_id = RecordingKeyframes.id_for(log.id)
    rows = db.execute(
        "SELECT topic, count(*), sum(length(state)) FROM stored_events "
        "WHERE originator_id IN (?, ?, ?) GROUP BY topic",
        (log.id.hex, index_id.hex, keyframes_id.hex),
    ).fetchall()
    if not rows:  # ids stored hyphenated
        rows = db.execute(
            "SELECT topic, count(*), sum(length(state)) FROM stored_events "
            "WHERE originator_id IN (?, ?, ?) GROUP BY topic",
            (str(log.id), str(index_id), str(keyframes_id)),
        ).fetchall()
    stored = sum(r[2] for r in rows)
    print("\n== compression")
    for topic, count, nbytes in rows:
        print(f"  {topic.split(':')[-1]:<28} {count:>6} events {nbytes / MB:8.1f} MB")
    print(f"  raw {raw / MB:.1f} MB -> stored {stored / MB:.1f} MB: {raw / stored:.2f}x")

    relay = relay_cost(corpus, 50 * MB)
    trio_relay = trio_relay_cost(corpus, 50 * MB)
    per_mb = record_cpu / (raw / MB)
    print(f"\n== recording cost (CPU ms per MB; {i} writes of {raw / i:.0f} B on average)")
    print(f"  relay, bare send+recv syscalls:       {relay * 1000:7.2f}")
    print(f"  relay, trio task (receive/send_all):  {trio_relay * 1000:7.2f}")
    print(
        f"  SessionRecorder.output (data path):   {per_mb * 1000:7.2f}  "
        f"({per_mb / trio_relay:.0%} of the trio relay; {record_cpu / i * 1e6:.1f} us per write)"
    )
    print(f"  store append (writer):                {store_cpu / (raw / MB) * 1000:7.2f}")
    print(f"  keyframe worker (other thread):       {worker_cpu / (raw / MB) * 1000:7.2f}")

    t = time.perf_counter()
    recording = Recording.open(store, log.id)
    open_ms = (time.perf_counter() - t) * 1000
    recording.keyframe_bytes = 1 << 60  # no caching between seeks: each pays full price
    recording.keyframe_cpu_ms = float("inf")
    rnd = random.Random(7)
    latencies: list[float] = []
    cpu: list[float] = []
    for _ in range(args.seeks):
        at = rnd.randrange(recording.duration_ms)
        t, c = time.perf_counter(), time.thread_time()
        recording.screen_at(at)
        latencies.append((time.perf_counter() - t) * 1000)
        cpu.append((time.thread_time() - c) * 1000)
    latencies.sort()
    cpu.sort()
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    cpu95 = cpu[int(len(cpu) * 0.95) - 1]
    print("\n== seeking")
    print(
        f"  open: {open_ms:.0f} ms ({len(recording.chunks)} chunks, {len(recording.keyframes)} keyframes)"
    )
    print(
        f"  {len(latencies)} seeks: p50 {statistics.median(latencies):.1f} ms, "
        f"p95 {p95:.1f} ms, max {latencies[-1]:.1f} ms (wall); "
        f"CPU p50 {statistics.median(cpu):.1f} ms, p95 {cpu95:.1f} ms"
    )
    print(f"  load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    store.close()
    print(f"\nstore left in {tmp} (delete it when done)")


if __name__ == "__main__":
    main()
