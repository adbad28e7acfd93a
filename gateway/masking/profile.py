"""Masking profiles: which detectors run, what each detection becomes, which columns are masked.

A profile is plain data, read from a ``[masking.profiles.NAME]`` table of the policy file (see
``gateway/masking/README.md`` for the schema) with :func:`profile_from_dict`, and written back
with :meth:`MaskingProfile.to_dict`. The hash key itself is never written back: a policy is
recorded as events, and events never carry secrets; use ``hash_key_env``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.masking.columns import ColumnRule
from gateway.masking.detectors import BUILTIN_KINDS, EMAIL, PRIVATE_KEY
from gateway.masking.errors import MaskingConfigError
from gateway.masking.strategies import PARTIAL, REDACT, Strategy, StrategySpec

_KIND_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")

DEFAULT_STRATEGIES: Mapping[str, StrategySpec] = {
    kind: PARTIAL if kind in ("card", "ssn", "phone", "iban", EMAIL) else REDACT
    for kind in BUILTIN_KINDS
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomPattern:
    """A named regular expression from the policy. It must match within one line and at most
    ``max_length`` bytes, the look-behind the stream masker keeps for it."""

    name: str
    regex: str
    strategy: StrategySpec = REDACT
    max_length: int = 256
    ignore_case: bool = False

    def compile(self) -> re.Pattern[bytes]:
        return re.compile(self.regex.encode(), re.IGNORECASE if self.ignore_case else 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class MaskingProfile:
    """Everything the maskers need. ``strict`` (the default) fails a row or chunk that cannot
    be masked; best-effort replaces it wholesale instead (see ``README.md``)."""

    name: str = "default"
    detectors: frozenset[str] = frozenset(BUILTIN_KINDS)
    strategies: Mapping[str, StrategySpec] = field(default_factory=lambda: dict(DEFAULT_STRATEGIES))
    column_rules: tuple[ColumnRule, ...] = ()
    custom_patterns: tuple[CustomPattern, ...] = ()
    hash_key: bytes = field(default=b"", repr=False)
    hash_key_env: str | None = None
    strict: bool = True

    def __post_init__(self) -> None:
        unknown = self.detectors - set(BUILTIN_KINDS)
        if unknown:
            raise MaskingConfigError(f"unknown detectors: {', '.join(sorted(unknown))}")
        names = [p.name for p in self.custom_patterns]
        for name in names:
            if not _KIND_NAME.fullmatch(name) or name in BUILTIN_KINDS or names.count(name) > 1:
                raise MaskingConfigError(f"bad or duplicate custom pattern name: {name!r}")
        for pattern in self.custom_patterns:
            try:
                compiled = pattern.compile()
            except re.error as exc:
                raise MaskingConfigError(f"pattern {pattern.name!r}: {exc}") from exc
            if compiled.fullmatch(b""):
                raise MaskingConfigError(f"pattern {pattern.name!r} matches the empty string")
            if not 1 <= pattern.max_length <= 4096:
                raise MaskingConfigError(f"pattern {pattern.name!r}: max_length must be 1..4096")
        for rule in self.column_rules:
            parts = rule.pattern.split(".")
            if len(parts) > 3 or not all(parts):
                raise MaskingConfigError(
                    f"column rule {rule.pattern!r}: expected column, table.column or schema.table.column"
                )
        for kind in self.strategies:
            if kind not in BUILTIN_KINDS:
                raise MaskingConfigError(f"strategy for unknown detector {kind!r}")
        if self.strategy_for(PRIVATE_KEY).strategy in (Strategy.PARTIAL, Strategy.HASH):
            raise MaskingConfigError("private_key can only be redacted or nulled")
        specs = [*self.strategies.values(), *(r.strategy for r in self.column_rules)]
        specs += [p.strategy for p in self.custom_patterns]
        if any(s.strategy is Strategy.HASH for s in specs) and not self.hash_key:
            raise MaskingConfigError("the hash strategy needs hash_key or hash_key_env")
        if any(s.keep < 0 for s in specs):
            raise MaskingConfigError("keep must not be negative")

    def strategy_for(self, kind: str) -> StrategySpec:
        for pattern in self.custom_patterns:
            if pattern.name == kind:
                return pattern.strategy
        return self.strategies.get(kind, DEFAULT_STRATEGIES.get(kind, REDACT))

    def to_dict(self) -> dict[str, Any]:
        """The policy-file form; ``hash_key`` itself is left out (only ``hash_key_env``)."""
        out: dict[str, Any] = {
            "detectors": sorted(self.detectors),
            "strict": self.strict,
            "strategies": {k: _spec_to_dict(v) for k, v in sorted(self.strategies.items())},
            "columns": [
                {"match": r.pattern, "kind": r.kind, **_spec_to_dict(r.strategy)}
                for r in self.column_rules
            ],
            "patterns": [
                {
                    "name": p.name,
                    "regex": p.regex,
                    "max_length": p.max_length,
                    "ignore_case": p.ignore_case,
                    **_spec_to_dict(p.strategy),
                }
                for p in self.custom_patterns
            ],
        }
        if self.hash_key_env:
            out["hash_key_env"] = self.hash_key_env
        return out


def _spec_to_dict(spec: StrategySpec) -> dict[str, Any]:
    out: dict[str, Any] = {"strategy": spec.strategy.value}
    if spec.fill is not None:
        out["fill"] = spec.fill
    if spec.keep != 4:
        out["keep"] = spec.keep
    return out


def _spec_from(value: Any, where: str) -> StrategySpec:
    if isinstance(value, str):
        value = {"strategy": value}
    if not isinstance(value, Mapping):
        raise MaskingConfigError(f"{where}: expected a strategy name or table")
    extra = set(value) - {
        "strategy",
        "fill",
        "keep",
        "match",
        "kind",
        "name",
        "regex",
        "max_length",
        "ignore_case",
    }
    if extra:
        raise MaskingConfigError(f"{where}: unknown keys {', '.join(sorted(extra))}")
    try:
        strategy = Strategy(value.get("strategy", "redact"))
    except ValueError as exc:
        raise MaskingConfigError(f"{where}: unknown strategy {value.get('strategy')!r}") from exc
    fill = value.get("fill")
    keep = value.get("keep", 4)
    if fill is not None and not isinstance(fill, str):
        raise MaskingConfigError(f"{where}: fill must be a string")
    if not isinstance(keep, int) or isinstance(keep, bool):
        raise MaskingConfigError(f"{where}: keep must be an integer")
    return StrategySpec(strategy=strategy, fill=fill, keep=keep)


def _str(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise MaskingConfigError(f"{where}: {key} must be a non-empty string")
    return value


_PROFILE_KEYS = {
    "detectors",
    "strategies",
    "columns",
    "patterns",
    "hash_key",
    "hash_key_env",
    "strict",
}


def profile_from_dict(d: Mapping[str, Any], *, name: str = "default") -> MaskingProfile:
    """Build a profile from one ``[masking.profiles.NAME]`` table; unset keys take the
    defaults of :data:`DEFAULT_PROFILE`. Raises :class:`MaskingConfigError`."""
    extra = set(d) - _PROFILE_KEYS
    if extra:
        raise MaskingConfigError(f"profile {name}: unknown keys {', '.join(sorted(extra))}")
    detectors_raw = d.get("detectors", "all")
    if detectors_raw == "all":
        detectors = frozenset(BUILTIN_KINDS)
    elif isinstance(detectors_raw, list) and all(isinstance(x, str) for x in detectors_raw):
        detectors = frozenset(detectors_raw)
    else:
        raise MaskingConfigError(f'profile {name}: detectors must be "all" or a list of names')
    strategies = dict(DEFAULT_STRATEGIES)
    raw_strategies = d.get("strategies", {})
    if not isinstance(raw_strategies, Mapping):
        raise MaskingConfigError(f"profile {name}: strategies must be a table")
    for kind, spec in raw_strategies.items():
        strategies[kind] = _spec_from(spec, f"profile {name}: strategies.{kind}")
    rules = []
    for i, raw in enumerate(_list(d, "columns", name)):
        where = f"profile {name}: columns[{i}]"
        kind = raw.get("kind", "column")
        if not isinstance(kind, str) or not _KIND_NAME.fullmatch(kind):
            raise MaskingConfigError(f"{where}: bad kind {kind!r}")
        rules.append(
            ColumnRule(
                pattern=_str(raw, "match", where), strategy=_spec_from(raw, where), kind=kind
            )
        )
    patterns = []
    for i, raw in enumerate(_list(d, "patterns", name)):
        where = f"profile {name}: patterns[{i}]"
        max_length = raw.get("max_length", 256)
        ignore_case = raw.get("ignore_case", False)
        if not isinstance(max_length, int) or not isinstance(ignore_case, bool):
            raise MaskingConfigError(
                f"{where}: max_length must be an integer, ignore_case a boolean"
            )
        patterns.append(
            CustomPattern(
                name=_str(raw, "name", where),
                regex=_str(raw, "regex", where),
                strategy=_spec_from(raw, where),
                max_length=max_length,
                ignore_case=ignore_case,
            )
        )
    key_env = d.get("hash_key_env")
    key = d.get("hash_key", "")
    if key_env is not None:
        if not isinstance(key_env, str):
            raise MaskingConfigError(f"profile {name}: hash_key_env must be a string")
        key = os.environ.get(key_env, "")
        if not key:
            raise MaskingConfigError(f"profile {name}: environment variable {key_env} is not set")
    if not isinstance(key, str):
        raise MaskingConfigError(f"profile {name}: hash_key must be a string")
    strict = d.get("strict", True)
    if not isinstance(strict, bool):
        raise MaskingConfigError(f"profile {name}: strict must be a boolean")
    return MaskingProfile(
        name=name,
        detectors=detectors,
        strategies=strategies,
        column_rules=tuple(rules),
        custom_patterns=tuple(patterns),
        hash_key=key.encode(),
        hash_key_env=key_env,
        strict=strict,
    )


def _list(d: Mapping[str, Any], key: str, name: str) -> list[Mapping[str, Any]]:
    value = d.get(key, [])
    if not isinstance(value, list) or not all(isinstance(x, Mapping) for x in value):
        raise MaskingConfigError(f"profile {name}: {key} must be an array of tables")
    return value


DEFAULT_PROFILE = MaskingProfile()
