"""The SQLite WAL stays bounded under a steady stream of commits: checkpoints rewind it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from events.store import EventStore, StoreSettings

from .factories import session_events


def test_the_wal_is_rewound_while_commits_keep_coming(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    store = EventStore(StoreSettings(url=f"sqlite:///{db}", autocheckpoint=False))
    wal = Path(f"{db}-wal")
    stop = threading.Event()
    biggest = 0

    def checkpoints() -> None:  # what the gateway's checkpoint task does, faster
        while not stop.wait(0.1):
            store.checkpoint()

    thread = threading.Thread(target=checkpoints)
    thread.start()
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # never idle: the writer always has a batch
            store.append(session_events(25))
            biggest = max(biggest, wal.stat().st_size if wal.exists() else 0)
    finally:
        stop.set()
        thread.join()
    size = db.stat().st_size
    assert size > 2_000_000, size  # enough was written to tell
    # A log that is never rewound holds everything ever written (at least the database's
    # size); a rewound one only what came between two checkpoints.
    assert biggest < size / 2, (biggest, size)
    assert store.verify().ok
    store.close()
