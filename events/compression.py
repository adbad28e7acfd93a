"""zstd compression of stored events, with trained dictionaries kept in the store.

Theory of operation
-------------------
Events are small JSON documents (100-600 bytes). Plain zstd barely shrinks them; a
dictionary trained on earlier events gives 3-5x. Each compressed frame names its
dictionary id in its header, so events stay readable after a newer dictionary is trained:
dictionaries are kept forever, in the store itself (a table beside the events), which makes
them available to every node of a PostgreSQL deployment without a shared disk.

The compressor is handed to eventsourcing's ``Mapper``, which calls ``compress`` after
transcoding and before encryption, and ``decompress`` in reverse. zstandard objects are not
thread-safe, so each thread gets its own compressor and decompressors.

Until the store has a dictionary, small events (under ``PLAIN_BELOW`` bytes) are stored as
plain JSON: zstd without a dictionary saves almost nothing on documents this small (a
152-byte event becomes 126 bytes) and costs 6-7 us per event, against under 1 us with one.
Larger ones (recorded output, result transcripts) are compressed whatever the dictionary. A stored state that starts
with ``{`` is plain JSON (a zstd frame starts with the magic bytes ``28 b5 2f fd``). The
gateway trains the first dictionary by itself once enough events are stored (see
``EventStore.train_dictionary``), and ``wardgate store train`` trains newer ones.

Large events (``LARGE`` bytes of JSON and more: recorded terminal output, cut in 64 KiB
chunks) are compressed at ``large_level`` (2), the rest at ``level`` (3). On recorded output
level 2 compresses as well as level 3 from about 24 KiB on (measured on synthetic terminal
output: 4.469x at both levels without a dictionary, 4.628x against 4.614x with one, 64 KiB
chunks) for about 30% less CPU (40% less with a dictionary, whose matching makes large
inputs dearer); below 16 KiB level 3 shrinks more (keyframes: 6.49x against 6.15x), and
between 24 and 48 KiB level 2 was within 0.3% either way, so the threshold sits at 48 KiB:
chunks cut by time on a steady trickle keep level 3, bulk output (64 KiB chunks) gets 2. The
level is not recorded anywhere and does not need to be: every zstd frame decodes the same
way whatever level made it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import zstandard
from eventsourcing.persistence import Compressor

DictionaryLoader = Callable[[], Mapping[int, bytes]]
PLAIN_BELOW = 1024
"""Without a dictionary, events smaller than this are stored uncompressed."""
LARGE = 48 * 1024
"""Events of this many bytes (JSON) and more are compressed at ``large_level``."""
LARGE_LEVEL = 2


class CompressionError(Exception):
    """A stored event could not be decompressed (unknown dictionary or bad frame)."""


class ZstdDictCompressor(Compressor):
    """The ``eventsourcing`` compressor interface (``compress``/``decompress``) for zstd."""

    def __init__(
        self,
        *,
        level: int = 3,
        large_level: int = LARGE_LEVEL,
        loader: DictionaryLoader | None = None,
    ) -> None:
        self.level = level
        self.large_level = large_level
        self.loader = loader
        self._dicts: dict[int, zstandard.ZstdCompressionDict] = {}
        self._current: zstandard.ZstdCompressionDict | None = None
        self._local = threading.local()
        self._generation = 0
        self._lock = threading.Lock()

    # -- dictionaries ---------------------------------------------------------------------

    def install(self, dictionaries: Mapping[int, bytes]) -> None:
        """Make these dictionaries known; the one with the highest id compresses new events."""
        with self._lock:
            for dict_id, data in dictionaries.items():
                if dict_id not in self._dicts:
                    self._dicts[dict_id] = zstandard.ZstdCompressionDict(data)
            if self._dicts:
                newest = max(self._dicts)
                if self._current is None or self._current.dict_id() != newest:
                    self._current = self._dicts[newest]
                    self._generation += 1

    @property
    def current_dict_id(self) -> int:
        return self._current.dict_id() if self._current is not None else 0

    def refresh(self) -> None:
        if self.loader is not None:
            self.install(self.loader())

    # -- the Compressor interface ---------------------------------------------------------

    def compress(self, data: bytes) -> bytes:
        if self._current is None and len(data) < PLAIN_BELOW:
            return data
        local = self._local
        if getattr(local, "generation", -1) != self._generation:
            local.compressor = self._compressor(self.level)
            local.large = self._compressor(self.large_level)
            local.generation = self._generation
        compressor = local.large if len(data) >= LARGE else local.compressor
        compressed: bytes = compressor.compress(data)
        return compressed

    def _compressor(self, level: int) -> zstandard.ZstdCompressor:
        return zstandard.ZstdCompressor(
            level=level,
            dict_data=self._current,
            write_checksum=False,
            write_content_size=True,
            write_dict_id=True,
        )

    def decompress(self, data: bytes) -> bytes:
        if data[:1] == b"{":
            return data
        try:
            dict_id = zstandard.get_frame_parameters(data).dict_id
        except zstandard.ZstdError as exc:
            raise CompressionError(f"not a zstd frame: {exc}") from exc
        decompressor = self._decompressor(dict_id)
        try:
            out: bytes = decompressor.decompress(data)
        except zstandard.ZstdError as exc:
            raise CompressionError(f"corrupt zstd frame: {exc}") from exc
        return out

    def _decompressor(self, dict_id: int) -> zstandard.ZstdDecompressor:
        local = self._local
        cache: dict[int, zstandard.ZstdDecompressor] | None = getattr(local, "decompressors", None)
        if cache is None:
            cache = local.decompressors = {}
        found = cache.get(dict_id)
        if found is not None:
            return found
        if dict_id and dict_id not in self._dicts:
            self.refresh()
            if dict_id not in self._dicts:
                raise CompressionError(f"event compressed with unknown dictionary {dict_id}")
        dictionary = self._dicts.get(dict_id) if dict_id else None
        decompressor = zstandard.ZstdDecompressor(dict_data=dictionary)
        cache[dict_id] = decompressor
        return decompressor


def train_dictionary(samples: list[bytes], *, size: int = 16 * 1024) -> tuple[int, bytes]:
    """Train a dictionary on event samples; returns its id and bytes."""
    if len(samples) < 100:
        raise ValueError(f"need at least 100 events to train a dictionary, have {len(samples)}")
    try:
        trained = zstandard.train_dictionary(size, list[bytes | bytearray | memoryview](samples))
    except zstandard.ZstdError as exc:
        raise ValueError(f"cannot train a dictionary on these events: {exc}") from None
    return trained.dict_id(), trained.as_bytes()
