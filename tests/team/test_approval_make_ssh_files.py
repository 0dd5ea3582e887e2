"""Code given to make or ssh through a variable or a file: `make VAR=VALUE` whose value
holds code (`$(shell …)`, `X!=CMD`, shell code a recipe runs) and `ssh -F FILE` (its
ProxyCommand) ask under `Bash(make:*)`/`Bash(ssh:*)` (`approve: ["Bash(git push:*)"]`)
unless a rule names them; everyday `make CC=clang` does not. The real hook; each line is
first run for real (bash, no terminal) to show it runs its command."""

from __future__ import annotations

from pathlib import Path

import pytest
from approval_lines import RULE
from approval_lines import decide as _decide
from approval_lines import runs as _runs

BROAD = ["Bash", "Bash(make:*)", "Bash(ssh:*)", "Bash(scp:*)"]


# A variable given to make holding code: make runs `X!=CMD` at once, `$(shell CMD)` where
# the variable is used, a recipe using `$(CC)` runs its shell code.
MAKE_LINES = [
    ("make -s -f /dev/null 'X!=touch ran-it'", "gives make a command to run in the variable"),
    ("make -s -f mk CC='$(shell touch ran-it)'", "gives make code in the variable"),
    ("make -s -f mk CC='touch ran-it;'", "gives make code in the variable"),
    ("make -s -f mk CC=\"$(printf '%s' '$(shell touch ran-it)')\"", "gives make code"),
]


@pytest.mark.parametrize(("line", "why"), MAKE_LINES)
def test_a_make_variable_holding_code_asks(line: str, why: str, tmp_path: Path) -> None:
    (tmp_path / "mk").write_text("all:\n\t@$(CC) --version >/dev/null 2>&1 || true\n")
    assert _runs(line, tmp_path)
    (asked,) = _decide(tmp_path, line, BROAD)
    assert asked.startswith(f"matches {RULE}: {why}"), asked
    # A rule that is exactly the command (its quotes taken off, as the shell does) exempts it.
    exact = line.replace("'", "") if "printf" not in line else None
    if exact is not None:
        assert _decide(tmp_path, line, [*BROAD, f"Bash({exact})"]) == [], exact


def test_an_ssh_config_file_asks_unless_a_rule_names_it(tmp_path: Path) -> None:
    """`-F FILE`: its ProxyCommand, LocalCommand or `Match exec` run here."""
    (tmp_path / "cfg").write_text(f"ProxyCommand touch {tmp_path / 'ran-it'}\n")
    for line in ("ssh -F cfg -o BatchMode=yes h", "scp -F cfg -o BatchMode=yes a h:b"):
        assert _runs(line, tmp_path), line
        program = line.split(" ")[0]
        why = f"runs the commands the ssh config cfg may give ({program} -F)"
        assert _decide(tmp_path, line, BROAD) == [f"matches {RULE}: {why}: cannot be read"]
        assert _decide(tmp_path, line, [*BROAD, f"Bash({program} -F:*)"]) == [], line
    assert _decide(tmp_path, "GIT_SSH_COMMAND='ssh -F cfg' git fetch", BROAD)


def test_everyday_uses_ask_for_nothing(tmp_path: Path) -> None:
    for line in (
        "make -j4 test",
        "make CC=clang",
        "make CFLAGS='-O2 -g' all",
        "make PREFIX=/usr/local install",
        "make DESTDIR=./out V=1 install",
        "ssh -F /dev/null host uptime",
        "ssh -F none host uptime",
    ):
        assert _decide(tmp_path, line, BROAD) == [], line


# A program given inline code behind a wrapper, in a make variable's value: the value was
# read as one command, so the wrapper hid the code (measured: the recipe `$(CC) x.c` ran
# the perl below, under Bash(make:*), unasked). The value is now read as a command line.
WRAPPED_LINES = [
    "make -s -f mk CC='env perl -e \"mkdir q{ran-it}\"'",
    "make -s -f mk CC='nice -n 5 perl -e \"mkdir q{ran-it}\"'",
    'make -s -f mk CC=\'sh -c "perl -e \\"mkdir q{ran-it}\\""\'',
]


@pytest.mark.parametrize("line", WRAPPED_LINES)
def test_inline_code_behind_a_wrapper_in_a_make_variable_asks(line: str, tmp_path: Path) -> None:
    (tmp_path / "mk").write_text("all:\n\t@$(CC) x.c\n")
    assert _runs(line, tmp_path)
    (asked,) = _decide(tmp_path, line, BROAD)
    assert asked.startswith(f"matches {RULE}: gives make code in the variable CC="), asked
