"""What changed between two policies, for the change event and for `wardgate policy apply`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.policy.model import Policy


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleChange:
    name: str
    fields: tuple[FieldChange, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyDiff:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[RuleChange, ...] = ()
    settings: tuple[FieldChange, ...] = ()  # default, unknown, review, masking_profile, name
    reordered: bool = False  # same rules, different order: changes which rule is reported

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.settings or self.reordered)

    def __str__(self) -> str:
        if self.empty:
            return "no changes"
        lines = [f"policy.{c.field}: {_show(c.old)} -> {_show(c.new)}" for c in self.settings]
        lines += [f"+ rule {name}" for name in self.added]
        lines += [f"- rule {name}" for name in self.removed]
        for change in self.changed:
            lines.append(f"~ rule {change.name}")
            lines += [f"    {c.field}: {_show(c.old)} -> {_show(c.new)}" for c in change.fields]
        if self.reordered:
            lines.append("rules reordered")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        def fields(changes: tuple[FieldChange, ...]) -> list[dict[str, Any]]:
            return [{"field": c.field, "old": c.old, "new": c.new} for c in changes]

        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": [{"name": c.name, "fields": fields(c.fields)} for c in self.changed],
            "settings": fields(self.settings),
            "reordered": self.reordered,
        }


def _show(value: Any) -> str:
    return "(none)" if value is None else repr(value)


def _field_changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[FieldChange, ...]:
    keys = sorted(set(old) | set(new))
    return tuple(
        FieldChange(field=k, old=old.get(k), new=new.get(k))
        for k in keys
        if old.get(k) != new.get(k)
    )


def diff_policies(old: Policy, new: Policy) -> PolicyDiff:
    """Rules added, removed and changed (field by field), and changed policy settings."""
    old_d, new_d = old.to_dict(), new.to_dict()
    old_rules = {r["name"]: r for r in old_d["rule"]}
    new_rules = {r["name"]: r for r in new_d["rule"]}
    changed = tuple(
        RuleChange(name=name, fields=_field_changes(old_rules[name], new_rules[name]))
        for name in new_rules
        if name in old_rules and old_rules[name] != new_rules[name]
    )
    kept_old = [n for n in old_rules if n in new_rules]
    kept_new = [n for n in new_rules if n in old_rules]
    return PolicyDiff(
        added=tuple(n for n in new_rules if n not in old_rules),
        removed=tuple(n for n in old_rules if n not in new_rules),
        changed=changed,
        settings=_field_changes(old_d["policy"], new_d["policy"]),
        reordered=kept_old != kept_new,
    )
