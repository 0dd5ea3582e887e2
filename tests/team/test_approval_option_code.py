"""Code given in options and variables: `nvim -l FILE`, `emacs --eval`/`-l`, `zip
-TT CMD`, `man -P PROG`, `SHELL=` before what starts a shell (`script`, `sudo -s`, `make
SHELL=`), and a wrapper given no command (`sudo -s`, `chroot DIR`, `fakeroot`: a shell
reading its input). Under broad rules on the program they ask (`approve: ["Bash(git
push:*)"]`) unless a rule names the option; a command given to `zip -TT`/`man -P` is read
as a line. The real hook; lines whose program is installed are first run for real (bash,
no terminal) to show they run the code."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from approval_lines import asks_unread
from approval_lines import decide as _decide

PROGRAMS = ["nvim", "emacs", "emacsclient", "zip", "man", "script", "make", "sudo", "chroot"]
PROGRAMS += ["rvim", "vim.basic"]
BROAD = ["Bash", *(f"Bash({p}:*)" for p in [*PROGRAMS, "fakeroot", "echo"])]
ROOT = os.geteuid() == 0
CODE = """python3 -c 'open("ran-it","w")'"""
LINE = r"""'python3 -c "open(\"ran-it\",\"w\")"'"""
PY = "runs code given to python3 -c"
INPUT = "runs commands the shell of {} reads from its input"


def _here(program: str, also: bool = True) -> bool | None:
    return True if also and shutil.which(program) else None


# (the line, whether to run it for real (None: the hook's answer only), why it asks)
LINES = [
    ("nvim -l x.lua", None, "runs the Lua script x.lua (nvim -l)"),
    ("emacs --batch --eval '(shell-command \"x\")'", None, "runs the Lisp given to emacs --eval"),
    ("emacs --batch -l x.el", None, "runs the Lisp given to emacs -l"),
    ("emacsclient --eval '(x)'", None, "runs the Lisp given to emacsclient --eval"),
    (f"zip -q -T -TT {LINE[:-1]} #' z.zip f", _here("zip"), PY),
    (f"zip -q -T --unzip-command {LINE[:-1]} #' z.zip f", _here("zip"), PY),
    (f"man -P {LINE[:-1]} #' ls", None, PY),  # no manual pages here to page
    (
        "SHELL=/usr/bin/python3 script -q -c 'open' /dev/null",
        None,
        "gives SHELL code to load or run",
    ),
    ("SHELL=/usr/bin/python3 sudo -s", None, "gives SHELL code to load or run"),
    (
        "make -s -f mk SHELL=/usr/bin/python3 .SHELLFLAGS=-c x",
        _here("make"),
        "gives make a shell to run recipes with in the variable SHELL=/usr/bin/python3",
    ),
    (f"echo {LINE} | sudo -s", None, INPUT.format("sudo")),
    (f"echo {LINE} | chroot --skip-chdir /", _here("chroot", ROOT), INPUT.format("chroot")),
    (f"echo {LINE} | fakeroot", _here("fakeroot"), INPUT.format("fakeroot")),
]


@pytest.mark.parametrize(("line", "runs", "why"), LINES)
def test_code_in_an_option_asks_under_a_broad_rule(
    line: str, runs: bool | None, why: str, tmp_path: Path
) -> None:
    (tmp_path / "f").write_text("text\n")
    (tmp_path / "mk").write_text("x:\n\topen('ran-it', 'w')\n")
    asks_unread(tmp_path, line, runs, why, BROAD)


def _man_html() -> bool | None:
    """Whether man can write HTML here (groff's post-grohtml), and has a page to write."""
    return _here("post-grohtml", _here("man") is not None and _man_page())


def _man_page() -> bool:
    found = subprocess.run(["man", "-w", "ls"], capture_output=True, check=False)
    return found.returncode == 0


# man's browser (`-H` takes an attached value only) runs through the shell, the HTML
# file's name appended (measured with groff's HTML device: `man -H'CMD' ls` ran CMD with
# no terminal); vim under other names (`rvim` is restricted: measured, it ran `-c 'call
# writefile(…)'`, not `!`) reads `-c` as vim does. They asked for nothing before.
OTHER_LINES = [
    (f"man -H{LINE[:-1]} #' ls", _man_html(), PY),
    (f"man --html={LINE[:-1]} #' ls", _man_html(), PY),
    (
        "rvim -es -c 'call writefile([], \"ran-it\")' -c qa",
        _here("rvim"),
        "runs the editor commands given to rvim -c",
    ),
    (
        "vim.basic -es -c 'call writefile([], \"ran-it\")' -c qa",
        _here("vim.basic"),
        "runs the editor commands given to vim.basic -c",
    ),
]


@pytest.mark.parametrize(("line", "runs", "why"), OTHER_LINES)
def test_a_man_browser_and_vim_by_other_names_ask(
    line: str, runs: bool | None, why: str, tmp_path: Path
) -> None:
    asks_unread(tmp_path, line, runs, why, BROAD)


def test_a_man_config_file_asks_unless_a_rule_names_it(tmp_path: Path) -> None:
    """`man -C FILE`: its `DEFINE troff CMD` ran on `man -t` (measured), as ~/.manpath's."""
    (tmp_path / "cfg").write_text(f"DEFINE troff touch {tmp_path / 'ran-it'}\n")
    line = "man -C cfg -t ls"
    runs = True if _here("man") and _man_page() else None
    why = "runs the commands the man config cfg may give (man -C)"
    asks_unread(tmp_path, line, runs, why, BROAD)
    assert _decide(tmp_path, line, [*BROAD, "Bash(man -C:*)"]) == []
    assert _decide(tmp_path, "man -C /dev/null ls", BROAD) == []


def test_a_rule_naming_the_option_exempts_it(tmp_path: Path) -> None:
    for line, rule in (
        ("emacs --batch --eval '(x)'", "Bash(emacs --batch --eval:*)"),
        ("nvim -l x.lua", "Bash(nvim -l:*)"),
    ):
        assert _decide(tmp_path, line, [*BROAD, rule]) == [], line


def test_everyday_uses_ask_for_nothing(tmp_path: Path) -> None:
    for line in (
        "nvim README.md",
        "emacs README.md",
        "zip -r out.zip src",
        "zip -T out.zip f",
        "man ls",
        "man -k socket",
        "man -H ls",  # no browser given: `ls` is the page
        "man -s 1 ls",
        "make -j4 test",
        "make CC=clang all",
        "sudo -u root ls",
        "sudo -l",
        "sudo -u sid",  # a user name holding s and i is no -s or -i
        "chroot / ls",
        "script -qc 'ls' /dev/null",
    ):
        assert _decide(tmp_path, line, BROAD) == [], line
