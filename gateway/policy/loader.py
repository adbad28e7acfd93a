"""Reading a policy file (TOML) and pointing at the line of any mistake."""

from __future__ import annotations

import re
import tomllib

from gateway.policy.model import Policy, PolicyError, policy_from_mapping

_RULE_HEADER = re.compile(r"^\s*\[\[\s*rule\s*\]\]")
_TABLE_HEADER = re.compile(r"^\s*\[")


def load_policy(toml_text: str) -> Policy:
    """Parse and validate a policy file; raises :class:`PolicyError` naming line and field."""
    try:
        data = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends with "(at line L, column C)".
        line_match = re.search(r"line (\d+)", str(exc))
        line = int(line_match.group(1)) if line_match else None
        raise PolicyError(f"not valid TOML: {exc}", line=line) from None
    try:
        return policy_from_mapping(data)
    except PolicyError as exc:
        line = _locate(toml_text, exc.index, exc.field)
        raise PolicyError(
            exc.message, rule=exc.rule, field=exc.field, line=line, index=exc.index
        ) from None


def _locate(text: str, index: int | None, field: str | None) -> int | None:
    """Best line for an error: the field inside the rule's block (or [policy]), else the block."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _TABLE_HEADER.match(line)]
    rule_starts = [i for i in starts if _RULE_HEADER.match(lines[i])]
    if index is not None:
        if index >= len(rule_starts):
            return None
        first = rule_starts[index]
    else:
        first = 0  # top level and [policy] tables come before the rules
    later = [i for i in (rule_starts if index is None else starts) if i > first]
    end = later[0] if later else len(lines)
    if field is not None:
        field_line = re.compile(rf"^\s*(\[\s*[\w.]*\.)?{re.escape(field)}\s*[=\]]")
        for j in range(first, end):
            if field_line.match(lines[j]):
                return j + 1
    return first + 1
