"""make reads the variables of MAKEFLAGS (and GNUMAKEFLAGS) as given on its line: a word
``X!=CMD`` runs CMD at once, ``SHELL=PROG`` runs every recipe line with PROG (measured,
GNU make 4.3, with and without a ``--`` before them). ``make X!=CMD`` and ``make
SHELL=PROG`` asked; set through the variable, they did not, under ``Bash(make:*)``. The
real hook; the line is first run for real (bash, no terminal) to show it pushes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from approval_lines import RULE, answer, git, pushable, runs

TOOLS = ["Bash", "Bash(make:*)", "Bash(export:*)"]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_a_command_in_makeflags_pushes_and_asks(tmp_path: Path) -> None:
    (remote, repo), home = pushable(tmp_path), tmp_path / "home"
    home.mkdir()
    line = "MAKEFLAGS='X!=git\\ push\\ -q\\ origin\\ main;touch\\ ran-it' make -f /dev/null"
    assert runs(line, repo)
    assert git(remote, "rev-parse", "main") == git(repo, "rev-parse", "main")  # it pushed
    why = "gives MAKEFLAGS code to load or run"
    assert answer(repo, line, TOOLS, home=home)[0] == [f"matches {RULE}: {why}: cannot be read"]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_a_shell_in_makeflags_runs_the_recipes(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("all:\n\t@echo hi\n")
    (tmp_path / "x.sh").write_text("#!/bin/sh\ntouch ran-it\n")
    (tmp_path / "x.sh").chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    why = f"matches {RULE}: gives {{}} code to load or run: cannot be read"
    for line in (
        "MAKEFLAGS='SHELL=./x.sh' make",
        "MAKEFLAGS='-j2 -- SHELL=./x.sh' make",
        "GNUMAKEFLAGS='MAKESHELL=./x.sh SHELL=./x.sh' make",
        "export MAKEFLAGS='SHELL=./x.sh'; make",
    ):
        assert runs(line, tmp_path), line
        name = line.removeprefix("export ").split("=", 1)[0]
        assert answer(tmp_path, line, TOOLS, home=home)[0] == [why.format(name)], line
    for line in (  # code in a variable's value, as on make's line (`CC='gcc; CMD'`)
        "MAKEFLAGS='CC=gcc;./x.sh' make",
        "MAKEFLAGS='CC=gcc|./x.sh' make",
        "MAKEFLAGS='CC=python3\\ -c\\ 1' make",
    ):
        assert answer(tmp_path, line, TOOLS, home=home)[0] == [why.format("MAKEFLAGS")], line
    # everyday flags and plain variables ask for nothing
    for line in (
        "MAKEFLAGS=-j4 make",
        "MAKEFLAGS='-j4 --no-print-directory' make",
        "MAKEFLAGS='-j2 -- CC=clang CFLAGS=-O2' make",
        "MAKEFLAGS=-s make test",
    ):
        assert answer(tmp_path, line, TOOLS, home=home)[0] == [], line


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_shellflags_naming_a_file_runs_it_and_asks(tmp_path: Path) -> None:
    """``.SHELLFLAGS`` are the words before each recipe line on the shell's line: a file
    there is a script the shell runs (measured, GNU make 4.3)."""
    (remote, repo), home = pushable(tmp_path), tmp_path / "home"
    home.mkdir()
    (repo / "Makefile").write_text("all:\n\t@echo hi\n")
    (repo / "x.sh").write_text("git push -q origin main && touch ran-it\n")
    line = "make .SHELLFLAGS=./x.sh"
    assert runs(line, repo)
    assert git(remote, "rev-parse", "main") == git(repo, "rev-parse", "main")  # it pushed
    why = "gives make a file or command for the recipes' shell to run in the variable"
    for asked in (line, "make '.SHELLFLAGS=-c ./x.sh'"):
        written = asked.replace("'", "")
        assert answer(repo, asked, TOOLS, home=home)[0] == [
            f"matches {RULE}: {why} {written.split(' ', 1)[1]}: cannot be read"
        ], asked
    for line in ("make .SHELLFLAGS=-ec", "make '.SHELLFLAGS=-o pipefail -c' test"):
        assert answer(repo, line, TOOLS, home=home)[0] == [], line
