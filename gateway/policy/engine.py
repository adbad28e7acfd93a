"""The decision engine: a pure function from (policy, request) to a decision.

Theory of operation
-------------------
A request is cut into *parts*: every facet of every SQL statement, every program of a shell
command line (plus one "unknown" part when the line is not fully understood), or the one
session request. Each part is decided on its own:

1. the rules that apply to the caller (subjects, groups, targets, protocol) and match the
   part are collected; ``deny`` overrides ``review``, which overrides ``allow``; among rules of
   the same action the first in file order is reported;
2. no matching rule: the policy ``default`` (or, for a part the classifier could not
   understand, the ``unknown`` default, which can never be allow). Allow rules never match an
   unknown part.

The request's decision is the most restrictive over all parts (deny > review > allow); the
first part with that action is named as the trigger. Several parts held for review combine:
the quorum is the largest, the expiry the shortest, and the approver groups those common to
all of them; when they have none in common the request is denied, because no single approval
could be valid for all of its parts.

Table globs: a rule that denies or reviews matches when *any* table touched matches; a rule
that allows matches only when *every* table touched matches. Unqualified tables are qualified
with the request's current database; when that is unknown a ``db.table`` glob matches on the
table name alone for deny/review rules and never for allow rules. Matching is
case-insensitive. Program globs with a ``/`` match the path as written, others the basename;
for deny/review a path glob also matches a bare name with the same basename, and for allow a
bare-name glob matches only a program written without a path (found on PATH). Output
redirected into a file is a part of its own, matched only by rules with ``file_writes``: an
allow rule for ``cat`` does not allow ``cat secret > /etc/cron.d/x``.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass
from typing import Any

from gateway.policy.model import SEVERITY, Action, Policy, Protocol, Review, Rule, SessionKind
from gateway.policy.shell import ShellClassification, ShellCommand
from gateway.policy.sql_model import Facet, SqlClassification, SqlStatement, StatementKind


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandRequest:
    """One thing an identity wants to do on a target, already classified."""

    subject: str
    groups: tuple[str, ...] = ()
    target: str
    protocol: Protocol
    sql: SqlClassification | None = None
    shell: ShellClassification | None = None
    session: SessionKind | None = None
    database: str | None = None  # the connection's current database, for unqualified tables

    def __post_init__(self) -> None:
        given = [x is not None for x in (self.sql, self.shell, self.session)]
        if sum(given) != 1:
            raise ValueError("a request carries exactly one of sql, shell, session")
        if (self.sql is not None) != (self.protocol is Protocol.MYSQL):
            raise ValueError("sql requests are mysql requests and the other way round")


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    action: Action
    rule: str  # rule name, or "default" / "unknown-default"
    reason: str
    approver_groups: tuple[str, ...] = ()
    quorum: int = 0
    expiry_seconds: int = 0
    masking_profile: str | None = None
    statement_index: int | None = None  # which statement / command triggered it
    statement: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, for the CommandDecided event."""
        return {
            "action": str(self.action),
            "rule": self.rule,
            "reason": self.reason,
            "approver_groups": list(self.approver_groups),
            "quorum": self.quorum,
            "expiry_seconds": self.expiry_seconds,
            "masking_profile": self.masking_profile,
            "statement_index": self.statement_index,
            "statement": self.statement,
        }


DEFAULT_RULE = "default"
UNKNOWN_RULE = "unknown-default"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Part:
    index: int
    text: str
    facet: Facet | None = None
    statement: SqlStatement | None = None
    command: ShellCommand | None = None
    session: SessionKind | None = None
    file_write: ShellClassification | None = None  # output redirected into files
    unknown: bool = False
    unknown_reason: str = ""


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern.lower()))


def _matches(pattern: str, value: str) -> bool:
    return _glob(pattern).match(value.lower()) is not None


def _any(patterns: tuple[str, ...], values: tuple[str, ...] | list[str]) -> bool:
    return any(_matches(p, v) for p in patterns for v in values)


def _applies(rule: Rule, req: CommandRequest) -> bool:
    """Does the rule concern this caller, target and protocol at all?"""
    if rule.protocol is not None and rule.protocol is not req.protocol:
        return False
    if rule.subjects and not _any(rule.subjects, [req.subject]):
        return False
    if rule.groups and not _any(rule.groups, req.groups):
        return False
    return not (rule.targets and not _any(rule.targets, [req.target]))


def _statement_matches(patterns: tuple[str, ...], facet: Facet) -> bool:
    full = facet.label()
    return any(p in (facet.kind.value, full) for p in patterns)


def _table_matches(
    pattern: str, db: str | None, name: str, default_db: str | None, strict: bool
) -> bool:
    if "." not in pattern:
        return _matches(pattern, name)
    database = db if db is not None else default_db
    if database is not None:
        return _matches(pattern, f"{database}.{name}")
    return not strict and _matches(pattern.split(".", 1)[1], name)


def _tables_match(rule: Rule, stmt: SqlStatement, default_db: str | None) -> bool:
    refs = stmt.tables
    if rule.action is Action.ALLOW:
        return all(
            any(_table_matches(p, t.database, t.name, default_db, True) for p in rule.tables)
            for t in refs
        )
    return any(
        _table_matches(p, t.database, t.name, default_db, False) for p in rule.tables for t in refs
    )


def _program_matches(rule: Rule, cmd: ShellCommand) -> bool:
    for pattern in rule.programs:
        if "/" not in pattern:
            # A bare name allows only what PATH finds: ./ls or /tmp/x/ls is someone's file.
            if _matches(pattern, cmd.name) and (
                rule.action is not Action.ALLOW or "/" not in cmd.program
            ):
                return True
        elif _matches(pattern, cmd.program) or (
            rule.action is not Action.ALLOW
            and "/" not in cmd.program
            and _matches(pattern.rsplit("/", 1)[1], cmd.name)
        ):
            return True
    return False


def _args_match(rule: Rule, cmd: ShellCommand) -> bool:
    if rule.action is Action.ALLOW:
        return all(any(_matches(p, a) for p in rule.args) for a in cmd.args)
    return _any(rule.args, cmd.args)


def _part_matches(rule: Rule, part: _Part, req: CommandRequest) -> bool:
    if part.unknown and rule.action is Action.ALLOW:
        return False
    if part.session is not None:
        if rule.sessions:
            return part.session in rule.sessions
        if rule.has_what():
            return False
    elif part.statement is not None and part.facet is not None:
        if rule.programs or rule.args or rule.sessions:
            return False
        if rule.statements and not _statement_matches(rule.statements, part.facet):
            return False
        if rule.tables and not _tables_match(rule, part.statement, req.database):
            return False
    elif part.file_write is not None:
        if not rule.file_writes or rule.statements or rule.tables or rule.sessions:
            return False
        if rule.programs and not any(_program_matches(rule, c) for c in part.file_write.commands):
            return False
    elif part.command is not None:
        if rule.statements or rule.tables or rule.sessions or rule.file_writes:
            return False
        if rule.programs and not _program_matches(rule, part.command):
            return False
        if rule.args and not _args_match(rule, part.command):
            return False
    elif rule.has_what():  # an unknown shell part has no program to match
        return False
    return rule.match_regex is None or re.search(rule.match_regex, part.text) is not None


def _parts(req: CommandRequest) -> list[_Part]:
    if req.session is not None:
        return [_Part(index=0, text=str(req.session), session=req.session)]
    if req.sql is not None:
        return [
            _Part(
                index=i,
                text=stmt.text,
                facet=facet,
                statement=stmt,
                unknown=facet.kind is StatementKind.UNKNOWN,
                unknown_reason=stmt.reason,
            )
            for i, stmt in enumerate(req.sql.statements)
            for facet in stmt.facets()
        ]
    assert req.shell is not None
    shell = req.shell
    parts = [_Part(index=i, text=shell.text, command=c) for i, c in enumerate(shell.commands)]
    if shell.has_redirection_to_file:
        parts.append(_Part(index=len(parts), text=shell.text, file_write=shell))
    if not shell.understood or not parts:
        reason = "; ".join(shell.reasons) or "no program"
        parts.append(_Part(index=len(parts), text=shell.text, unknown=True, unknown_reason=reason))
    return parts


def _decide_part(policy: Policy, rules: list[Rule], part: _Part, req: CommandRequest) -> Decision:
    best: Rule | None = None
    for rule in rules:
        if _part_matches(rule, part, req) and (
            best is None or SEVERITY[rule.action] > SEVERITY[best.action]
        ):
            best = rule
            if rule.action is Action.DENY:
                break
    what = _describe(part)
    if best is not None:
        review = best.review or policy.review
        reason = best.description or f"rule {best.name} ({best.action}) matched {what}"
        masking = best.masking_profile or policy.masking_profile
        return _decision(best.action, best.name, reason, review=review, masking=masking, part=part)
    if part.unknown:
        reason = f"not understood ({part.unknown_reason or 'unclassified'}): {what}"
        return _decision(
            policy.unknown, UNKNOWN_RULE, reason, review=policy.review, masking=None, part=part
        )
    reason = f"no rule matched {what}"
    masking = policy.masking_profile
    return _decision(
        policy.default, DEFAULT_RULE, reason, review=policy.review, masking=masking, part=part
    )


def _describe(part: _Part) -> str:
    if part.facet is not None:
        return part.facet.label()
    if part.command is not None:
        return f"program {part.command.program}"
    if part.session is not None:
        return f"session {part.session}"
    if part.file_write is not None:
        return f"output written to {', '.join(part.file_write.redirect_targets)}"
    return "command"


def _decision(
    action: Action,
    rule: str,
    reason: str,
    *,
    review: Review | None,
    masking: str | None,
    part: _Part,
) -> Decision:
    held = action is Action.REVIEW and review is not None
    return Decision(
        action=action,
        rule=rule,
        reason=reason,
        approver_groups=review.approver_groups if held and review else (),
        quorum=review.quorum if held and review else 0,
        expiry_seconds=review.expiry_seconds if held and review else 0,
        masking_profile=masking if action is not Action.DENY else None,
        statement_index=part.index,
        statement=part.text,
    )


_APPLICABLE: dict[tuple[int, str, tuple[str, ...], str, Protocol], tuple[Policy, list[Rule]]] = {}


def _applicable(policy: Policy, request: CommandRequest) -> list[Rule]:
    """The rules that concern this caller, target and protocol (cached: they depend on
    nothing else, and matching globs for every rule was a third of a decision's time)."""
    key = (id(policy), request.subject, request.groups, request.target, request.protocol)
    found = _APPLICABLE.get(key)
    if found is not None and found[0] is policy:
        return found[1]
    rules = [r for r in policy.rules if _applies(r, request)]
    if len(_APPLICABLE) > 4096:
        _APPLICABLE.clear()
    _APPLICABLE[key] = (policy, rules)
    return rules


def decide(policy: Policy, request: CommandRequest) -> Decision:
    """Decide a classified request; pure, no I/O."""
    rules = _applicable(policy, request)
    decisions = [_decide_part(policy, rules, p, request) for p in _parts(request)]
    worst = max(SEVERITY[d.action] for d in decisions)
    chosen = next(d for d in decisions if SEVERITY[d.action] == worst)
    if chosen.action is not Action.REVIEW:
        return chosen
    held = [d for d in decisions if d.action is Action.REVIEW]
    common = [g for g in chosen.approver_groups if all(g in d.approver_groups for d in held)]
    if not common:
        return Decision(
            action=Action.DENY,
            rule=chosen.rule,
            reason="parts of this request need approval from different groups; send them separately",
            statement_index=chosen.statement_index,
            statement=chosen.statement,
        )
    return Decision(
        action=Action.REVIEW,
        rule=chosen.rule,
        reason=chosen.reason,
        approver_groups=tuple(common),
        quorum=max(d.quorum for d in held),
        expiry_seconds=min(d.expiry_seconds for d in held),
        masking_profile=chosen.masking_profile,
        statement_index=chosen.statement_index,
        statement=chosen.statement,
    )
