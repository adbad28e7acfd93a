"""Shell classifier: which programs an SSH exec command line would run, and how.

Theory of operation
-------------------
The line is lexed (:mod:`gateway.policy.shell_tokens`) and cut into simple commands at
``; & && || | |& ( )`` and newlines. For each simple command, leading assignments and
redirections are set aside and the first word is the program. Wrappers that run another
program (``sudo``, ``env``, ``nice``, ``timeout``, ``xargs``, ``nohup``, ``exec``, ``command``,
...) are recorded as programs themselves *and* unwrapped, so a policy sees both ``sudo`` and the
program it runs. Everything that also runs is parsed recursively: command substitutions, the
string of ``sh -c``/``bash -c``/``su -c``, ``find -exec``, and here-documents fed to a shell.

A command line is *understood* only when every program is a literal name. It is not understood
when a program comes from a variable, a substitution, a glob or an unknown escape; when code is
handed to an interpreter we cannot read (``eval``, ``python -c``, ``awk`` calling ``system``, a
pipeline or here-document feeding a shell); when environment variables that change what runs
(``PATH``, ``LD_PRELOAD``, ...) are assigned; or when the syntax is incomplete. What is not
understood falls to the policy's ``unknown`` default.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from gateway.policy.shell_tokens import (
    ShellOp,
    ShellSyntaxError,
    ShellToken,
    ShellWord,
    tokenize_shell,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShellCommand:
    """One program that would run: ``name`` is the basename, ``program`` as written."""

    program: str
    name: str
    args: tuple[str, ...] = ()
    wrapped_by: tuple[str, ...] = ()  # the wrappers this program runs under, outermost first


@dataclass(frozen=True, slots=True, kw_only=True)
class ShellClassification:
    text: str
    commands: tuple[ShellCommand, ...]
    understood: bool
    reasons: tuple[str, ...] = ()  # why it is not understood, for the audit trail
    uses_substitution: bool = False
    pipes_to_shell: bool = False
    has_redirection_to_file: bool = False
    runs_in_background: bool = False
    uses_subshell: bool = False
    redirect_targets: tuple[str, ...] = ()


SHELLS = frozenset(
    {"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "rbash", "busybox"}
)
# Interpreters that take code in an argument (flag) or, with no script, from stdin.
_CODE_FLAGS: dict[str, frozenset[str]] = {
    "python": frozenset({"-c"}),
    "perl": frozenset({"-e", "-E"}),
    "ruby": frozenset({"-e"}),
    "node": frozenset({"-e", "-p", "--eval", "--print"}),
    "php": frozenset({"-r"}),
    "lua": frozenset({"-e"}),
    "osascript": frozenset({"-e"}),
}
_AWKS = frozenset({"awk", "gawk", "mawk", "nawk"})
_DANGEROUS_ENV = frozenset(
    {"PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "BASH_ENV", "ENV", "IFS",
     "PROMPT_COMMAND", "SHELLOPTS", "BASHOPTS", "PS4", "PYTHONPATH", "PYTHONSTARTUP",
     "PERL5LIB", "PERL5OPT", "NODE_OPTIONS", "RUBYOPT", "GIT_SSH_COMMAND", "EDITOR", "PAGER"}
)  # fmt: skip
_RESERVED_SKIP = frozenset({"if", "then", "else", "elif", "fi", "do", "done", "while", "until",
                            "!", "{", "}", "time"})  # fmt: skip
_NOT_UNDERSTOOD_WORDS = frozenset({"eval", "case", "esac", "function", "select", "coproc",
                                   "trap", "alias", "source", ".", "hash", "enable"})  # fmt: skip
# Builtins that assign variables for the rest of the line: PATH=... through them counts too.
_DECLARERS = frozenset({"export", "declare", "typeset", "readonly", "local"})
_SEPARATORS = frozenset({";", "&", "&&", "||", "|", "|&", "(", ")", ";;"})
_HARMLESS_TARGETS = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "1", "2", "-"})
_MAX_DEPTH = 6

# Wrapper -> (options that take a value, whether the first operand is the program).
_WRAPPERS: dict[str, frozenset[str]] = {
    "sudo": frozenset({"-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U", "-T", "--user",
                       "--group", "--host", "--prompt", "--chdir", "--role", "--type"}),
    "doas": frozenset({"-u", "-C"}),
    "env": frozenset({"-u", "-C", "--unset", "--chdir"}),
    "nice": frozenset({"-n", "--adjustment"}),
    "ionice": frozenset({"-c", "-n", "-p", "-P", "-u", "--class", "--classdata"}),
    "timeout": frozenset({"-s", "-k", "--signal", "--kill-after"}),
    "xargs": frozenset({"-I", "-n", "-P", "-L", "-d", "-E", "-s", "-a", "--max-args",
                        "--max-procs", "--delimiter", "--arg-file", "--replace"}),
    "nohup": frozenset(),
    "exec": frozenset({"-a"}),
    "command": frozenset(),
    "builtin": frozenset(),
    "stdbuf": frozenset({"-i", "-o", "-e"}),
    "setsid": frozenset(),
    "chroot": frozenset({"--userspec", "--groups"}),
    "flock": frozenset({"-w", "-E", "--timeout", "--conflict-exit-code"}),
    "strace": frozenset({"-e", "-o", "-p", "-s", "-u"}),
    "ltrace": frozenset({"-e", "-o", "-p", "-s", "-u"}),
    "unbuffer": frozenset(),
    "caffeinate": frozenset(),
}  # fmt: skip
# Wrappers whose first operand is not the program: chroot DIR, timeout DURATION, flock FILE.
_WRAPPER_OPERANDS = {"chroot": 1, "timeout": 1, "flock": 1}


def _base(program: str) -> str:
    return posixpath.basename(program) or program


def _interpreter(name: str) -> str:
    """python3.11 -> python, perl5.36 -> perl: a version does not change what runs."""
    stem = name.rstrip("0123456789.")
    return stem if stem in _CODE_FLAGS or stem in SHELLS else name


@dataclass(slots=True)
class _State:
    commands: list[ShellCommand] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    substitution: bool = False
    pipes_to_shell: bool = False
    redirect_file: bool = False
    background: bool = False
    subshell: bool = False
    targets: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)


def _is_assignment(word: ShellWord) -> bool:
    name, eq, _ = word.raw.partition("=")
    return bool(eq) and name.replace("_", "a").isalnum() and not name[0].isdigit()


def _check_word(word: ShellWord, st: _State, depth: int) -> None:
    """Everything a word runs (its substitutions) is part of the command line."""
    if word.has_arithmetic:
        st.fail("arithmetic or nested expansion is not read")
    for inner in word.substitutions:
        st.substitution = True
        _parse(inner, st, depth + 1)


def _parse(text: str, st: _State, depth: int) -> None:
    if depth > _MAX_DEPTH:
        st.fail("nesting too deep")
        return
    try:
        tokens = tokenize_shell(text)
    except ShellSyntaxError as exc:
        st.fail(f"syntax: {exc}")
        return
    simple: list[ShellToken] = []
    piped_in = False
    for tok in [*tokens, ShellOp(op=";")]:
        if isinstance(tok, ShellOp) and tok.op in _SEPARATORS:
            if tok.op == "(" and simple:
                st.fail("defines a function (or is not valid syntax)")
            if simple:
                _simple_command(simple, st, depth, piped_in=piped_in)
            simple = []
            piped_in = tok.op in ("|", "|&")
            if tok.op == "&":
                st.background = True
            elif tok.op == "(":
                st.subshell = True
            elif tok.op == ";;":
                st.fail("case statement")
        else:
            simple.append(tok)


def _simple_command(tokens: list[ShellToken], st: _State, depth: int, *, piped_in: bool) -> None:
    words: list[ShellWord] = []
    stdin_script: str | None = None
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if isinstance(tok, ShellOp):  # a redirection: the next word is its target
            target = tokens[i + 1] if i + 1 < len(tokens) else None
            if tok.heredoc is not None:
                stdin_script = tok.heredoc
                if tok.heredoc_expands and ("$(" in tok.heredoc or "`" in tok.heredoc):
                    _parse_heredoc_substitutions(tok.heredoc, st, depth)
            elif not isinstance(target, ShellWord):
                st.fail(f"redirection {tok.op} without a target")
            else:
                _check_word(target, st, depth)
                if tok.op == "<<<":
                    stdin_script = target.text
                elif ">" in tok.op and target.text not in _HARMLESS_TARGETS:
                    st.redirect_file = True
                    st.targets.append(target.text)
            i += 2
            continue
        words.append(tok)
        i += 1
    for word in words:
        _check_word(word, st, depth)
    while words and words[0].raw in _RESERVED_SKIP:
        words = words[1:]
    while words and _is_assignment(words[0]):
        name = words[0].raw.partition("=")[0]
        if name in _DANGEROUS_ENV:
            st.fail(f"assigns {name}, which changes what runs")
        words = words[1:]
    if not words:
        return
    if words[0].raw in ("for", "[[", "[", "test"):
        return  # loop header or test expression: no program beyond the substitutions checked
    _program(words, st, depth, piped_in=piped_in, stdin_script=stdin_script, wrapped_by=())


def _parse_heredoc_substitutions(body: str, st: _State, depth: int) -> None:
    # An unquoted here-document delimiter makes $(...) and `...` in the body run.
    word = ShellWord(text=body, raw=body)
    try:
        tokens = tokenize_shell('"' + body.replace("\\", "\\\\").replace('"', '\\"') + '"')
        if tokens and isinstance(tokens[0], ShellWord):
            word = tokens[0]
    except ShellSyntaxError:
        st.fail("here-document substitutions are not balanced")
    _check_word(word, st, depth)


def _program(
    words: list[ShellWord],
    st: _State,
    depth: int,
    *,
    piped_in: bool,
    stdin_script: str | None,
    wrapped_by: tuple[str, ...],
) -> None:
    head = words[0]
    if head.has_expansion or head.has_glob or head.substitutions:
        st.fail(f"program name is computed at run time: {head.raw[:60]}")
        return
    program = head.text
    name = _base(program)
    args = tuple(w.text for w in words[1:])
    st.commands.append(ShellCommand(program=program, name=name, args=args, wrapped_by=wrapped_by))
    if name in _NOT_UNDERSTOOD_WORDS:
        st.fail(f"{name} runs text the gateway cannot see")
        return
    kind = _interpreter(name)
    if name in _DECLARERS:
        for w in words[1:]:
            var = w.text.partition("=")[0]
            if var in _DANGEROUS_ENV:
                st.fail(f"{name} {var} changes what runs")
    if name in _WRAPPERS:
        _unwrap(
            name,
            words,
            st,
            depth,
            piped_in=piped_in,
            stdin_script=stdin_script,
            wrapped_by=wrapped_by,
        )
    elif kind in SHELLS:
        _shell(kind, words, st, depth, piped_in=piped_in, stdin_script=stdin_script)
    elif name in ("su", "runuser"):
        for j, w in enumerate(words[1:-1], start=1):
            if w.text in ("-c", "--command"):
                _parse(words[j + 1].text, st, depth + 1)
    elif kind in _CODE_FLAGS:
        flags = _CODE_FLAGS[kind]
        if any(w.text in flags or w.text[:2] in flags for w in words[1:]):
            st.fail(f"{name} runs inline code")
        elif len(words) == 1 or words[1].text == "-" or stdin_script is not None:
            st.fail(f"{name} reads a program from stdin")
            st.pipes_to_shell = st.pipes_to_shell or piped_in or stdin_script is not None
    elif name in _AWKS:
        code = " ".join(w.text for w in words[1:])
        if "system" in code or "|" in code or "getline" in code:
            st.fail(f"{name} program runs commands")
    elif name == "find":
        _find_exec(words, st, depth, wrapped_by)


def _unwrap(
    name: str,
    words: list[ShellWord],
    st: _State,
    depth: int,
    *,
    piped_in: bool,
    stdin_script: str | None,
    wrapped_by: tuple[str, ...],
) -> None:
    takes_value = _WRAPPERS[name]
    operands_before = _WRAPPER_OPERANDS.get(name, 0)
    j = 1
    while j < len(words):
        text = words[j].text
        if text == "--":
            j += 1
            break
        if name == "env" and _is_assignment(words[j]):
            var = words[j].raw.partition("=")[0]
            if var in _DANGEROUS_ENV:
                st.fail(f"assigns {var}, which changes what runs")
            j += 1
            continue
        if name == "env" and (text.startswith("-S") or text.startswith("--split-string")):
            # -S STRING, -SSTRING, --split-string STRING, --split-string=STRING
            attached = text[2:] if text.startswith("-S") else text.partition("=")[2]
            if not attached and j + 1 < len(words):
                attached = words[j + 1].text
            _parse(attached, st, depth + 1)
            return
        if name == "sudo" and text in ("-s", "-i", "--shell", "--login"):
            st.fail("sudo starts a shell")
            return
        if name == "command" and text in ("-v", "-V"):
            return  # only looks the name up
        if not text.startswith("-") or text == "-":
            if name == "nice" and text.lstrip("-").isdigit():
                j += 1
                continue
            break
        j += 2 if text in takes_value else 1
    j += operands_before
    rest = words[j:]
    if not rest:
        if name != "xargs":
            return  # the wrapper alone (env prints the environment, sudo -v, ...)
        rest = [ShellWord(text="echo", raw="echo")]  # xargs runs echo by default
    _program(
        rest,
        st,
        depth,
        piped_in=piped_in,
        stdin_script=stdin_script,
        wrapped_by=(*wrapped_by, name),
    )


def _shell(
    name: str,
    words: list[ShellWord],
    st: _State,
    depth: int,
    *,
    piped_in: bool,
    stdin_script: str | None,
) -> None:
    rest = words[1:]
    if name == "busybox":
        if not rest or _interpreter(_base(rest[0].text)) not in SHELLS:
            return  # busybox <applet>: the applet is an ordinary program
        rest = rest[1:]
    for j, w in enumerate(rest):
        if w.text == "-c" or (
            w.text.startswith("-") and not w.text.startswith("--") and "c" in w.text
        ):
            if j + 1 >= len(rest):
                st.fail(f"{name} -c without a command")
                return
            _parse(rest[j + 1].text, st, depth + 1)
            return
    operands = [w for w in rest if not w.text.startswith("-") or w.text == "-"]
    if not operands or operands[0].text == "-" or any(w.text == "-s" for w in rest):
        if stdin_script is not None and not piped_in:
            _parse(stdin_script, st, depth + 1)
            return
        st.pipes_to_shell = st.pipes_to_shell or piped_in
        st.fail(f"{name} reads commands from stdin")


def _find_exec(words: list[ShellWord], st: _State, depth: int, wrapped_by: tuple[str, ...]) -> None:
    j = 1
    while j < len(words):
        if words[j].text in ("-exec", "-execdir", "-ok", "-okdir"):
            k = j + 1
            while k < len(words) and words[k].text not in (";", "+"):
                k += 1
            inner = words[j + 1 : k]
            if inner and inner[0].text == "{}":
                st.fail("find runs the files it finds")
            elif inner:
                _program(inner, st, depth, piped_in=False, stdin_script=None,
                         wrapped_by=(*wrapped_by, "find"))  # fmt: skip
            j = k
        j += 1


def classify_shell(text: str) -> ShellClassification:
    """Classify an SSH exec command line. Never raises: what cannot be read is not understood."""
    st = _State()
    _parse(text, st, 0)
    if not st.commands and not st.reasons:
        st.fail("no program")
    return ShellClassification(
        text=text,
        commands=tuple(st.commands),
        understood=not st.reasons,
        reasons=tuple(st.reasons),
        uses_substitution=st.substitution,
        pipes_to_shell=st.pipes_to_shell,
        has_redirection_to_file=st.redirect_file,
        runs_in_background=st.background,
        uses_subshell=st.subshell,
        redirect_targets=tuple(st.targets),
    )
