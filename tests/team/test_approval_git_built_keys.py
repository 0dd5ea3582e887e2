"""`git -c KEY=VALUE` whose KEY the shell builds (`git -c "$kv" status`, `git -c "$(echo
core.fsmonitor=./x.sh)" status`): the key may be one that runs code, known only at run
time, so the line asks (a literal key is read as before). Each line is first run for real
(bash, no terminal) to show git runs x.sh."""

from __future__ import annotations

from pathlib import Path

import pytest
from approval_lines import RULE, answer, runs
from gitrepo import git_run as _git

TOOLS = ["Bash", "Bash(git status:*)"]

# (the line, the option giving the key)
BUILT = [
    ('git -c "$(echo core.fsmonitor=./x.sh)" status', "-c"),
    ('kv=core.fsmonitor=./x.sh; git -c "$kv" status', "-c"),
    ('k=fsmonitor; git -c "core.$k=./x.sh" status', "-c"),
    ('git -c "$(case a in a) echo core.fsmonitor=./x.sh;; esac)" status', "-c"),
    ('git -c "`echo core.fsmonitor`=./x.sh" status', "-c"),
    ('export V=./x.sh; k=fsmonitor; git --config-env "core.$k=V" status', "--config-env"),
]


@pytest.mark.parametrize(("line", "option"), BUILT)
def test_a_config_key_the_shell_builds_asks(line: str, option: str, tmp_path: Path) -> None:
    _git("init", "-q", str(tmp_path), cwd=tmp_path)
    (tmp_path / "x.sh").write_text("#!/bin/sh\ntouch ran-it\n")
    (tmp_path / "x.sh").chmod(0o755)
    assert runs(line, tmp_path)
    why = f"gives git a config key known only at run time ({option})"
    assert answer(tmp_path, line, TOOLS)[0] == [f"matches {RULE}: {why}: cannot be read"]


def test_built_values_of_literal_keys_ask_nothing(tmp_path: Path) -> None:
    _git("init", "-q", str(tmp_path), cwd=tmp_path)
    for line in (
        'git -c user.name="$NAME" status',
        'git -c "color.ui=$(echo auto)" status',
        "git -c core.quotepath=false status",
    ):
        assert answer(tmp_path, line, TOOLS)[0] == [], line
