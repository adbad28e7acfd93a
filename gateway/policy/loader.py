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
        if exc.line is not None:
            raise
        line = _locate(toml_text, exc.rule, exc.field)
        message = str(exc).split(": ", 1)[1] if (exc.rule or exc.field) else str(exc)
        raise PolicyError(message, rule=exc.rule, field=exc.field, line=line) from None


def _locate(text: str, rule: str | None, field: str | None) -> int | None:
    """Best line for an error: the field inside the named rule's block, else the block."""
    lines = text.splitlines()
    blocks: list[tuple[int, int]] = []  # (first line index, end) of each [[rule]]
    for i, line in enumerate(lines):
        if _RULE_HEADER.match(line):
            blocks.append((i, len(lines)))
        elif _TABLE_HEADER.match(line) and blocks and blocks[-1][1] == len(lines):
            blocks[-1] = (blocks[-1][0], i)
    if rule is None:
        span = (0, blocks[0][0] if blocks else len(lines))
    else:
        name_line = re.compile(rf"^\s*name\s*=\s*([\"']){re.escape(rule)}\1\s*(#.*)?$")
        found = [b for b in blocks if any(name_line.match(lines[j]) for j in range(*b))]
        if not found:
            return None
        span = found[0]
    if field is not None:
        field_line = re.compile(rf"^\s*{re.escape(field)}\s*=")
        for j in range(*span):
            if field_line.match(lines[j]):
                return j + 1
    return span[0] + 1
