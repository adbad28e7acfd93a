"""Benchmark of session recordings: compression, recording cost, seek latency.

A synthetic one-hour terminal session (default 200 MB of raw output: colored listings,
top-like redraws, logs with UTF-8, a full-screen editor, some binary garbage; a distinct
corpus of --corpus-mb cycled to the size, writes spread evenly over the hour) is recorded
through ``SessionRecorder`` into a SQLite event store, then:

* compression: stored bytes (every stored event of the session and of its index, as the
  store keeps them: zstd-compressed JSON) against the raw output bytes;
* recording cost on the data path: CPU time of ``SessionRecorder.output`` per MB (the proxy's
  own thread; the keyframe worker runs in another thread and is reported apart), against
  the CPU cost of relaying the same bytes through a socket pair (one ``send`` and one
  ``recv`` per write: the least a relay does); the store's write cost per MB is reported
  too (it runs in the writer, not in the proxy's pumps);
* seeking: opening the recording, then 100 random times, each rendered from the nearest
  keyframe (in-memory keyframe caching off, so every seek pays full price).

Run: ``python scripts/bench_replay.py [--size-mb 200] [--corpus-mb 16]``.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=float, default=200)
    parser.add_argument("--corpus-mb", type=float, default=16)
    parser.add_argument("--seeks", type=int, default=100)
    parser.add_argument("--write-kb", type=float, default=4, help="average size of a write")
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
    recorder = SessionRecorder(log, sink, pty=True, clock=clock, keyframe_queue=1_000_000)
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
