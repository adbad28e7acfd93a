"""Frozen settings from a TOML file, overridable by ``WARDGATE_*`` environment variables.

Precedence, highest first: environment variables, the settings file, built-in defaults.
Scalar keys of the top-level tables can be overridden as ``WARDGATE_<TABLE>_<KEY>``
(``WARDGATE_IDENTITY_ISSUER``); a few common ones have short names (``WARDGATE_STORE_URL``,
``WARDGATE_DATA_DIR``, ``WARDGATE_NODE``, ``WARDGATE_DURABILITY``). Targets (``[[mysql]]``,
``[[ssh]]``) come from the file only.
"""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from events.store import StoreError, StoreSettings, default_data_dir
from gateway.errors import UserError

SHORT_NAMES = {
    "WARDGATE_STORE_URL": ("store", "url"),
    "WARDGATE_DURABILITY": ("store", "durability"),
    "WARDGATE_NODE": ("gateway", "node"),
}


def parse_duration(text: str | float | int) -> float:
    """``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` or a number of seconds."""
    if isinstance(text, int | float):
        return float(text)
    value = text.strip().lower()
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    for suffix in ("ms", "s", "m", "h", "d"):
        if value.endswith(suffix):
            number = value[: -len(suffix)]
            try:
                return float(number) * units[suffix]
            except ValueError:
                break
    try:
        return float(value)
    except ValueError:
        raise UserError(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h)") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    data_dir: Path
    node: str
    store: StoreSettings
    raw: Mapping[str, Any] = field(default_factory=dict)
    source: Path | None = None

    def section(self, name: str) -> Mapping[str, Any]:
        value = self.raw.get(name, {})
        if not isinstance(value, Mapping):
            raise UserError(f"[{name}] in {self.source} must be a table")
        return value

    def tables(self, name: str) -> list[Mapping[str, Any]]:
        value = self.raw.get(name, [])
        if not isinstance(value, list):
            raise UserError(f"[[{name}]] in {self.source} must be an array of tables")
        return value


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for key, value in env.items():
        if not key.startswith("WARDGATE_"):
            continue
        if key in SHORT_NAMES:
            table, name = SHORT_NAMES[key]
        else:
            rest = key.removeprefix("WARDGATE_").lower()
            table, _, name = rest.partition("_")
            if not name or not isinstance(raw.get(table, {}), dict):
                continue
        raw.setdefault(table, {})[name] = value


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    file = path or env.get("WARDGATE_CONFIG")
    raw: dict[str, Any] = {}
    source: Path | None = None
    if file:
        source = Path(file)
        try:
            raw = tomllib.loads(source.read_text())
        except FileNotFoundError:
            raise UserError(f"settings file not found: {source}") from None
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"settings file {source} is not valid TOML: {exc}") from None
    _apply_env(raw, env)
    gateway = raw.get("gateway", {})
    data_dir = Path(
        env.get("WARDGATE_DATA_DIR") or gateway.get("data_dir") or default_data_dir(env)
    )
    if source is not None and not data_dir.is_absolute():
        data_dir = (source.parent / data_dir).absolute()
    data_dir = data_dir.absolute()
    store = raw.get("store", {})
    store_env = {"WARDGATE_DATA_DIR": str(data_dir)}
    if store.get("url"):
        store_env["WARDGATE_STORE_URL"] = str(store["url"])
    if store.get("durability"):
        store_env["WARDGATE_DURABILITY"] = str(store["durability"])
    for name in ("WARDGATE_STORE_KEY", "WARDGATE_INTEGRITY_KEY"):
        if env.get(name):
            store_env[name] = env[name]
    try:
        store_settings = StoreSettings.from_env(store_env, data_dir=data_dir)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    node = str(gateway.get("node") or socket.gethostname())
    return Settings(data_dir=data_dir, node=node, store=store_settings, raw=raw, source=source)
