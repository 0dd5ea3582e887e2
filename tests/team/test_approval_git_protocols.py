"""`protocol.ext.allow` (or `protocol.allow`) other than `never` in git's config lets git
run the command of an `ext::` URL it finds outside its config: a `.git/remotes/NAME` file
an earlier call wrote (measured, git 2.39: `git fetch o` ran it), `.gitmodules`. It made
every git command ask, `git status` too (an operator's own global config holding it asked
at every call); now it asks only where git may connect to a remote (`fetch`, `pull`,
`push`, `ls-remote`, `submodule`, `clone`…; in a partial clone, any command). And
`GIT_ALLOW_PROTOCOL=ext` on the line, which ran such a URL unasked, asks. The real hook, the
real git."""

from __future__ import annotations

from pathlib import Path

import pytest
from approval_lines import RULE, answer, runs
from gitrepo import git_run as _git

TOOLS = ["Bash", "Bash(git fetch:*)", "Bash(git status:*)"]


def _repo(tmp_path: Path, allow: str) -> Path:
    """A repository whose remote `o` is a `.git/remotes/o` file naming an ext:: URL
    running `x.sh`, and, when ``allow``, the agent's global config allowing ext::."""
    repo = tmp_path / "r"
    _git("init", "-q", str(repo), cwd=tmp_path)
    (repo / "x.sh").write_text(f"#!/bin/sh\ntouch {tmp_path}/ran-it\nexit 1\n")
    (repo / "x.sh").chmod(0o755)
    (repo / ".git" / "remotes").mkdir()
    (repo / ".git" / "remotes" / "o").write_text("URL: ext::sh x.sh\nPull: refs/heads/*:o/*\n")
    if allow:
        (tmp_path / ".gitconfig").write_text(f'[protocol "ext"]\n\tallow = {allow}\n')
    return repo


def _why(tmp_path: Path, sub: str) -> str:
    where = tmp_path / "r"
    return (
        f"matches {RULE}: protocol.ext.allow=always in git's config ({where}) lets git {sub} "
        "run an ext:: URL's command: cannot be read"
    )


@pytest.mark.parametrize(
    "line", ["git fetch o", "git pull o", "git ls-remote o", "git remote update"]
)
def test_a_command_reaching_a_remote_asks_when_ext_is_allowed(line: str, tmp_path: Path) -> None:
    repo = _repo(tmp_path, "always")
    if line == "git fetch o":
        assert runs(f"cd r && {line}", tmp_path)  # HOME the test's folder: its .gitconfig
    sub = line.split(" ")[1]
    assert answer(repo, line, TOOLS, home=tmp_path)[0] == [_why(tmp_path, sub)]


def test_offline_commands_ask_nothing_when_ext_is_allowed(tmp_path: Path) -> None:
    """They asked before (the setting alone asked, whatever the subcommand)."""
    repo = _repo(tmp_path, "always")
    for line in ("git status", "git log -1", "git diff", "git commit -qm x", "git add x.sh"):
        assert answer(repo, line, TOOLS, home=tmp_path)[0] == [], line
    # a partial clone fetches missing objects from its remote at any command
    _git("config", "extensions.partialClone", "o", cwd=repo)
    assert answer(repo, "git log -1", TOOLS, home=tmp_path)[0] == [_why(tmp_path, "log")]


def test_ext_never_allowed_asks_nothing_and_runs_nothing(tmp_path: Path) -> None:
    repo = _repo(tmp_path, "never")
    assert not runs("cd r && git fetch o", tmp_path)
    assert answer(repo, "git fetch o", TOOLS, home=tmp_path)[0] == []


def test_git_allow_protocol_ext_on_the_line_asks(tmp_path: Path) -> None:
    repo = _repo(tmp_path, "")
    line = "GIT_ALLOW_PROTOCOL=ext git fetch o"
    assert runs(f"cd r && {line}", tmp_path)
    why = "gives GIT_ALLOW_PROTOCOL code to load or run"
    assert answer(repo, line, TOOLS, home=tmp_path)[0] == [f"matches {RULE}: {why}: cannot be read"]
    everyday = "GIT_ALLOW_PROTOCOL=https:ssh git fetch o"
    assert answer(repo, everyday, TOOLS, home=tmp_path)[0] == []


# GIT_ALLOW_PROTOCOL given `ext` by the shell, or set by a builtin naming it: each ran the
# ext:: URL of .git/remotes/o, unasked (measured, git 2.39).
BUILT = [
    "p=ext; GIT_ALLOW_PROTOCOL=$p git fetch o",
    "read GIT_ALLOW_PROTOCOL <<< ext; export GIT_ALLOW_PROTOCOL; git fetch o",
    "printf -v GIT_ALLOW_PROTOCOL ext; export GIT_ALLOW_PROTOCOL; git fetch o",
]


@pytest.mark.parametrize("line", BUILT)
def test_git_allow_protocol_built_on_the_line_asks(line: str, tmp_path: Path) -> None:
    repo = _repo(tmp_path, "")
    assert runs(f"cd r && {line}", tmp_path)
    why = "gives GIT_ALLOW_PROTOCOL code to load or run"
    assert answer(repo, line, TOOLS, home=tmp_path)[0] == [f"matches {RULE}: {why}: cannot be read"]


# `git config` writing a key that runs a command, then git on the same line: git's state
# is read before the line runs; each ran x.sh, unasked (measured, git 2.39).
CONFIGURED = [
    ("git config --add protocol.ext.allow always; git fetch o", "protocol.ext.allow=always"),
    ("git config core.fsmonitor ./x.sh; git status", "core.fsmonitor=./x.sh"),
    ("git config --global core.fsmonitor ./x.sh; git status", "core.fsmonitor=./x.sh"),
    (
        "git config core.hooksPath h; mkdir h; cp x.sh h/post-index-change; git add x.sh",
        "core.hooksPath=h",
    ),
]


@pytest.mark.parametrize(("line", "setting"), CONFIGURED)
def test_git_config_writing_a_command_before_git_asks(
    line: str, setting: str, tmp_path: Path
) -> None:
    repo = _repo(tmp_path, "")
    config = (repo / ".git" / "config").read_text()
    assert runs(f"cd r && {line}", tmp_path)
    (repo / ".git" / "config").write_text(config)  # as it was before the line ran
    (tmp_path / ".gitconfig").unlink(missing_ok=True)
    why = f"git reads its config where the line may write ({setting})"
    assert answer(repo, line, [*TOOLS, "Bash(git:*)"], home=tmp_path)[0] == [
        f"matches {RULE}: {why}: cannot be read"
    ]


def test_everyday_git_config_before_git_asks_nothing(tmp_path: Path) -> None:
    repo = _repo(tmp_path, "")
    for line in (
        "git config user.email a@b.c && git commit -qm x",
        "git config --get core.fsmonitor; git status",
        "git config core.autocrlf false && git add -A",
        "git config core.fsmonitor ./x.sh",
    ):
        assert answer(repo, line, [*TOOLS, "Bash(git:*)"], home=tmp_path)[0] == [], line
