"""`wardgate export ...`, `wardgate sessions list|show` and `wardgate report`: the auditor's CLI."""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from events.domain import DomainError, SessionControl, short_id
from events.export import (
    DECISIONS,
    FORMATS,
    KINDS,
    ExportError,
    ExportFilter,
    export,
    iso,
    parse_time,
    row_dict,
)
from events.projections import SessionsView, catch_up
from events.report import Report, ReportLine, build_report, find_sessions, session_detail
from events.store import ConcurrencyConflict
from gateway.commands.common import opened_store, print_json
from gateway.errors import UserError

KIND_HELP = {
    "events": "every stored event, one row each",
    "sessions": "one row per session (connection)",
    "commands": "one row per command, with its decision, approvers and result",
    "approvals": "one row per approval request, with its outcome",
    "policy": "one row per applied policy change",
}


def register(sub: Any) -> None:
    window = argparse.ArgumentParser(add_help=False)
    window.add_argument(
        "--from",
        dest="since",
        metavar="WHEN",
        help="start of the window: ISO date or date-time (UTC unless it says), or 7d, 12h, 30m ago",
    )
    window.add_argument("--to", dest="until", metavar="WHEN", help="end of the window (exclusive)")

    filters = argparse.ArgumentParser(add_help=False, parents=[window])
    filters.add_argument("--identity", metavar="SUBJECT", help="only this subject")
    filters.add_argument("--group", help="only subjects in this group")
    filters.add_argument("--target", help="only this target")
    filters.add_argument(
        "--decision",
        metavar="|".join(DECISIONS),
        help="only rows about commands so decided (per kind: docs/EXPORTS.md)",
    )
    filters.add_argument("--format", default="jsonl", metavar="|".join(FORMATS))
    filters.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")

    exp = sub.add_parser(
        "export",
        help="compliance exports as JSON Lines or CSV (schemas in docs/EXPORTS.md)",
        description="Stream the event log as rows. Every row names the stored event(s) it "
        "comes from and that event's chain hash, checkable with `wardgate audit verify`.",
    )
    kinds = exp.add_subparsers(dest="export_kind", metavar="KIND", required=True)
    for kind in KINDS:
        p = kinds.add_parser(kind, parents=[filters], help=KIND_HELP[kind])
        p.set_defaults(func=cmd_export, kind=kind)
    cast = kinds.add_parser(
        "asciicast",
        help="one session as an asciicast v2 recording (asciinema plays it; MySQL sessions "
        "as a transcript of statements and result tables)",
    )
    cast.add_argument("session", metavar="SESSION", help="session id or a unique prefix")
    cast.add_argument("-o", "--output", metavar="FILE", required=True)
    cast.set_defaults(func=cmd_export_asciicast)

    sessions = sub.add_parser("sessions", help="list sessions or show one")
    ssub = sessions.add_subparsers(dest="sessions_command", metavar="ACTION", required=True)
    ls = ssub.add_parser("list", help="recent sessions, newest first")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.add_argument("--live", action="store_true", help="only sessions still open")
    ls.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (default 50)")
    ls.set_defaults(func=cmd_sessions_list)
    show = ssub.add_parser("show", help="one session: identity, times, commands, approvers")
    show.add_argument("id", metavar="ID", help="session id or a unique prefix of it")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_sessions_show)
    end = ssub.add_parser("end", help="end a live session (the gateway serving it closes it)")
    end.add_argument("id", metavar="ID", help="session id or a unique prefix of it")
    end.add_argument("--reason", required=True, help="shown to the agent and recorded")
    end.add_argument("--token", help="the operator's token (default: $WARDGATE_TOKEN)")
    end.set_defaults(func=cmd_sessions_end)

    report = sub.add_parser(
        "report",
        parents=[window],
        help="per-identity and per-target counts of sessions, commands, denials, approvals",
    )
    report.add_argument("--json", action="store_true", help="machine-readable output")
    report.set_defaults(func=cmd_report)


# ------------------------------------------------------------------------------ helpers


def _time(option: str, text: str | None, now: float) -> float | None:
    if text is None:
        return None
    try:
        return parse_time(text, now=now)
    except ExportError as exc:
        raise UserError(f"bad {option} value: {exc}") from None


def filter_from(args: argparse.Namespace, kind: str) -> ExportFilter:
    now = time.time()
    f = ExportFilter(
        since=_time("--from", args.since, now),
        until=_time("--to", args.until, now),
        identity=getattr(args, "identity", None),
        group=getattr(args, "group", None),
        target=getattr(args, "target", None),
        decision=getattr(args, "decision", None),
    )
    try:
        f.check(kind)
    except ExportError as exc:
        raise UserError(str(exc)) from None
    return f


class ProgressBar:
    """A one-line bar on stderr, only when stderr is a terminal; redrawn at most 10 times/s."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.label, self.started, self.drawn = label, time.monotonic(), 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.drawn < 0.1 and done < total):
            return
        self.drawn = now
        share = done / total if total else 1.0
        bar = "#" * int(share * 30)
        rate = done / max(now - self.started, 1e-6)
        self.stream.write(
            f"\r{self.label} [{bar:<30}] {share:4.0%} {done:,}/{total:,} events {rate:,.0f}/s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.drawn:
            self.stream.write("\n")
            self.stream.flush()


@contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    """stdout, or FILE written as FILE.partial and renamed only when the export succeeded."""
    if path is None or path == "-":
        yield sys.stdout
        return
    final = Path(path)
    partial = final.with_name(final.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            yield out
        os.replace(partial, final)
    except OSError as exc:
        raise UserError(f"cannot write {final}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned to their widest cell; numbers right-aligned."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [bool(rows) and all(_is_number(row[i]) for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(r) for r in cells)])


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _when(at: float | None) -> str:
    return "" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


def _one_line(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _masked(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in counts.items()) or "-"


# ------------------------------------------------------------------------------ commands


def cmd_export(args: argparse.Namespace) -> int:
    kind = args.kind
    if args.format not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, not {args.format!r}")
    f = filter_from(args, kind)
    bar = ProgressBar(f"export {kind}")
    try:
        with opened_store(args) as store, _output(args.output) as out:
            try:
                summary = export(store, kind, out, fmt=args.format, filt=f, progress=bar)
            finally:
                bar.close()
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other Unix tools do; point
        # stdout at /dev/null so that flushing it at exit does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    if args.output and args.output != "-":
        incomplete = f" ({summary.incomplete} incomplete)" if summary.incomplete else ""
        print(
            f"wrote {summary.rows} {kind} rows{incomplete} from {summary.events_read} events "
            f"(up to #{summary.last_id}) to {args.output}",
            file=sys.stderr,
        )
    return 0


def cmd_sessions_list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UserError("--limit must be at least 1")
    view = SessionsView(keep_closed=args.limit)
    with opened_store(args) as store:
        catch_up(store, [view], batch=5000)
    records = view.live() if args.live else view.recent(args.limit)
    records = sorted(records, key=lambda s: s.started_at, reverse=True)[: args.limit]
    if args.json:
        print_json(
            [
                {
                    "session_id": s.id,
                    "subject": s.subject,
                    "groups": s.groups,
                    "target": s.target,
                    "protocol": s.protocol,
                    "node": s.node,
                    "peer": s.peer,
                    "started_at": iso(s.started_at),
                    "ended_at": iso(s.closed_at) if s.closed_at is not None else None,
                    "live": s.live,
                    "close_reason": s.close_reason,
                    "rejected_reason": s.rejected,
                    "commands": s.commands,
                    "denied": s.denied,
                    "held": s.held,
                    "masked": s.masked,
                }
                for s in records
            ]
        )
        return 0
    if not records:
        print("no live sessions" if args.live else "no sessions")
        return 0
    rows = [
        [
            short_id(s.id),
            s.subject or f"({s.rejected or 'not authenticated'})",
            s.target,
            s.protocol,
            s.node,
            _when(s.started_at),
            "live" if s.live else s.close_reason,
            s.commands,
            s.denied,
            s.held,
            s.masked,
        ]
        for s in records
    ]
    headers = ["ID", "IDENTITY", "TARGET", "PROTO", "NODE", "STARTED (UTC)", "STATE"]
    print(format_table([*headers, "CMDS", "DENIED", "HELD", "MASKED"], rows))
    return 0


def cmd_export_asciicast(args: argparse.Namespace) -> int:
    from events.recording import resolve_session  # noqa: PLC0415
    from gateway.commands.replay import export_asciicast  # noqa: PLC0415

    with opened_store(args) as store:
        try:
            session_id = resolve_session(store, args.session)
        except (LookupError, ValueError) as exc:
            raise UserError(str(exc)) from None
        count = export_asciicast(store, session_id, args.output)
    print(f"wrote {args.output}: {count} events", file=sys.stderr)
    return 0


def cmd_sessions_end(args: argparse.Namespace) -> int:
    """Record an operator's request to end a session; its node acts on it within a poll."""
    from gateway.commands.common import settings_from  # noqa: PLC0415
    from gateway.commands.operators import operator_identity, require_group  # noqa: PLC0415

    settings = settings_from(args)
    operator = operator_identity(args, settings)
    require_group(operator, settings, "kill_groups", ["oncall"], "end sessions")
    with opened_store(args) as store:
        try:
            found = find_sessions(store, args.id)
        except ExportError as exc:
            raise UserError(str(exc)) from None
        if len(found) != 1:
            raise UserError(f"session id {args.id!r} matches {len(found)} sessions")
        sid = uuid.UUID(str(found[0]))
        control_id = SessionControl.id_for(sid)
        for _ in range(3):
            control = store.load(SessionControl, control_id) or SessionControl(control_id)
            try:
                event = control.request_termination(
                    session_id=sid, reason=args.reason, actor=operator.subject, at=time.time()
                )
            except DomainError as exc:
                raise UserError(str(exc)) from None
            try:
                store.append([event])
            except ConcurrencyConflict:
                continue
            print(f"asked the gateway to end session {short_id(sid)} ({args.reason})")
            return 0
    raise UserError("could not record the request; try again")


def cmd_sessions_show(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        try:
            found = find_sessions(store, args.id)
        except ExportError as exc:
            raise UserError(str(exc)) from None
        if not found:
            raise UserError(f"no session with id {args.id!r}")
        if len(found) > 1:
            listed = ", ".join(short_id(s) for s in found[:5])
            raise UserError(f"session id {args.id!r} is ambiguous: {listed}; type more of it")
        detail = session_detail(store, found[0])
    if detail is None:
        raise UserError(f"session {found[0]} has no start event")
    if args.json:
        print_json(
            {
                "session": row_dict(detail.session),
                "commands": [row_dict(c) for c in detail.commands],
                "approvals": [row_dict(a) for a in detail.approvals],
                "events": detail.events,
            }
        )
        return 0
    s = detail.session
    who = s.subject or f"not authenticated ({s.rejected_reason or 'no identity'})"
    print(f"session   {s.session_id}  ({s.protocol}, target {s.target}, node {s.node})")
    print(f"identity  {who}  groups: {', '.join(s.groups) or '-'}")
    if s.authenticated:
        print(f"token     issuer {s.issuer}, client user {s.client_user}")
    print(f"peer      {s.peer} via {s.listener}")
    print(f"started   {_when(s.started_at)} UTC")
    if s.ended_at is not None:
        detail_text = f": {s.close_detail}" if s.close_detail else ""
        print(
            f"ended     {_when(s.ended_at)} UTC after {s.duration_s:.1f} s, "
            f"{s.close_reason}{detail_text}"
        )
    else:
        print("ended     - (live, or its end is not recorded)")
    if s.termination_requested_by:
        print(f"ending    requested by {s.termination_requested_by}: {s.termination_reason}")
    print(
        f"commands  {s.commands} ({s.allowed} allowed, {s.denied} denied, "
        f"{s.reviewed} held for approval); {detail.events} events"
    )
    print(f"masked    {_masked(s.masked)}")
    if detail.commands:
        rows = [
            [
                c.seq,
                _when(c.received_at),
                c.decision or "-",
                c.rule or "-",
                ", ".join(c.approvers) or (c.approval_status or "-"),
                "-" if c.ok is None else ("ok" if c.ok else f"error {c.error_code or ''}".strip()),
                c.rows,
                _masked(c.masked),
                _one_line(c.text),
            ]
            for c in detail.commands
        ]
        print()
        headers = ["SEQ", "RECEIVED (UTC)", "DECISION", "RULE", "APPROVERS", "RESULT", "ROWS"]
        print(format_table([*headers, "MASKED", "COMMAND"], rows))
    return 0


def _report_rows(lines: Sequence[ReportLine]) -> list[list[Any]]:
    return [
        [
            line.key,
            line.sessions,
            line.commands,
            line.allowed,
            line.denied,
            line.reviewed,
            line.approvals,
            line.approved,
            line.refused,
            line.median_approve_s,
            line.masked,
        ]
        for line in lines
    ]


def _line_json(line: ReportLine) -> dict[str, Any]:
    return {name: getattr(line, name) for name in ReportLine.__dataclass_fields__}


def render_report(report: Report) -> str:
    since = _when(report.since) or "the beginning"
    until = _when(report.until) or "now"
    counts = [
        "SESSIONS",
        "COMMANDS",
        "ALLOWED",
        "DENIED",
        "HELD",
        "APPROVALS",
        "APPROVED",
        "REFUSED",
        "MEDIAN APPROVE S",
        "MASKED",
    ]
    parts = [
        f"report from {since} to {until} (UTC), events #1..#{report.last_id}",
        "",
        format_table(["IDENTITY", *counts], _report_rows([*report.by_identity, report.total])),
        "",
        format_table(["TARGET", *counts], _report_rows([*report.by_target, report.total])),
    ]
    return "\n".join(parts)


def cmd_report(args: argparse.Namespace) -> int:
    f = filter_from(args, "sessions")
    bar = ProgressBar("report")
    with opened_store(args) as store:
        try:
            report = build_report(store, since=f.since, until=f.until, progress=bar)
        finally:
            bar.close()
    if args.json:
        print_json(
            {
                "from": iso(report.since) if report.since is not None else None,
                "to": iso(report.until) if report.until is not None else None,
                "last_id": report.last_id,
                "by_identity": [_line_json(x) for x in report.by_identity],
                "by_target": [_line_json(x) for x in report.by_target],
                "total": _line_json(report.total),
            }
        )
    else:
        print(render_report(report))
    return 0
