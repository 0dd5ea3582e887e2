"""Programs that run a command given as words and were judged by their name (`taskset`,
`chrt`, `prlimit`, `nsenter`, `ip netns exec`, `strace`, `ltrace`, `valgrind`, `gdb
--args`, `fakeroot`, `firejail`, `bwrap`, `xvfb-run`, `dbus-run-session`, `ssh-agent`, `sg
-c`, `tmux`, `screen`, `entr`): their command is read as one, so `python3 -c` code there
asks under `Bash(PROG:*)` (`approve: ["Bash(git push:*)"]`), as alone. Where their command
is code the line cannot read (`gdb -ex`, `tmux send-keys`, `at`, `sudo -e`) or an option
they are given is unknown (its value may be the command), they ask. The real hook; each
line whose program is installed is first run for real (bash, no terminal) to show it runs
the code."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from approval_lines import asks_unread
from approval_lines import decide as _decide

PROGRAMS = [
    "taskset",
    "chrt",
    "prlimit",
    "nsenter",
    "ip",
    "strace",
    "ltrace",
    "valgrind",
    "gdb",
    "fakeroot",
    "firejail",
    "bwrap",
    "xvfb-run",
    "dbus-run-session",
    "ssh-agent",
    "sg",
    "tmux",
    "screen",
    "at",
    "batch",
    "entr",
    "sudo",
    "sudoedit",
]
BROAD = ["Bash", *(f"Bash({p}:*)" for p in PROGRAMS)]
ROOT = os.geteuid() == 0
CODE = """python3 -c 'open("ran-it","w")'"""
LINE = r"""'python3 -c "open(\"ran-it\",\"w\")"'"""
PY = "runs code given to python3 -c"


def _installed(program: str, also: bool = True) -> bool | None:
    """Run the line for real (True) when `program` is here, else check the answer only."""
    return True if also and shutil.which(program) else None


# (the line, whether to run it for real (None: the hook's answer only), why it asks)
LINES = [
    (f"taskset -c 0 {CODE}", _installed("taskset"), PY),
    (f"taskset 1 {CODE}", _installed("taskset"), PY),
    (f"chrt -o 0 {CODE}", _installed("chrt"), PY),
    (f"prlimit --nofile=256 {CODE}", _installed("prlimit"), PY),
    (f"nsenter -t 1 -u {CODE}", None, PY),  # needs a namespace one may enter
    (f"ip netns exec ns {CODE}", None, PY),  # needs a named network namespace
    (f"ip -all netns exec {CODE}", None, PY),
    (f"ip net e ns {CODE}", None, PY),  # ip reads its words by prefix
    (f"strace -f -o /dev/null {CODE}", _installed("strace"), PY),
    (f"ltrace -o /dev/null {CODE}", None, PY),
    (f"valgrind --tool=none -q {CODE}", None, PY),  # slow under valgrind: ran by hand
    (f"gdb --args {CODE}", None, PY),
    (f"fakeroot {CODE}", _installed("fakeroot"), PY),
    (f"firejail --noprofile {CODE}", None, PY),
    (f"bwrap --bind / / --dev /dev {CODE}", _installed("bwrap"), PY),
    (f"xvfb-run -a -s '-screen 0 800x600x24' {CODE}", None, PY),
    (f"dbus-run-session -- {CODE}", _installed("dbus-run-session"), PY),
    (f"ssh-agent {CODE}", _installed("ssh-agent"), PY),
    (f"sg root -c {LINE}", _installed("sg", ROOT), PY),
    (f"tmux -L appr5 new-session -d {LINE}", None, PY),  # runs it later, in its server
    (f"screen -dm {CODE}", None, PY),
    (f"ls | entr -s {LINE}", None, PY),
    (
        f"gdb -batch -ex {LINE[0]}shell {LINE[1:]}",
        _installed("gdb"),
        "runs the gdb commands given to gdb -ex",
    ),
    (
        f"tmux send-keys -t w {LINE} Enter",
        None,
        "gives tmux the command send-keys, which may run programs",
    ),
    (
        f"tmux a \\; send-keys {LINE} Enter",
        None,
        "gives tmux the command send-keys, which may run programs",
    ),
    (f"echo {LINE} | at now", None, "runs the commands at reads from its input or a file"),
    (f"echo {LINE} | batch", None, "runs the commands batch reads from its input or a file"),
    ("sudo -e /etc/hosts", None, "runs the editor of sudo -e (VISUAL, EDITOR)"),
    ("sudoedit /etc/hosts", None, "runs the editor of sudoedit (VISUAL, EDITOR)"),
    ("sg root", None, "runs commands the shell of sg reads from its input"),
    (
        f"sudo --new-option x {CODE}",
        None,
        "gives sudo the option --new-option, unknown here (the command may follow it)",
    ),
    (
        f"taskset --bogus 1 {CODE}",
        None,
        "gives taskset the option --bogus, unknown here (the command may follow it)",
    ),
    (
        f"nice -Z x {CODE}",
        None,
        "gives nice the option -Z, unknown here (the command may follow it)",
    ),
    (f"bwrap --new-option x {CODE}", None, "gives bwrap the option --new-option, unknown here"),
]


@pytest.mark.parametrize(("line", "runs", "why"), LINES)
def test_the_command_a_wrapper_runs_is_read_or_asks(
    line: str, runs: bool | None, why: str, tmp_path: Path
) -> None:
    asks_unread(tmp_path, line, runs, why, BROAD)


def test_everyday_uses_ask_for_nothing(tmp_path: Path) -> None:
    for line in (
        "taskset -c 0,1 ls",
        "taskset -p 1",
        "chrt -m",
        "prlimit --nofile=1024 ls",
        "strace -f -e trace=file -o /tmp/t ls",
        "strace -c ls",
        "valgrind --leak-check=full ls",
        "gdb -batch --args ls -l",  # without -batch gdb reads commands from its input
        "gdb -batch ./a.out core",
        "fakeroot -- ls",
        "bwrap --ro-bind / / --unshare-net ls",
        "xvfb-run -a ls",
        "ssh-agent -k",
        "sg root -c ls",
        "tmux ls",
        "tmux new-session -d -s w 'sleep 1'",
        "tmux kill-server",
        "screen -ls",
        "ls | entr -s 'ls'",
        "at -l",
        "ip -br addr",
        "ip netns exec ns ls",
        "nice -10 ls",
        "sudo -u root ls",
        "timeout --preserve-status 5 ls",
        "env -i ls",
        "echo a | xargs -0r ls",
    ):
        assert _decide(tmp_path, line, BROAD) == [], line


def test_a_rule_naming_the_option_exempts_it(tmp_path: Path) -> None:
    """Code on the line, as for `python3 -c`: exempt by a rule naming the word giving it."""
    for line, rule in (
        ("gdb -batch -ex bt ./a.out core", "Bash(gdb -batch -ex:*)"),
        ("sudo --new-option x ls", "Bash(sudo --new-option:*)"),
        ("tmux send-keys -t w q", "Bash(tmux send-keys:*)"),
    ):
        assert _decide(tmp_path, line, [*BROAD, rule]) == [], line
