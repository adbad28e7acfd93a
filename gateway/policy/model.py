"""The policy model: rules, defaults, their validation and their JSON-able form.

A :class:`Policy` is built only through :func:`policy_from_mapping`, which both the TOML
loader and :meth:`Policy.from_dict` use, so a policy read back from an event is validated
exactly like one read from a file. Validation errors name the rule and field; the loader
adds the line number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, TypeVar

from gateway.masking import MaskingConfigError, MaskingProfile, profile_from_dict
from gateway.policy.sql_model import StatementKind

SCHEMA_VERSION = 1


class Action(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    REVIEW = "review"


class Protocol(StrEnum):
    MYSQL = "mysql"
    SSH = "ssh"


class SessionKind(StrEnum):
    """SSH requests that are not a command line."""

    SHELL = "shell"  # interactive shell with a PTY
    PORT_FORWARD = "port_forward"
    AGENT_FORWARD = "agent_forward"
    SFTP = "sftp"


# How restrictive an action is: a decision over several parts takes the highest.
SEVERITY = {Action.ALLOW: 0, Action.REVIEW: 1, Action.DENY: 2}


class PolicyError(ValueError):
    """A policy that cannot be loaded; carries where the problem is."""

    def __init__(
        self,
        message: str,
        *,
        rule: str | None = None,
        field: str | None = None,
        line: int | None = None,
        index: int | None = None,
    ) -> None:
        where = []
        if line is not None:
            where.append(f"line {line}")
        if rule is not None:
            where.append(f"rule {rule!r}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.rule = rule
        self.field = field
        self.line = line
        self.index = index  # position of the rule in the file, when known
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class Review:
    """Who may release a held command, how many of them, and for how long it waits."""

    approver_groups: tuple[str, ...]
    quorum: int = 1
    expiry_seconds: int = 900


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    name: str
    action: Action
    description: str = ""
    subjects: tuple[str, ...] = ()  # globs; empty means anyone
    groups: tuple[str, ...] = ()  # globs; the subject must be in one of them
    targets: tuple[str, ...] = ()  # globs on target names
    protocol: Protocol | None = None
    statements: tuple[str, ...] = ()  # KIND or KIND:SUBKIND
    tables: tuple[str, ...] = ()  # globs on db.table or table
    programs: tuple[str, ...] = ()  # globs on the basename, or on the path when they hold a /
    args: tuple[str, ...] = ()  # globs on arguments
    sessions: tuple[SessionKind, ...] = ()
    file_writes: bool = False  # SSH: the rule also covers output redirected into files
    match_regex: str | None = None
    review: Review | None = None  # for action review
    masking_profile: str | None = None

    def has_what(self) -> bool:
        return bool(
            self.statements
            or self.tables
            or self.programs
            or self.args
            or self.sessions
            or self.file_writes
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    rules: tuple[Rule, ...]
    default: Action = Action.DENY
    unknown: Action = Action.REVIEW
    review: Review | None = None  # approvers for default/unknown review and rules without
    masking_profile: str | None = None  # applied to allowed commands whose rule names none
    name: str = ""
    masking_profiles: Mapping[str, MaskingProfile] = field(default_factory=dict)
    """``[masking.profiles.NAME]`` tables (see gateway/masking/README.md); rules name them.
    Built in: ``default`` (every detector) and ``none`` (no masking of MySQL results)."""

    def rule(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, for storing in events; :meth:`from_dict` reads it back."""
        out: dict[str, Any] = {"version": SCHEMA_VERSION, "policy": _policy_header(self)}
        out["rule"] = [_rule_dict(r) for r in self.rules]
        if self.masking_profiles:
            out["masking"] = {
                "profiles": {name: p.to_dict() for name, p in self.masking_profiles.items()}
            }
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        return policy_from_mapping(data)


def _review_dict(review: Review) -> dict[str, Any]:
    return {
        "approver_groups": list(review.approver_groups),
        "quorum": review.quorum,
        "expiry": f"{review.expiry_seconds}s",
    }


def _policy_header(p: Policy) -> dict[str, Any]:
    out: dict[str, Any] = {"default": str(p.default), "unknown": str(p.unknown)}
    if p.name:
        out["name"] = p.name
    if p.masking_profile:
        out["masking_profile"] = p.masking_profile
    if p.review:
        out["review"] = _review_dict(p.review)
    return out


def _rule_dict(r: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"name": r.name, "action": str(r.action)}
    if r.description:
        out["description"] = r.description
    for key in ("subjects", "groups", "targets", "statements", "tables", "programs", "args"):
        value = getattr(r, key)
        if value:
            out[key] = list(value)
    if r.sessions:
        out["sessions"] = [str(s) for s in r.sessions]
    if r.protocol:
        out["protocol"] = str(r.protocol)
    if r.file_writes:
        out["file_writes"] = True
    if r.match_regex is not None:
        out["match_regex"] = r.match_regex
    if r.review:
        out.update(_review_dict(r.review))
    if r.masking_profile:
        out["masking_profile"] = r.masking_profile
    return out


_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_KINDS = frozenset(k.value for k in StatementKind)
# A rule's fields as written in the file: the dataclass fields, with review spelled out.
_RULE_KEYS = frozenset(f.name for f in fields(Rule)) - {"review"} | {
    "approver_groups",
    "quorum",
    "expiry",
}


def parse_duration(value: object, *, rule: str | None = None) -> int:
    """``"15m"``, ``"1h30m"``, ``"90s"``, ``"2d"`` or a number of seconds."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value and _DURATION.sub("", value) == "":
        seconds = sum(int(n) * _UNIT[u] for n, u in _DURATION.findall(value))
        if seconds > 0:
            return seconds
    raise PolicyError(f"expected a duration like '15m', got {value!r}", rule=rule, field="expiry")


def _strings(data: Mapping[str, Any], key: str, rule: str | None) -> tuple[str, ...]:
    value = data.get(key, ())
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError("expected a list of non-empty strings", rule=rule, field=key)
    return tuple(value)


_E = TypeVar("_E", bound=StrEnum)


def _enum(kind: type[_E], value: object, rule: str | None, key: str) -> _E:
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            pass
    allowed = ", ".join(m.value for m in kind)
    raise PolicyError(f"{value!r} is not one of {allowed}", rule=rule, field=key)


def _review(data: Mapping[str, Any], rule: str | None, fallback: Review | None) -> Review | None:
    if "approver_groups" not in data:
        if "quorum" in data or "expiry" in data:
            if fallback is None:
                raise PolicyError(
                    "quorum/expiry need approver_groups", rule=rule, field="approver_groups"
                )
            return Review(
                approver_groups=fallback.approver_groups,
                quorum=_quorum(data.get("quorum", fallback.quorum), rule),
                expiry_seconds=parse_duration(
                    data.get("expiry", fallback.expiry_seconds), rule=rule
                ),
            )
        return None
    groups = _strings(data, "approver_groups", rule)
    if not groups:
        raise PolicyError(
            "review needs at least one approver group", rule=rule, field="approver_groups"
        )
    return Review(
        approver_groups=groups,
        quorum=_quorum(data.get("quorum", 1), rule),
        expiry_seconds=parse_duration(data.get("expiry", "15m"), rule=rule),
    )


def _quorum(value: object, rule: str | None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PolicyError("quorum must be a whole number of at least 1", rule=rule, field="quorum")
    return value


def _statement_pattern(value: str, rule: str) -> str:
    kind, _, sub = value.upper().partition(":")
    if kind not in _KINDS or (":" in value and not sub):
        raise PolicyError(
            f"unknown statement kind {value!r} (use KIND or KIND:SUBKIND, KIND one of "
            f"{', '.join(sorted(_KINDS))})",
            rule=rule,
            field="statements",
        )
    return f"{kind}:{sub}" if sub else kind


def _rule(data: Mapping[str, Any], index: int, policy_review: Review | None) -> Rule:
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise PolicyError(f"rule #{index + 1} needs a non-empty name", field="name")
    unknown_keys = sorted(set(data) - _RULE_KEYS)
    if unknown_keys:
        raise PolicyError(
            f"unknown field(s) {', '.join(unknown_keys)}", rule=name, field=unknown_keys[0]
        )
    action = _enum(Action, data.get("action"), name, "action")
    protocol = _enum(Protocol, data["protocol"], name, "protocol") if "protocol" in data else None
    statements = tuple(_statement_pattern(s, name) for s in _strings(data, "statements", name))
    sessions = tuple(
        _enum(SessionKind, s, name, "sessions") for s in _strings(data, "sessions", name)
    )
    file_writes = data.get("file_writes", False)
    if not isinstance(file_writes, bool):
        raise PolicyError("expected true or false", rule=name, field="file_writes")
    regex = data.get("match_regex")
    if regex is not None:
        if not isinstance(regex, str) or not regex:
            raise PolicyError("expected a regular expression", rule=name, field="match_regex")
        try:
            re.compile(regex)
        except re.error as exc:
            raise PolicyError(
                f"bad regular expression: {exc}", rule=name, field="match_regex"
            ) from None
    rule = Rule(
        name=name,
        action=action,
        description=str(data.get("description", "")),
        subjects=_strings(data, "subjects", name),
        groups=_strings(data, "groups", name),
        targets=_strings(data, "targets", name),
        protocol=protocol,
        statements=statements,
        tables=_strings(data, "tables", name),
        programs=_strings(data, "programs", name),
        args=_strings(data, "args", name),
        sessions=sessions,
        file_writes=file_writes,
        match_regex=regex,
        review=_review(data, name, policy_review),
        masking_profile=_optional_str(data, "masking_profile", name),
    )
    _check_rule(rule, policy_review)
    return rule


def _optional_str(data: Mapping[str, Any], key: str, rule: str | None) -> str | None:
    value = data.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise PolicyError("expected a non-empty string", rule=rule, field=key)
    return value


def _check_rule(rule: Rule, policy_review: Review | None) -> None:
    name = rule.name
    sql_fields = rule.statements or rule.tables
    ssh_fields = rule.programs or rule.args or rule.sessions or rule.file_writes
    if sql_fields and ssh_fields:
        raise PolicyError(
            "a rule matches SQL (statements/tables) or SSH (programs/args/sessions), not both",
            rule=name,
        )
    if (sql_fields and rule.protocol is Protocol.SSH) or (
        ssh_fields and rule.protocol is Protocol.MYSQL
    ):
        raise PolicyError("fields do not fit the protocol", rule=name, field="protocol")
    if rule.action is Action.ALLOW:
        if any(s.startswith("UNKNOWN") for s in rule.statements):
            raise PolicyError(
                "what the classifier cannot understand is never allowed",
                rule=name,
                field="statements",
            )
        if rule.match_regex is not None and not rule.has_what():
            raise PolicyError(
                "match_regex is a secondary matcher: an allow rule also needs statements or programs",
                rule=name,
                field="match_regex",
            )
    if rule.action is Action.REVIEW and rule.review is None and policy_review is None:
        raise PolicyError(
            "review needs approver_groups (on the rule or in [policy.review])",
            rule=name,
            field="approver_groups",
        )
    if rule.action is not Action.REVIEW and rule.review is not None:
        raise PolicyError(
            "approver_groups/quorum/expiry only apply to review", rule=name, field="action"
        )


def policy_from_mapping(data: Mapping[str, Any]) -> Policy:
    """Validate and build a policy from its TOML/JSON structure."""
    version = data.get("version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise PolicyError(f"unsupported policy version {version!r}", field="version")
    unknown_top = sorted(set(data) - {"version", "policy", "rule", "masking"})
    if unknown_top:
        raise PolicyError(f"unknown top-level key(s) {', '.join(unknown_top)}")
    header = data.get("policy", {})
    if not isinstance(header, Mapping):
        raise PolicyError("[policy] must be a table", field="policy")
    bad = sorted(set(header) - {"name", "default", "unknown", "review", "masking_profile"})
    if bad:
        raise PolicyError(f"unknown field(s) {', '.join(bad)} in [policy]", field=bad[0])
    review_data = header.get("review")
    if review_data is not None and not isinstance(review_data, Mapping):
        raise PolicyError("[policy.review] must be a table", field="review")
    review = _review(review_data or {}, None, None)
    default = _enum(Action, header.get("default", "deny"), None, "default")
    unknown = _enum(Action, header.get("unknown", "review"), None, "unknown")
    if unknown is Action.ALLOW:
        raise PolicyError("unknown must be deny or review, never allow", field="unknown")
    if review is None and Action.REVIEW in (default, unknown):
        raise PolicyError("a review default needs [policy.review] approver_groups", field="review")
    rules_data = data.get("rule", [])
    if not isinstance(rules_data, list) or not all(isinstance(r, Mapping) for r in rules_data):
        raise PolicyError("rules must be [[rule]] tables", field="rule")
    rules: list[Rule] = []
    for i, r in enumerate(rules_data):
        try:
            rules.append(_rule(r, i, review))
        except PolicyError as exc:
            raise PolicyError(exc.message, rule=exc.rule, field=exc.field, index=i) from None
        if any(rule.name == rules[-1].name for rule in rules[:-1]):
            raise PolicyError("duplicate rule name", rule=rules[-1].name, field="name", index=i)
    profiles = _masking_profiles(data.get("masking", {}))
    policy = Policy(
        rules=tuple(rules),
        default=default,
        unknown=unknown,
        review=review,
        masking_profile=_optional_str(header, "masking_profile", None),
        name=str(header.get("name", "")),
        masking_profiles=profiles,
    )
    known = set(profiles) | BUILTIN_PROFILES
    for where, name in [("policy", policy.masking_profile)] + [
        (r.name, r.masking_profile) for r in policy.rules
    ]:
        if name is not None and name not in known:
            raise PolicyError(
                f"masking_profile {name!r} is not defined ([masking.profiles.{name}])",
                rule=None if where == "policy" else where,
                field="masking_profile",
            )
    return policy


BUILTIN_PROFILES = frozenset({"default", "none"})


def _masking_profiles(section: object) -> dict[str, MaskingProfile]:
    if not isinstance(section, Mapping):
        raise PolicyError("[masking] must be a table", field="masking")
    unknown = sorted(set(section) - {"profiles"})
    if unknown:
        raise PolicyError(f"unknown field(s) {', '.join(unknown)} in [masking]", field="masking")
    tables = section.get("profiles", {})
    if not isinstance(tables, Mapping):
        raise PolicyError("[masking.profiles] must hold tables", field="masking")
    out: dict[str, MaskingProfile] = {}
    for name, table in tables.items():
        if name in BUILTIN_PROFILES:
            raise PolicyError(f"masking profile {name!r} is built in", field="masking")
        if not isinstance(table, Mapping):
            raise PolicyError(f"[masking.profiles.{name}] must be a table", field="masking")
        try:
            out[name] = profile_from_dict(table, name=name)
        except MaskingConfigError as exc:
            raise PolicyError(str(exc), field="masking") from None
    return out
