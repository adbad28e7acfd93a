"""Policy: the pure decision engine, the SQL and shell classifiers, policy files.

Nothing here does I/O or imports trio: callers classify a command, build a
:class:`CommandRequest` and call :func:`decide`.
"""

from gateway.policy.diff import FieldChange, PolicyDiff, RuleChange, diff_policies
from gateway.policy.engine import DEFAULT_RULE, UNKNOWN_RULE, CommandRequest, Decision, decide
from gateway.policy.loader import load_policy
from gateway.policy.model import (
    Action,
    Policy,
    PolicyError,
    Protocol,
    Review,
    Rule,
    SessionKind,
    parse_duration,
)
from gateway.policy.shell import ShellClassification, ShellCommand, classify_shell
from gateway.policy.sql import classify_sql, normalize_sql
from gateway.policy.sql_model import (
    Facet,
    SqlClassification,
    SqlStatement,
    StatementKind,
    TableRef,
)
from gateway.policy.sql_tokens import SqlMode, SqlTokenError

__all__ = [
    "DEFAULT_RULE",
    "UNKNOWN_RULE",
    "Action",
    "CommandRequest",
    "Decision",
    "Facet",
    "FieldChange",
    "Policy",
    "PolicyDiff",
    "PolicyError",
    "Protocol",
    "Review",
    "Rule",
    "RuleChange",
    "SessionKind",
    "ShellClassification",
    "ShellCommand",
    "SqlClassification",
    "SqlMode",
    "SqlStatement",
    "SqlTokenError",
    "StatementKind",
    "TableRef",
    "classify_shell",
    "classify_sql",
    "decide",
    "diff_policies",
    "load_policy",
    "normalize_sql",
    "parse_duration",
]
