"""The scanning engine shared by the row and stream maskers.

Theory of operation
-------------------
``Engine.next_finding(cursors, pos)`` answers: which is the leftmost valid value starting at or
after ``pos``? Each family (see ``detectors``) has a cursor that answers the same question for
its own detectors; the engine takes the leftmost answer (ties go to the earlier family). A
cursor finds the next *hit* of its pre-filter and runs the exact patterns and checks only
there: at the hit itself (keys, JWT, PEM, IBAN), at the one start the hit implies (e-mail),
or over a region ``[hit - back, hit + span)`` searched at C speed (digits, context), growing
while hits stay dense. A start that failed is remembered (``tried``), and answers are cached
while ``pos`` moves forward, so a whole buffer costs one pass of the pre-filters plus the
work around hits, whatever its shape: no step costs Python time per byte.

Because the answer is a pure function of (buffer, pos), masking a text is: take the next
finding, replace it, continue at its end. PEM blocks are the one value without a length bound:
their finding covers only the BEGIN line, and the masker extends it over the body.
"""

from __future__ import annotations

import re
from functools import lru_cache

from gateway.masking.detectors import (
    PEM_BODY_RX,
    Family,
    Finding,
    Views,
    custom_family,
    select_families,
)
from gateway.masking.profile import CustomPattern, MaskingProfile
from gateway.masking.strategies import StrategySpec, redacted, render

# In the translated view digits are "d"; every pattern of the number family has a look-behind
# that refuses a digit before the value.
_DIGIT = ord("d")
_NOT_DIGIT_RX = re.compile(rb"[^d]")


def _first(searcher: tuple[re.Pattern[bytes], bytes, bool], hay: bytes, at: int) -> int:
    """Where the hit regex first matches at or after ``at`` (-1: nowhere)."""
    rx, plain, confirm = searcher
    if not plain:
        m = rx.search(hay, at)
        return -1 if m is None else m.start()
    i = hay.find(plain, at)
    if not confirm:
        return i
    for _ in range(8):
        if i < 0 or rx.match(hay, i) is not None:
            return i
        i = hay.find(plain, i + 1)
    # Many literals that the regex rejects ("DE89DE89..."): let the regex skip them in C.
    m = rx.search(hay, max(i, at))
    return -1 if m is None else m.start()


class _Cursor:
    """The first valid finding of one family at or after a position, for one buffer."""

    __slots__ = (
        "_family",
        "_hay",
        "_lit_next",
        "_marks",
        "_result",
        "_result_from",
        "_tried",
        "_views",
    )

    def __init__(self, family: Family, views: Views) -> None:
        self._family = family
        self.reset(views)

    def reset(self, views: Views) -> None:
        """Start over on another buffer (cursors are reused: creating them costs more than
        scanning a small chunk)."""
        family = self._family
        self._views = views
        self._lit_next = [-2] * len(family.literals)
        self._marks = b""  # the view translated by family.token_table, made when first needed
        self._tried = -1  # every start <= _tried is known not to begin a valid value
        self._result: Finding | None = None
        self._result_from = -1  # _result answers every pos in [_result_from, _result.start]
        for members in family.gate:
            # No value anywhere in this buffer: None answers every pos, and no view is made.
            if not views.holds(members):
                self._result_from = 0
                self._hay = b""
                return
        self._hay = getattr(views, family.view)

    def _hit(self, at: int) -> int:
        family = self._family
        if family.finder is not None:
            return _first(family.searchers[0], self._hay, at)
        best = -1
        for i, searcher in enumerate(family.searchers):
            known = self._lit_next[i]
            if known == -1 and at >= 0:
                continue  # this literal does not occur any more
            if (
                known == -2
                and family.pre
                and family.pre[i]
                and family.pre[i] not in self._views.buf
            ):
                self._lit_next[i] = -1
                continue
            if known < at:
                known = self._lit_next[i] = _first(searcher, self._hay, at)
            if known >= 0 and (best < 0 or known < best):
                best = known
        return best

    def next(self, pos: int) -> Finding | None:
        cached = self._result
        if 0 <= self._result_from <= pos and (cached is None or cached.start >= pos):
            return cached
        family = self._family
        if family.back and not family.run:
            found = self._next_by_regions(pos)
        else:
            found = self._next_by_hits(pos)
        if found is not None:
            self._tried = found.start - 1
        self._result, self._result_from = found, pos
        return found

    def _next_by_hits(self, pos: int) -> Finding | None:
        """Families whose hit fixes the start (``back == 0``) or names one candidate start (an
        e-mail's local part): one exact match per hit."""
        family = self._family
        buf: bytes = getattr(self._views, family.match_view)
        run_table = family.run_table
        at = max(pos, self._tried + 1)
        while True:
            hit = self._hit(at)
            if hit < 0:
                return None
            start = hit
            if run_table:
                low = max(pos, hit - family.back, self._tried + 1)
                start = low + buf[low:hit].translate(run_table).rfind(b"n") + 1
            for alt in family.alternatives:
                m = alt.pattern.match(buf, start)
                if m is not None:
                    found = alt.validate(buf, m)
                    if found is not None and found.end > found.start:
                        return found
            self._tried = max(self._tried, hit)
            at = hit + 1

    def _next_by_regions(self, pos: int) -> Finding | None:
        """Families whose values start up to ``back`` bytes before a hit: the exact patterns
        search a region around the hit at C speed. Starts up to ``end - span`` are decided
        whatever follows the region; where the next hit falls inside the last region (a long
        run of digits, keywords over and over) the region doubles, so dense hits cost a few
        regex passes, not one Python step each."""
        family = self._family
        buf: bytes = getattr(self._views, family.match_view)
        size = len(buf)
        span = family.span
        width = 0
        last_end = -1
        at = max(pos, self._tried + 1)
        while True:
            hit = self._hit(at)
            if hit < 0:
                return None
            low = max(at, hit - family.back)
            width = width * 2 if low <= last_end else family.back + 2 * span
            end = min(size, max(hit + span, low + width))
            decided = end if end == size else end - span
            if family.token_table:
                # A value lies inside the run of token bytes around the hit: search only
                # that run (and the two bytes of look-ahead after it).
                if not self._marks:
                    self._marks = self._hay.translate(family.token_table)
                low = max(low, self._marks.rfind(b"n", low, hit) + 1)
                run_end = self._marks.find(b"n", hit, decided)
                if run_end >= 0:
                    decided, end = run_end, min(size, run_end + 2)
                if low and self._hay[low - 1] == _DIGIT:
                    # No number starts right after a digit: skip the rest of a digit run
                    # with one C scan instead of trying the patterns at each of its bytes.
                    m = _NOT_DIGIT_RX.search(self._hay, low, decided + 1)
                    low = decided + 1 if m is None else m.start()
            found = None if low > decided else self._search(buf, low, decided, end, hit)
            if found is not None:
                return found
            self._tried = decided
            at = decided + 1
            last_end = end

    def _hit_near(self, start: int) -> bool:
        """Whether a hit lies in ``[start, start + back]``: what makes a value starting after
        the region's first hit detectable, so that the answer depends on the text alone, not
        on where a region happened to begin (the stream masker cuts anywhere)."""
        family = self._family
        limit = start + family.back
        endpos = min(len(self._hay), limit + 16)  # room for the longest literal
        finders = (family.finder,) if family.finder is not None else family.literal_rx
        for rx in finders:
            m = rx.search(self._hay, start, endpos)
            if m is not None and m.start() <= limit:
                return True
        return False

    def _search(self, buf: bytes, low: int, decided: int, end: int, hit: int) -> Finding | None:
        """The first valid value starting in ``[low, decided]``. Each pattern's leftmost match
        in ``[start, end)`` is kept until ``start`` passes it; a match starting at or before
        ``decided`` is the one the whole buffer gives (``end`` is at least ``span`` bytes
        further, or the end of the buffer), so it is validated as it is."""
        alternatives = self._family.alternatives
        nexts = [alt.pattern.search(buf, low, end) for alt in alternatives]
        while True:
            best = -1
            for m in nexts:
                if m is not None and (best < 0 or m.start() < best):
                    best = m.start()
            if best < 0 or best > decided:
                return None
            for i, m in enumerate(nexts):  # the family's order breaks ties at one start
                if m is not None and m.start() == best:
                    found = alternatives[i].validate(buf, m)
                    if (
                        found is not None
                        and found.end > found.start
                        and (found.start <= hit or self._hit_near(found.start))
                    ):
                        return found
                    nexts[i] = alternatives[i].pattern.search(buf, best + 1, end)


_Probe = tuple[Family, str, tuple[tuple[bytes, "re.Pattern[bytes]"], ...]]


@lru_cache(maxsize=64)
def _compile(
    detectors: frozenset[str], custom: tuple[CustomPattern, ...]
) -> tuple[tuple[Family, ...], tuple[_Probe, ...]]:
    """Families and gate probes for a detector set: cached, because a masker is created for
    every result set and building them costs about 100 us."""
    families = select_families(detectors)
    for pattern in custom:
        families.append(custom_family(pattern.name, pattern.compile(), pattern.max_length))
    # Per family: its view and (required byte, regex) pairs, any of which must match.
    probes = tuple(
        (
            family,
            family.view,
            ((b"", family.finder),)
            if family.finder is not None
            else tuple(
                zip(family.pre or (b"",) * len(family.literals), family.literal_rx, strict=True)
            ),
        )
        for family in families
    )
    return tuple(families), probes


class Engine:
    """A profile compiled for scanning: families, strategies and the hash key."""

    __slots__ = ("_families", "_key", "_pool", "_probes", "_specs", "profile")

    def __init__(self, profile: MaskingProfile) -> None:
        self.profile = profile
        self._families, self._probes = _compile(profile.detectors, profile.custom_patterns)
        self._key = profile.hash_key
        self._specs: dict[str, StrategySpec] = {}
        self._pool: list[_Cursor] = []

    def spec(self, kind: str) -> StrategySpec:
        spec = self._specs.get(kind)
        if spec is None:
            spec = self._specs[kind] = self.profile.strategy_for(kind)
        return spec

    def cursors(self, views: Views, families: tuple[Family, ...] | None = None) -> list[_Cursor]:
        """Cursors over ``views``; without ``families`` (all of them) the same cursor objects
        are reset and returned each time, so the previous list must no longer be in use."""
        if families is not None:
            return [_Cursor(family, views) for family in families]
        if not self._pool:
            self._pool = [_Cursor(family, views) for family in self._families]
        else:
            for cursor in self._pool:
                cursor.reset(views)
        return self._pool

    @staticmethod
    def next_finding(cursors: list[_Cursor], pos: int) -> Finding | None:
        best: Finding | None = None
        for cursor in cursors:
            found = cursor.next(pos)
            if found is not None and (best is None or found.start < best.start):
                best = found
        return best

    def active(self, views: Views) -> tuple[Family, ...]:
        """The families whose hit finder hits somewhere in the buffer: for a small buffer
        (a row) cheaper than creating a cursor for every family."""
        buf = views.buf
        hit: list[Family] = []
        for family, view, probes in self._probes:
            if not all(views.holds(members) for members in family.gate):
                continue
            hay = getattr(views, view)
            for pre, rx in probes:
                if (not pre or pre in buf) and rx.search(hay) is not None:
                    hit.append(family)
                    break
        return tuple(hit)

    def findings(self, buf: bytes) -> list[Finding]:
        """Every finding of a complete text, in order, PEM blocks extended over their body."""
        views = Views(buf)
        families = self.active(views)
        if not families:
            return []
        cursors = self.cursors(views, families)
        # Each cursor's next finding stays its answer until the position passes its start, so
        # only the cursors that were passed are asked again.
        pending = [cursor.next(0) for cursor in cursors]
        out: list[Finding] = []
        while True:
            found = None
            for candidate in pending:  # leftmost; ties go to the earlier family
                if candidate is not None and (found is None or candidate.start < found.start):
                    found = candidate
            if found is None:
                return out
            if found.block:
                body = PEM_BODY_RX.match(buf, found.end)
                end = found.end if body is None else body.end()
                found = Finding(
                    start=found.start,
                    end=end,
                    kind=found.kind,
                    value_start=found.start,
                    value_end=end,
                )
            out.append(found)
            pos = found.end
            for i, candidate in enumerate(pending):
                if candidate is not None and candidate.start < pos:
                    pending[i] = cursors[i].next(pos)

    def replacement(self, kind: str, value: bytes) -> bytes | None:
        return render(self.spec(kind), kind, value, self._key)

    def mask(self, buf: bytes) -> tuple[bytes, list[str], bool] | None:
        """Mask a complete value: (masked bytes, detected kinds, a null strategy fired), or
        None when nothing was detected."""
        found = self.findings(buf)
        if not found:
            return None
        return self.apply(buf, found, 0, len(buf))

    def apply(
        self, buf: bytes, found: list[Finding], start: int, end: int
    ) -> tuple[bytes, list[str], bool]:
        """Replace ``found`` (all inside ``buf[start:end]``) and return that slice masked."""
        parts: list[bytes] = []
        kinds: list[str] = []
        nulled = False
        pos = start
        specs, key = self._specs, self._key
        for f in found:
            kind = f.kind
            spec = specs.get(kind) or self.spec(kind)
            out = render(spec, kind, buf[f.value_start : f.value_end], key)
            if out is None:
                nulled = True
                out = redacted(spec, kind)
            parts += (buf[pos : f.value_start], out, buf[f.value_end : f.end])
            kinds.append(kind)
            pos = f.end
        parts.append(buf[pos:end])
        return b"".join(parts), kinds, nulled
