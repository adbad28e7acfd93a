"""The per-command pipeline shared by the MySQL and SSH proxies: classify, decide, record,
hold, and say whether to forward.

Theory of operation
-------------------
Every command becomes ``CommandReceived`` + ``CommandDecided`` (+ ``CommandForwarded`` when
it may run), stored in ONE durable write before the caller forwards anything (fail closed:
if the store cannot take them, the command is refused). A deny names its rule. A review
first looks for an approval window or an approved, unused approval of the same normalized
statement (a retry), and otherwise holds the command on the :class:`ApprovalDesk`.

The current policy is the policy projection's latest document, compiled once per change;
before any policy was applied the gateway denies everything, saying so.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from events.domain import Session, short_id
from events.store import StoreError
from gateway.approvals import APPROVED, DENIED, EXPIRED, TIMED_OUT, ApprovalDesk, HoldRequest
from gateway.identity import Identity
from gateway.live import LiveViews
from gateway.masking import DEFAULT_PROFILE, MaskingProfile
from gateway.policy.engine import CommandRequest, Decision, decide
from gateway.policy.model import Action, Policy, Protocol, SessionKind
from gateway.policy.shell import classify_shell
from gateway.policy.sql import classify_sql, normalize_sql
from gateway.policy.sql_tokens import DEFAULT_SQL_MODE, SqlMode, SqlTokenError
from gateway.session import SessionLog
from gateway.writer import EventWriter

logger = logging.getLogger("wardgate.guard")

NO_POLICY = Policy(rules=(), default=Action.DENY, unknown=Action.DENY, name="none")


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    forward: bool
    action: str
    rule: str
    message: str = ""
    code: str = "allowed"
    approval_id: str | None = None
    approvers: tuple[str, ...] = ()
    masking_profile: str | None = None
    seq: int = 0


class Guard:
    def __init__(self, *, writer: EventWriter, views: LiveViews, desk: ApprovalDesk) -> None:
        self.writer = writer
        self.views = views
        self.desk = desk
        self._compiled: tuple[str, Policy] = ("", NO_POLICY)
        self._warned: set[str] = set()

    def policy(self) -> Policy:
        view = self.views.policy
        if view.digest != self._compiled[0] and view.document is not None:
            try:
                self._compiled = (view.digest, Policy.from_dict(view.document))
            except ValueError as exc:  # a stored policy this version cannot read
                logger.error("stored policy %s cannot be loaded: %s", view.digest, exc)
                self._compiled = (view.digest, NO_POLICY)
        return self._compiled[1]

    def masking_profile(self, name: str | None) -> MaskingProfile | None:
        """The profile a decision names: None means the default profile (masking is on
        unless the policy says ``masking_profile = "none"``)."""
        if name in (None, "", "default"):
            return DEFAULT_PROFILE
        if name == "none":
            return None
        profiles = getattr(self.policy(), "masking_profiles", {})
        found = profiles.get(name)
        if found is None:
            if name not in self._warned:
                self._warned.add(name)
                logger.error("policy names unknown masking profile %r: using the default", name)
            return DEFAULT_PROFILE
        assert isinstance(found, MaskingProfile)
        return found

    # -- entry points ---------------------------------------------------------------------

    async def check_sql(
        self,
        *,
        log: SessionLog,
        identity: Identity,
        target: str,
        kind: str,
        text: str,
        params: list[object] | None = None,
        database: str | None = None,
        sql_mode: SqlMode = DEFAULT_SQL_MODE,
        max_hold: float,
    ) -> Verdict:
        classification = classify_sql(text, sql_mode)

        def normalized() -> str:  # only a review needs it (to match approvals)
            return _normalized(text, sql_mode) if len(text) <= 2048 else _normalize(text, sql_mode)

        request = CommandRequest(
            subject=identity.subject,
            groups=tuple(sorted(identity.groups)),
            target=target,
            protocol=Protocol.MYSQL,
            sql=classification,
            database=database,
        )
        kinds = [s.kind.value for s in classification.statements]
        tables = sorted({str(t) for s in classification.statements for t in s.tables})
        return await self._check(
            log=log,
            identity=identity,
            target=target,
            protocol="mysql",
            kind=kind,
            text=text,
            params=params,
            request=request,
            normalized=normalized,
            kinds=kinds,
            tables=tables,
            max_hold=max_hold,
        )

    async def check_shell(
        self, *, log: SessionLog, identity: Identity, target: str, text: str, max_hold: float
    ) -> Verdict:
        classification = classify_shell(text)
        request = CommandRequest(
            subject=identity.subject,
            groups=tuple(sorted(identity.groups)),
            target=target,
            protocol=Protocol.SSH,
            shell=classification,
        )
        programs = [c.program for c in classification.commands]
        return await self._check(
            log=log,
            identity=identity,
            target=target,
            protocol="ssh",
            kind="exec",
            text=text,
            params=None,
            request=request,
            normalized=lambda: " ".join(text.split()),
            kinds=programs,
            tables=[],
            max_hold=max_hold,
        )

    async def check_session(
        self,
        *,
        log: SessionLog,
        identity: Identity,
        target: str,
        what: SessionKind,
        text: str,
        max_hold: float,
    ) -> Verdict:
        request = CommandRequest(
            subject=identity.subject,
            groups=tuple(sorted(identity.groups)),
            target=target,
            protocol=Protocol.SSH,
            session=what,
        )
        return await self._check(
            log=log,
            identity=identity,
            target=target,
            protocol="ssh",
            kind=what.value,
            text=text,
            params=None,
            request=request,
            normalized=f"{what.value} {text}".strip,
            kinds=[what.value],
            tables=[],
            max_hold=max_hold,
        )

    async def record_protocol(
        self,
        *,
        log: SessionLog,
        identity: Identity,
        kind: str,
        text: str,
        params: list[object] | None,
        rule: str,
    ) -> Verdict:
        """A command that runs no new statement text (ping, fetch, executing a statement
        decided at PREPARE): recorded, decided by ``rule``, forwarded."""
        seq = log.next_seq()
        decision = Decision(
            action=Action.ALLOW,
            rule=rule,
            reason="protocol command" if rule == "protocol" else "statement decided at PREPARE",
        )
        c = _Command(
            log=log,
            seq=seq,
            decision=decision,
            kinds=[],
            tables=[],
            received=log.event(
                Session.CommandReceived,
                actor=identity.subject,
                seq=seq,
                kind=kind,
                text=text,
                params=params,
            ),
        )
        try:
            await self.writer.write([c.received, c.decided(), c.forwarded()])
        except StoreError as exc:
            log_store_failure(exc)
            return c.verdict(
                forward=False,
                code="store_unavailable",
                message="wardgate: the audit store is unavailable; command refused",
            )
        return c.verdict(forward=True)

    # -- the pipeline ---------------------------------------------------------------------

    async def _check(
        self,
        *,
        log: SessionLog,
        identity: Identity,
        target: str,
        protocol: str,
        kind: str,
        text: str,
        params: list[object] | None,
        request: CommandRequest,
        normalized: Callable[[], str],
        kinds: list[str],
        tables: list[str],
        max_hold: float,
    ) -> Verdict:
        policy = self.policy()
        decision = decide(policy, request)
        if policy is NO_POLICY:
            decision = Decision(
                action=Action.DENY,
                rule="no-policy",
                reason="no policy has been applied (wardgate policy apply FILE)",
            )
        seq = log.next_seq()
        c = _Command(
            log=log,
            seq=seq,
            decision=decision,
            kinds=kinds,
            tables=tables,
            received=log.event(
                Session.CommandReceived,
                actor=identity.subject,
                seq=seq,
                kind=kind,
                text=text,
                params=params,
            ),
        )
        try:
            if decision.action is Action.ALLOW:
                await self.writer.write([c.received, c.decided(), c.forwarded()])
                return c.verdict(forward=True)
            if decision.action is Action.DENY:
                await self.writer.write([c.received, c.decided()])
                return c.verdict(
                    forward=False,
                    code="denied",
                    message=f"wardgate: denied by rule {decision.rule}: {decision.reason}",
                )
            return await self._review(
                c,
                identity=identity,
                target=target,
                protocol=protocol,
                text=text,
                normalize=normalized,
                max_hold=max_hold,
            )
        except StoreError as exc:
            log_store_failure(exc)
            return c.verdict(
                forward=False,
                code="store_unavailable",
                message="wardgate: the audit store is unavailable; command refused "
                "(nothing runs unrecorded)",
            )

    async def _review(
        self,
        c: _Command,
        *,
        identity: Identity,
        target: str,
        protocol: str,
        text: str,
        normalize: Callable[[], str],
        max_hold: float,
    ) -> Verdict:
        subject, log, decision = identity.subject, c.log, c.decision
        normalized = normalize()
        window = self.desk.window(subject=subject, target=target, normalized=normalized)
        if window is not None:
            aid, approvers = window
            await self.writer.write([c.received, c.decided(aid), c.forwarded(approvers)])
            return c.verdict(forward=True, code="approved", approval_id=aid, approvers=approvers)
        earlier = await self.desk.use_earlier(
            subject=subject, target=target, normalized=normalized, session_id=log.id, seq=c.seq
        )
        if earlier is not None and earlier.use is not None:
            await self.writer.write(
                [
                    c.received,
                    c.decided(earlier.approval_id),
                    earlier.use,
                    c.forwarded(earlier.approvers),
                ]
            )
            return c.verdict(
                forward=True,
                code="approved",
                approval_id=earlier.approval_id,
                approvers=earlier.approvers,
            )
        requested = self.desk.new_request(
            HoldRequest(
                session_id=log.id,
                command_seq=c.seq,
                subject=subject,
                groups=sorted(identity.groups),
                target=target,
                protocol=protocol,
                command=text,
                normalized=normalized,
                rule=decision.rule,
                approver_groups=decision.approver_groups or ("oncall",),
                quorum=decision.quorum or 1,
                expiry_seconds=decision.expiry_seconds or 900,
            )
        )
        aid = str(requested.originator_id)
        await self.writer.write([c.received, c.decided(aid), requested])
        outcome = await self.desk.wait(requested, max_hold=max_hold, session_id=log.id, seq=c.seq)
        short = short_id(aid)
        if outcome.status == APPROVED and outcome.use is not None:
            await self.writer.write([outcome.use, c.forwarded(outcome.approvers)])
            return c.verdict(
                forward=True, code="approved", approval_id=aid, approvers=outcome.approvers
            )
        if outcome.status == DENIED:
            message = f"wardgate: approval {short} denied by {outcome.decided_by}: {outcome.reason}"
        elif outcome.status == EXPIRED:
            message = f"wardgate: approval {short} expired without a decision"
        elif outcome.status == TIMED_OUT:
            message = (
                f"wardgate: held for approval {short} (rule {decision.rule}); not decided yet: "
                "retry the same statement once it is approved"
            )
        else:
            message = f"wardgate: approval {short} {outcome.status}: {outcome.reason}"
        return c.verdict(
            forward=False, code=f"approval_{outcome.status}", approval_id=aid, message=message
        )


@dataclass(slots=True, kw_only=True)
class _Command:
    """One command on its way through the pipeline: builds its session events."""

    log: SessionLog
    seq: int
    decision: Decision
    kinds: list[str]
    tables: list[str]
    received: Session.CommandReceived

    def decided(self, approval_id: str | None = None) -> Session.CommandDecided:
        d = self.decision
        return self.log.event(
            Session.CommandDecided,
            seq=self.seq,
            action=d.action.value,
            rule=d.rule,
            reason=d.reason,
            statement_kinds=self.kinds,
            tables=self.tables,
            approval_id=approval_id,
            masking_profile=d.masking_profile,
        )

    def forwarded(self, approvers: Sequence[str] = ()) -> Session.CommandForwarded:
        return self.log.event(Session.CommandForwarded, seq=self.seq, approved_by=list(approvers))

    def verdict(
        self,
        *,
        forward: bool,
        code: str = "allowed",
        message: str = "",
        approval_id: str | None = None,
        approvers: tuple[str, ...] = (),
    ) -> Verdict:
        d = self.decision
        return Verdict(
            forward=forward,
            action=d.action.value,
            rule=d.rule,
            message=message,
            code=code,
            approval_id=approval_id,
            approvers=approvers,
            masking_profile=d.masking_profile,
            seq=self.seq,
        )


def _normalize(text: str, sql_mode: SqlMode) -> str:
    try:
        return normalize_sql(text, sql_mode)
    except SqlTokenError:
        return text.strip()


# The same statements come back again and again (applications, ORMs, benchmarks): the
# normalized text, used only to match approvals, is pure and cheap to keep.
_normalized = functools.lru_cache(maxsize=4096)(_normalize)


def log_store_failure(exc: StoreError) -> None:
    logger.error("refusing a command, the event store failed: %s", exc)
