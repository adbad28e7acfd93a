"""Masking of sensitive values in what targets send back: pure, synchronous, no I/O.

Public API: :class:`RowMasker` for MySQL result rows, :class:`StreamMasker` for SSH output,
:class:`MaskingProfile` (with :func:`profile_from_dict` and :data:`DEFAULT_PROFILE`) for what
to mask and how. See ``README.md`` in this package for the policy-file schema.
"""

from gateway.masking.columns import ColumnInfo, ColumnRule
from gateway.masking.detectors import BUILTIN_KINDS
from gateway.masking.engine import Engine
from gateway.masking.errors import MaskingConfigError, MaskingError
from gateway.masking.profile import (
    DEFAULT_PROFILE,
    CustomPattern,
    MaskingProfile,
    profile_from_dict,
)
from gateway.masking.rows import RowMasker
from gateway.masking.strategies import Strategy, StrategySpec
from gateway.masking.stream import StreamMasker


def mask_text(profile: MaskingProfile, text: bytes) -> bytes:
    """Mask one complete text (what a stream masker produces for it fed at once)."""
    masked = Engine(profile).mask(text)
    if masked is None:
        return text
    return masked[0]


__all__ = [
    "BUILTIN_KINDS",
    "DEFAULT_PROFILE",
    "ColumnInfo",
    "ColumnRule",
    "CustomPattern",
    "MaskingConfigError",
    "MaskingError",
    "MaskingProfile",
    "RowMasker",
    "Strategy",
    "StrategySpec",
    "StreamMasker",
    "mask_text",
    "profile_from_dict",
]
