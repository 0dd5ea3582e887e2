"""Programs whose options run other commands: under an agent's broad allow rule
(`Bash(vim:*)`, `Bash(make:*)`, `Bash(ssh:*)`) the command an option gives is code on the
line, and asks (`approve: ["Bash(git push:*)"]`) unless a rule names that option
(`Bash(vim -c:*)`), as `python3 -c` under `Bash(python3:*)` does. The real hook; each
line that runs its command without a terminal is first run for real to show it does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from approval_lines import RULE, asks_unread, runs
from approval_lines import decide as _decide

BROAD = ["Bash", "Bash(vim:*)", "Bash(ex:*)", "Bash(less:*)", "Bash(make:*)", "Bash(ssh:*)"]
BROAD += ["Bash(gdb:*)"]

# (the line, whether it runs the command with no terminal, why it asks, the exempting rule)
LINES = [
    ("vim -es -c '!touch ran-it' -c 'q!' f", True, "runs the editor commands given to vim -c"),
    ("vim -es +'!touch ran-it' +'q!' f", True, "runs the editor commands given to vim as +CMD"),
    ("vim -c 'terminal touch ran-it' f", None, "runs the editor commands given to vim -c"),
    # short options run together (vim reads them letter by letter): they asked for nothing
    ("vim -esNc '!touch ran-it' -c 'q!' f", True, "runs the editor commands given to vim -esNc"),
    ("vim -es -Nc '!touch ran-it' -c 'q!' f", True, "runs the editor commands given to vim -Nc"),
    # Ex mode and gdb without -batch read their commands from their input (they asked
    # for nothing: `echo '!git push' | vim -es` ran the push under `Bash` alone)
    (
        "echo '!touch ran-it' | vim -es",
        True,
        "runs the editor commands vim reads from its input (Ex mode)",
    ),
    (
        "vim -u NONE -e f <<< '!touch ran-it'",
        True,
        "runs the editor commands vim reads from its input (Ex mode)",
    ),
    (
        "ex -s f <<< '!touch ran-it'",
        True,
        "runs the editor commands ex reads from its input (Ex mode)",
    ),
    (
        r"printf 'shell touch ran-it\n' | gdb -q -nx",
        True,
        "runs the gdb commands gdb reads from its input",
    ),
    (
        r"printf 'shell touch ran-it\n' | gdb -nx --args true",
        True,
        "runs the gdb commands gdb reads from its input",
    ),
    # with no terminal vim reads typed keys from its input: asked where the line gives one
    (
        r"printf ':!touch ran-it\n:qa!\n' | vim f",
        True,
        "runs the keys vim reads from its input (no terminal)",
    ),
    ("less +'!touch ran-it' f", False, "runs the commands given to less as +CMD"),
    ("LESS='+!touch ran-it' less f", False, "gives LESS code to load or run"),
    ("VIMINIT='!touch ran-it' vim -c 'q!' f", True, "gives VIMINIT code to load or run"),
    (
        "MAKEFLAGS='--eval=$(shell touch ran-it)' make -s -f /dev/null",
        True,
        "gives MAKEFLAGS code to load or run",
    ),
    (
        "make -s --eval='$(shell touch ran-it)' -f /dev/null",
        True,
        "runs make code given to make --eval",
    ),
    (
        r"printf 'x:\n\ttouch ran-it\n' | make -s -f - x",
        True,
        "runs a makefile make reads from its input",
    ),
    (
        'ssh -o BatchMode=yes -o ProxyCommand=\'python3 -c "open(\\"ran-it\\", \\"w\\")"\' h',
        True,
        "runs code given to python3 -c",
    ),
    (  # ssh reads options after the host too
        'ssh -o BatchMode=yes h -o ProxyCommand=\'python3 -c "open(\\"ran-it\\", \\"w\\")"\'',
        True,
        "runs code given to python3 -c",
    ),
    ("scp -p -o ProxyCommand='python3 -c 1' a h:b", False, "runs code given to python3 -c"),
    (
        "ssh -p 22 host 'python3 -c \"import os; os.system(1)\"'",
        False,
        "runs code given to python3 -c",
    ),
]


@pytest.mark.parametrize(("line", "runs", "why"), LINES)
def test_a_command_given_to_an_option_asks_under_a_broad_rule(
    line: str, runs: bool | None, why: str, tmp_path: Path
) -> None:
    (tmp_path / "f").write_text("text\n")
    # less without a terminal acts as cat (measured: `+!CMD` ran nothing); it asks anyway.
    # (None: not run here; the terminal vim opens waits for its user.)
    asks_unread(tmp_path, line, runs, why, BROAD)


def test_a_rule_naming_the_option_exempts_it(tmp_path: Path) -> None:
    """As `Bash(python3 -c:*)`: the operator said this very option may run."""
    for line, rule in (
        ("vim -es -c 'set nu' -c 'q!' f", "Bash(vim -es -c:*)"),
        ("make --eval 'x:=1' all", "Bash(make --eval:*)"),
        ("vim +only f", "Bash(vim +only:*)"),  # `+CMD`: a rule naming that very word
    ):
        assert _decide(tmp_path, line, [*BROAD, rule]) == [], line
        assert len(_decide(tmp_path, line, BROAD)) == 1, line
    # A file of editor commands or typed keys is exempt by a rule on the program, as a
    # script file is; with none it asks.
    for line in ("vim -s keys.txt f", "vim -S session.vim"):
        assert _decide(tmp_path, line, BROAD) == [], line
        (asked,) = _decide(tmp_path, line, ["Bash"])
        assert "(vim -s)" in asked or "(vim -S)" in asked, asked


def test_everyday_uses_ask_for_nothing(tmp_path: Path) -> None:
    for line in (
        "vim +12 f",
        "vim +/needle f",
        "vim -u NONE f",
        "vim -Nu NONE f",
        "vim -T xterm -n f",
        "vim --version | head -1",
        "vim f",
        "diff <(ls a) <(ls b); vim f",
        "gdb -batch -nx f",
        "gdb --batch-silent --args ls -l",
        "less +G log.txt",
        "less -R +/error log.txt",
        "make -j4 test",
        "make -C sub all",
        "ssh host uptime",
        "ssh -i key -p 2222 host 'cd /srv && ls'",
        "scp -o ConnectTimeout=5 a host:b",
    ):
        assert _decide(tmp_path, line, BROAD) == [], line


def test_what_was_read_already_still_asks(tmp_path: Path) -> None:
    """find -exec, git -c alias.x=!…, awk system(), sed's e were read before this."""
    for line, why in (
        (r"find . -exec python3 -c 1 \;", "runs code given to python3 -c: cannot be read"),
        ("git -c alias.x='!python3 -c 1' x", "the command is on the line"),
        ("awk 'BEGIN { system(\"x\") }'", "runs commands from the awk program (system or a pipe)"),
        ("sed -n '1e x' f", "runs commands from the sed script (its e command or s///e)"),
    ):
        tools = [*BROAD, "Bash(find:*)", "Bash(git:*)", "Bash(awk:*)", "Bash(sed:*)"]
        (asked,) = _decide(tmp_path, line, tools)
        assert asked.startswith(f"matches {RULE}: {why}"), asked


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("echo '.shell touch ran-it' | sqlite3", "runs the commands sqlite3 reads from its input"),
        (
            "sqlite3 :memory: '.shell touch ran-it'",
            "runs the commands given to sqlite3 on its line",
        ),
        (
            "sqlite3 -cmd '.shell touch ran-it' :memory: 'select 1'",
            "runs the commands given to sqlite3 -cmd",
        ),
        ("echo '!touch ran-it' | ed", "runs the commands ed reads from its input"),
    ],
)
def test_sqlite3_and_ed_commands_ask(line: str, why: str, tmp_path: Path) -> None:
    """sqlite3's dot-commands (`.shell CMD`) and ed's `!CMD` run programs (measured: each
    line ran CMD; they asked for nothing, even under `Bash` alone)."""
    program = "ed" if "ed" in line.split() else "sqlite3"
    tools = ["Bash", "Bash(sqlite3:*)", "Bash(ed:*)"]
    asks_unread(tmp_path, line, True if shutil.which(program) else None, why, tools)
    for quiet in ("sqlite3 db 'select 1'", "sqlite3 -json db 'select 1'", "sqlite3 db", "ed f"):
        assert _decide(tmp_path, quiet, tools) == [], quiet


def test_a_vim_script_in_an_option_cluster_asks(tmp_path: Path) -> None:
    """`vim -NS FILE`, `-Nu FILE` and `-S` with no file (Session.vim) run a file of editor
    commands (measured: each ran its file's writefile(); they asked for nothing); exempt by
    a rule on vim, as `vim -S FILE` is."""
    for name in ("x.vim", "Session.vim"):
        (tmp_path / name).write_text(f"call writefile([], '{tmp_path}/ran-it')\nqa!\n")
    for line, file, option in (
        ("vim -NS x.vim", "x.vim", "-NS"),
        ("vim -Nu x.vim f", "x.vim", "-Nu"),
        ("vim -S", "Session.vim", "-S"),
        ("vim -S -n", "Session.vim", "-S"),
    ):
        if shutil.which("vim"):
            assert runs(line + " >/dev/null 2>&1", tmp_path), line
        why = f"runs the editor commands of the file {file} (vim {option}): cannot be read"
        assert _decide(tmp_path, line, ["Bash"]) == [f"matches {RULE}: {why}"], line
        assert _decide(tmp_path, line, BROAD) == [], line
    assert _decide(tmp_path, "vim -Nu NONE f", ["Bash"]) == []
