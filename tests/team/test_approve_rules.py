"""`approve:` rules catch a call however it is written: a shell line is read command by
command (wrappers, assignments, `sh -c`, git's global options, compound commands taken
apart), a line that cannot be read asks, Edit rules cover every file-editing tool and Read
rules the tools that read files, as the CLI's rules do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.approve_rules import rule_matches
from orchestrator.bash_commands import UNSURE, commands

PUSH = "Bash(git push:*)"


@pytest.mark.parametrize(
    "line",
    [
        "git push",
        "git -C /repo push origin main",
        "git -c user.name=x --no-pager push",
        "git --git-dir=/r/.git --work-tree /r push",
        "GIT_SSH_COMMAND=x git push",
        "A=1 B=2 git push",
        "git  push",
        "git\tpush",
        "/usr/bin/git push",
        "bash -c 'git push'",
        'sh -lc "cd /r && git push"',
        "eval 'git push'",
        "{ git push; }",
        "(git push)",
        "time git push",
        "time -p git push",
        "env -i PATH=/bin git push",
        "command git push",
        "nice -n 5 git push",
        "sudo -u deploy git push",
        "nohup git push &",
        "timeout 30 git push",
        "echo origin | xargs git push",
        "if true; then git push; fi",
        "while false; do git push; done",
        "true || git push",
        "make && git push",
        "cd /r\ngit push",
        "echo $(git push)",
        'echo "$(git push)"',
        "echo `git push`",
        "diff <(git push) x",
        "git push 2>&1 | tee log",
        "find . -exec git push \\;",
        "git \\\npush",
        "su -c 'git push'",
        "ssh host 'git push'",
        "busybox sh -c 'git push'",
        "coproc git push",
        "$GIT push",  # the program is only known when the shell runs it: ask
        "git push 'origin",  # an open quote: ask
    ],
)
def test_a_push_is_caught_however_it_is_written(line: str, tmp_path: Path) -> None:
    assert rule_matches(PUSH, "Bash", {"command": line}, tmp_path)


@pytest.mark.parametrize(
    "line",
    ["git pushy", "git status", "git log --oneline", "echo push", "gitx push", "ls; pwd"],
)
def test_other_commands_do_not_ask(line: str, tmp_path: Path) -> None:
    assert not rule_matches(PUSH, "Bash", {"command": line}, tmp_path)


def test_commands_are_normalised_or_unsure() -> None:
    assert commands("sudo -u bob nice -n 5 env A=1 /usr/bin/git --no-pager push x") == [
        "git push x"
    ]
    assert commands("make && GIT_DIR=. git  push ; ls") == ["make", "git push", "ls"]
    assert commands("echo 'open") is UNSURE
    assert commands("${TOOL:-git} push") is UNSURE


@pytest.mark.parametrize(
    ("rule", "tool", "tool_input", "expected"),
    [
        ("Bash(npm publish)", "Bash", {"command": "npm publish --tag x"}, True),
        ("Bash(npm publish)", "Bash", {"command": "npm  publish"}, True),
        ("Bash(npm run *)", "Bash", {"command": "CI=1 npm run build"}, True),
        ("Bash(rm -rf *)", "Bash", {"command": "rm -rf /tmp/x"}, True),
        ("Edit(src/**)", "Write", {"file_path": "src/a.py", "content": ""}, True),
        ("Edit(src/**)", "MultiEdit", {"file_path": "src/a.py", "edits": []}, True),
        ("Edit(src/**)", "NotebookEdit", {"notebook_path": "src/n.ipynb"}, True),
        ("Edit(src/**)", "Write", {"file_path": "docs/a.md", "content": ""}, False),
        ("Write(src/**)", "MultiEdit", {"file_path": "src/a.py", "edits": []}, True),
        ("Edit", "Write", {"file_path": "x", "content": ""}, True),
        ("Edit", "Read", {"file_path": "x"}, False),
        ("Read(secrets/**)", "Read", {"file_path": "secrets/k"}, True),
        ("Read(secrets/**)", "Grep", {"pattern": "key", "path": "secrets"}, True),
        ("Read(secrets/**)", "Grep", {"pattern": "key"}, True),  # the whole folder
        ("Read(secrets/**)", "Grep", {"pattern": "key", "path": "src"}, False),
        ("Read(secrets/**)", "Glob", {"pattern": "**/*.pem"}, True),
        ("Read(secrets/**)", "Glob", {"pattern": "*.py", "path": "src"}, False),
        ("Read", "Grep", {"pattern": "x"}, True),
        ("WebFetch(domain:example.com)", "WebFetch", {"url": "https://EXAMPLE.com/a"}, True),
    ],
)
def test_rules_cover_what_the_clis_rules_cover(
    rule: str, tool: str, tool_input: dict[str, Any], expected: bool, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "secrets").mkdir()
    assert rule_matches(rule, tool, tool_input, tmp_path) is expected
