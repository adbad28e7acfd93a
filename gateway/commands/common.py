"""Helpers shared by the sub-command modules: settings, the store, output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from events.store import EventStore, StoreError
from gateway.config import Settings, load_settings
from gateway.errors import UserError


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None))


@contextmanager
def opened_store(args: argparse.Namespace) -> Iterator[EventStore]:
    """The configured event store; store failures become one-line user errors."""
    settings = settings_from(args)
    try:
        store = EventStore(settings.store)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    try:
        yield store
    except StoreError as exc:
        raise UserError(str(exc)) from None
    finally:
        store.close()


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")
