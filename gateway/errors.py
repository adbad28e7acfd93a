"""Errors that end a CLI command with a one-line message and no traceback."""

from __future__ import annotations


class UserError(Exception):
    """A failure the user can act on; printed as ``wardgate: <message>``."""

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
