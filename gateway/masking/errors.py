"""Errors raised by the masking package."""

from __future__ import annotations


class MaskingError(Exception):
    """Masking failed on a row or chunk in strict mode: the caller must not forward it.

    The MySQL driver turns it into an ERR packet for the client, the SSH driver closes the
    channel; in both cases no unmasked byte has been returned.
    """


class MaskingConfigError(ValueError):
    """A masking profile (policy file section) is malformed."""
