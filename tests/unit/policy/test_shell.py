"""Shell lexer and classifier: table-driven cases and properties on random text."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.policy import classify_shell
from gateway.policy.shell_tokens import ShellOp, ShellSyntaxError, ShellWord, tokenize_shell


def words(text: str) -> list[str]:
    return [t.text if isinstance(t, ShellWord) else f"<{t.op}>" for t in tokenize_shell(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ls -la /tmp", ["ls", "-la", "/tmp"]),
        ("echo 'a b' \"c d\" e\\ f", ["echo", "a b", "c d", "e f"]),
        ("echo 'it'\\''s'", ["echo", "it's"]),
        ('echo "a\\"b\\$c\\\\d\\x"', ["echo", 'a"b$c\\d\\x']),
        ("a|b||c&&d;e&f", ["a", "<|>", "b", "<||>", "c", "<&&>", "d", "<;>", "e", "<&>", "f"]),
        ("a\nb", ["a", "<;>", "b"]),
        ("a \\\n b", ["a", "b"]),
        ("ls > f 2>&1 < in >> log", ["ls", "<>>", "f", "<>&>", "1", "<<>", "in", "<>>>", "log"]),
        ("ls # comment", ["ls"]),
        ("echo a#b", ["echo", "a#b"]),
        ("$'\\x72\\155'", ["rm"]),
        ("(a) {b}", ["<(>", "a", "<)>", "{b}"]),
    ],
)
def test_lexer(text: str, expected: list[str]) -> None:
    assert words(text) == expected


def test_lexer_records_expansions_and_substitutions() -> None:
    tokens = tokenize_shell('echo "$(id -u)" `whoami` $HOME ~/x *.txt $((1+2)) <(ls)')
    found = [t for t in tokens if isinstance(t, ShellWord)]
    assert found[1].substitutions == ("id -u",)
    assert found[2].substitutions == ("whoami",)
    assert found[3].has_expansion and not found[3].substitutions
    assert found[4].has_expansion  # tilde
    assert found[5].has_glob
    assert found[6].has_arithmetic
    assert found[7].substitutions == ("ls",)


def test_heredoc_body_is_attached() -> None:
    tokens = tokenize_shell("cat <<'EOF' > f\nline $(x)\nEOF\nls")
    op = tokens[1]
    assert isinstance(op, ShellOp) and op.heredoc == "line $(x)" and not op.heredoc_expands
    assert [t.text for t in tokens if isinstance(t, ShellWord)] == ["cat", "f", "ls"]


@pytest.mark.parametrize(
    "text", ["echo 'a", 'echo "a', "echo $(a", "echo `a", "cat <<EOF\nx", "echo ${a"]
)
def test_lexer_errors(text: str) -> None:
    with pytest.raises(ShellSyntaxError):
        tokenize_shell(text)


def programs(text: str) -> list[str]:
    return [c.name for c in classify_shell(text).commands]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ls -la", ["ls"]),
        ("/usr/bin/env python3 x.py", ["env", "python3"]),
        ("a | b && c || d; e & f", ["a", "b", "c", "d", "e", "f"]),
        ("FOO=1 BAR=2 make", ["make"]),
        ("sudo -u www-data -- /usr/bin/php artisan", ["sudo", "php"]),
        (
            "nice -n 5 ionice -c3 timeout -s KILL 10s rsync a b",
            ["nice", "ionice", "timeout", "rsync"],
        ),
        ("nice -5 ls", ["nice", "ls"]),
        ("env -i A=1 -u B ls", ["env", "ls"]),
        ("xargs -n 1 -P 4 gzip", ["xargs", "gzip"]),
        ("xargs", ["xargs", "echo"]),
        ("nohup exec command builtin ls", ["nohup", "exec", "command", "builtin", "ls"]),
        ("command -v ls", ["command"]),
        ("chroot /srv ls", ["chroot", "ls"]),
        ("bash -c 'ls | wc -l'", ["bash", "ls", "wc"]),
        ("sh -xc 'id'", ["sh", "id"]),
        ("su -c 'whoami' root", ["su", "whoami"]),
        ("env -S 'ls -l'", ["env", "ls"]),
        ("echo $(date) `hostname`", ["date", "hostname", "echo"]),
        ("diff <(ls a) <(ls b)", ["ls", "ls", "diff"]),
        ("find . -name '*.log' -exec gzip {} +", ["find", "gzip"]),
        ("if test -f x; then cat x; fi", ["cat"]),
        ("for f in a b; do echo $f; done", ["echo"]),
        ("{ ls; pwd; }", ["ls", "pwd"]),
        ("(cd /tmp && ls)", ["cd", "ls"]),
        ("bash <<EOF\nls\nEOF", ["bash", "ls"]),
        ("busybox ls", ["busybox"]),
    ],
)
def test_programs(text: str, expected: list[str]) -> None:
    result = classify_shell(text)
    assert programs(text) == expected
    assert result.understood, result.reasons


def test_program_keeps_path_and_wrappers() -> None:
    cmd = classify_shell("sudo /bin/rm -rf /x").commands[1]
    assert (cmd.program, cmd.name, cmd.args, cmd.wrapped_by) == (
        "/bin/rm",
        "rm",
        ("-rf", "/x"),
        ("sudo",),
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("$X -rf /", "computed"),
        ("${X} a", "computed"),
        ("$(echo rm) -rf /", "computed"),
        ("/bin/r? x", "computed"),
        ("~/bin/x", "computed"),
        ("eval 'ls'", "eval"),
        ("source x.sh", "source"),
        (". x.sh", "."),
        ("echo x | sh", "stdin"),
        ("base64 -d f | bash", "stdin"),
        ("bash -s < x", "stdin"),
        ("cat x | python3", "stdin"),
        ("python3 -c 'print(1)'", "inline"),
        ("perl -e 'print 1'", "inline"),
        ("node -e 1", "inline"),
        ("awk 'BEGIN{system(\"id\")}'", "runs commands"),
        ("awk '{print | \"sh\"}'", "runs commands"),
        ("PATH=/tmp ls", "PATH"),
        ("env LD_PRELOAD=x.so ls", "LD_PRELOAD"),
        ("sudo -i", "shell"),
        ("find . -exec {} \\;", "finds"),
        ("echo $((1 + 2))", "arithmetic"),
        ("echo 'x", "syntax"),
        ("case x in a) ls;; esac", "case"),
        ("", "no program"),
        ("   ", "no program"),
        ("bash -c", "without a command"),
        ("f() { ls; }", "function"),
    ],
)
def test_not_understood(text: str, reason: str) -> None:
    result = classify_shell(text)
    assert not result.understood
    assert reason in " ".join(result.reasons)


def test_flags() -> None:
    r = classify_shell("ls > out.txt 2>/dev/null & echo $(id)")
    assert r.has_redirection_to_file and r.redirect_targets == ("out.txt",)
    assert r.runs_in_background and r.uses_substitution
    assert not classify_shell("ls 2>/dev/null >&2").has_redirection_to_file
    assert classify_shell("(ls)").uses_subshell
    assert classify_shell("echo x | base64 -d | sh").pipes_to_shell
    assert not classify_shell("sh script.sh").pipes_to_shell


def test_deep_nesting_is_not_understood() -> None:
    text = "ls"
    for _ in range(10):
        text = f'echo "$({text})"'
    assert not classify_shell(text).understood


_PIECES = st.sampled_from(
    ["ls", "rm", " ", "'", '"', "\\", "$", "(", ")", "`", "|", "&", ";", "<", ">", "<<", "EOF", "\n",
     "$(", "${", "-c", "bash", "sudo", "#", "*", "~", "=", "x"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(_PIECES, max_size=25).map("".join)))
def test_lexer_raises_only_its_own_error(text: str) -> None:
    with contextlib.suppress(ShellSyntaxError):
        tokenize_shell(text)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(_PIECES, max_size=25).map("".join)))
def test_classifier_never_raises(text: str) -> None:
    result = classify_shell(text)
    assert result.understood == (not result.reasons)
