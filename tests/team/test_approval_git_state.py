"""State an earlier call left in git (an alias or a program in `.git/config`, an included
file, the user's global config, an installed hook) makes a git command that asks for
nothing run something else: the hook reads git's state where the command runs and asks.
Each case first runs the planted state with the real git, to show that it does run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from approval_lines import answer
from cli_runner import octy
from gitrepo import git_run as _git
from team_harness import Team, agent_rule, release_agent

TeamFactory = Callable[..., Team]
MARK = "touch ran-it"  # what the planted state runs, where git runs it
PUSH = f"{MARK}; git push -q"  # and a push: what the rule asks for


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    _git("init", "-q", str(repo), cwd=tmp_path)
    (repo / "a.txt").write_text("a\n")
    _git("add", "a.txt", cwd=repo)
    _git("commit", "-qm", "first", cwd=repo)
    return repo


def _hook(folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(f"#!/bin/sh\n{MARK}\n")
    (folder / name).chmod(0o755)


def _plant(repo: Path, how: str, home: Path) -> None:
    if how == "alias":
        _git("config", "alias.st", f"!{PUSH}", cwd=repo)
    elif how == "include":  # the alias in a file the repo's config includes
        (repo.parent / "extra.cfg").write_text(f'[alias]\n\tst = "!{PUSH}"\n')
        _git("config", f"includeIf.gitdir:{repo}/.path", str(repo.parent / "extra.cfg"), cwd=repo)
    elif how == "global":  # in the global config of the HOME the agent runs with
        (home / ".gitconfig").write_text(f'[alias]\n\tst = "!{PUSH}"\n')
    elif how == "autocorrect":
        _git("config", "alias.stat", f"!{MARK}", cwd=repo)
        _git("config", "help.autocorrect", "immediate", cwd=repo)
    elif how == "fsmonitor":
        (repo / "fsm.sh").write_text(f"#!/bin/sh\n{MARK}\n")
        (repo / "fsm.sh").chmod(0o755)
        _git("config", "core.fsmonitor", "./fsm.sh", cwd=repo)
    elif how == "fsmonitor line":
        _git("config", "core.fsmonitor", f"sh -c 'gi''t pu''sh; {MARK}'", cwd=repo)
    elif how == "hook":
        _hook(repo / ".git" / "hooks", "post-index-change")
    elif how == "hooksPath":
        _hook(repo.parent / "hooks", "reference-transaction")
        _git("config", "core.hooksPath", str(repo.parent / "hooks"), cwd=repo)


# (what is planted, the line the agent runs, what the approver reads)
PLANTED = [
    ("alias", "git st", "alias.st in git's config ({repo}) makes it run git push -q"),
    ("include", "git st", "alias.st in git's config ({repo}) makes it run git push -q"),
    ("global", "git st", "alias.st in git's config ({repo}) makes it run git push -q"),
    ("autocorrect", "git stta", "help.autocorrect in git's config ({repo}) makes it run git …"),
    ("fsmonitor", "git status", "core.fsmonitor in git's config ({repo}) runs the file ./fsm.sh"),
    ("fsmonitor line", "git status", "core.fsmonitor in git's config ({repo}) makes it run git"),
    ("hook", "git status", "git status may run the hooks post-index-change installed in"),
    ("hooksPath", "git branch x", "git branch may run the hooks reference-transaction installed"),
]


def _decide(tmp_path: Path, home: Path, line: str, tools: list[str]) -> tuple[list[str], Any]:
    return answer(tmp_path / "repo", line, tools, home=home)


@pytest.mark.parametrize(("how", "line", "why"), PLANTED)
def test_git_state_left_by_an_earlier_call_asks(
    how: str, line: str, why: str, tmp_path: Path
) -> None:
    repo = _repo(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    assert _decide(tmp_path, home, line, ["Bash"]) == ([], {})  # nothing planted: no question
    _plant(repo, how, home)
    # It does run what was planted (the real git, with the agent's HOME, no terminal).
    env = {**os.environ, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(line, shell=True, cwd=repo, env=env, capture_output=True, check=False)
    assert (repo / "ran-it").exists()
    # An allow rule for that very command in the agent's tools exempts none of it.
    asked, out = _decide(tmp_path, home, line, ["Bash", f"Bash({line}:*)"])
    assert len(asked) == 1
    assert asked[0].startswith(f"matches Bash(git push:*): {why.format(repo=repo)}"), asked
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"


# An alias that is no `!` line: git splits it at spaces outside quotes and reads its own
# options in it, `-c KEY=VALUE` among them (measured, git 2.39: `alias.d = -c
# "diff.external=sh ./x.sh" diff` ran x.sh on `git d`; `-C DIR` there makes git refuse it).
# (the alias, why the hook asks)
ALIAS_OPTIONS = [
    ('-c "diff.external=sh ./x.sh" diff', "runs the file ./x.sh with sh"),
    ("-c diff.external=./x.sh diff", "runs the file ./x.sh"),
    ("'-c' 'diff.external=sh ./x.sh' diff a.txt", "runs the file ./x.sh with sh"),
]


@pytest.mark.parametrize(("alias", "why"), ALIAS_OPTIONS)
def test_git_options_in_an_alias_are_read_as_git_splits_it(
    alias: str, why: str, tmp_path: Path
) -> None:
    repo = _repo(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    (repo / "x.sh").write_text(f"#!/bin/sh\n{MARK}\n")
    (repo / "x.sh").chmod(0o755)
    (repo / "a.txt").write_text("changed\n")
    _git("config", "alias.d", alias, cwd=repo)
    env = {**os.environ, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "d"], cwd=repo, env=env, capture_output=True, check=False)
    assert (repo / "ran-it").exists()
    asked, _ = _decide(tmp_path, home, "git d", ["Bash", "Bash(git d:*)"])
    assert asked == [
        f"matches Bash(git push:*): alias.d in git's config ({repo}) {why}: cannot be read"
    ]


def test_an_alias_git_cannot_split_runs_nothing_and_asks_nothing(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    _git("config", "alias.d", '-c "diff.external=sh ./x.sh diff', cwd=repo)
    env = {**os.environ, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}
    ran = subprocess.run(["git", "d"], cwd=repo, env=env, capture_output=True, check=False)
    assert b"unclosed quote" in ran.stderr
    assert _decide(tmp_path, home, "git d", ["Bash"]) == ([], {})


EVERYDAY = [
    ("credential.helper", "store"),
    ("core.editor", "vim"),
    ("core.pager", "less -R"),
    ("filter.lfs.clean", "git-lfs clean -- %f"),
    ("filter.lfs.process", "git-lfs filter-process"),
    ("alias.co", "checkout"),
]


def test_everyday_git_config_asks_for_nothing(tmp_path: Path) -> None:
    """Config that names programs, but not the rule's, is read as `-c key=value` would be."""
    repo = _repo(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    for key, value in EVERYDAY:
        _git("config", key, value, cwd=repo)
    for line in ("git status", "git log -3", "git diff", "git co -b x", "git show HEAD"):
        assert _decide(tmp_path, home, line, ["Bash"]) == ([], {}), line
    # A hook framework's pre-commit hook: status, diff and log run none of it.
    (repo / ".git" / "hooks" / "pre-commit.sample").write_text("#!/bin/sh\n")
    _hook(repo / ".git" / "hooks", "pre-commit")
    for line in ("git status", "git add a.txt", "git log -3", "git diff"):
        assert _decide(tmp_path, home, line, ["Bash"]) == ([], {}), line
    asked, _ = _decide(tmp_path, home, "git commit -qm x", ["Bash"])
    assert asked == [
        "matches Bash(git push:*): git commit may run the hooks pre-commit installed in "
        f"{repo}/.git/hooks: cannot be read"
    ]


def test_a_config_that_cannot_be_read_asks(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    with (repo / ".git" / "config").open("a") as config:
        config.write("[broken\n")
    asked, _ = _decide(tmp_path, home, "git status", ["Bash"])
    assert len(asked) == 1
    assert asked[0].startswith("matches Bash(git push:*): git config failed: "), asked


@pytest.mark.cli
def test_an_alias_planted_by_one_call_asks_in_the_next(team: TeamFactory, tmp_path: Path) -> None:
    """The real CLI: the model writes `alias.st = push …` into `.git/config` with a shell
    line that asks for nothing, then runs `git st`: that asks, and denied, nothing lands."""
    remote = tmp_path / "remote.git"
    _git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    repo = tmp_path / "repo"  # its git folder beside it (the CLI itself guards `.git/`)
    _git("init", "-q", f"--separate-git-dir={tmp_path / 'meta'}", str(repo), cwd=tmp_path)
    _git("commit", "-q", "--allow-empty", "-m", "first", cwd=repo)
    _git("remote", "add", "origin", str(remote), cwd=repo)
    plant = (
        r"printf '[alias]\n\tst = push -q origin HEAD:refs/heads/planted\n' >> ../meta/config"
        " && echo PLANTED"
    )
    rules: list[dict[str, Any]] = [
        {"agent": agent_rule("rel"), "tool_result": r"(PLANTED|PUSHED)", "text": "done {1}"},
        {"agent": agent_rule("rel"), "tool_result": r"(?s)^(.+)$", "text": "REFUSED {1}"},
        {
            "agent": agent_rule("rel"),
            "match": r"plant\b",
            "tool_use": {"name": "Bash", "input": {"command": plant}},
        },
        {
            "agent": agent_rule("rel"),
            "match": r"status\b",
            "tool_use": {"name": "Bash", "input": {"command": "git st && echo PUSHED"}},
        },
    ]
    t = release_agent(team, rules)
    planted = t.request("rel", "plant")
    with t.mailbox() as mb:
        assert mb.wait_for_reply(planted.id, 90).body == "done PLANTED"  # asked nothing
    asked = t.request("rel", "status")

    def rows() -> list[dict[str, Any]] | None:
        out = octy("approvals", "--json", cwd=t.folder)
        found: list[dict[str, Any]] = json.loads(out.stdout)["approvals"]
        return found or None

    (row,) = t.wait_for(rows, 90, "the approval of git st")
    assert row["why"] == (
        f"matches Bash(git push:*): alias.st in git's config ({repo}) makes it run "
        "git push -q origin HEAD:refs/heads/planted"
    )
    assert octy("deny", row["id"], cwd=tmp_path).returncode == 0
    with t.mailbox() as mb:
        assert mb.wait_for_reply(asked.id, 90).body.startswith("REFUSED")
    assert _git("for-each-ref", cwd=remote) == ""  # nothing was pushed


def test_git_in_too_many_folders_asks(tmp_path: Path) -> None:
    """Each folder costs two git processes: a line naming more than a few asks."""
    _repo(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    few = " && ".join(f"git -C /tmp/f{i} status" for i in range(7))
    assert _decide(tmp_path, home, few, ["Bash"]) == ([], {})
    many = " && ".join(f"git -C /tmp/f{i} status" for i in range(8))
    asked, _ = _decide(tmp_path, home, many, ["Bash"])
    assert asked == [
        "matches Bash(git push:*): git in more than 8 folders on one line in /tmp/f7: "
        "what git runs is unknown: cannot be read"
    ]


def test_the_hooks_git_is_no_program_planted_where_it_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook runs git in a folder the agent names (``cd X && git status``), outside
    every sandbox. With an empty PATH entry (``PATH=/usr/bin:``, a common slip) a ``git``
    the agent's shell put in X ran instead of git, as the supervisor (measured: before
    this it ran and saw the supervisor's secrets)."""
    _repo(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    planted = tmp_path / "elsewhere"
    planted.mkdir()
    ran = tmp_path / "planted-git-ran"
    (planted / "git").write_text(f"#!/bin/sh\nenv > {ran}\n")
    (planted / "git").chmod(0o755)
    monkeypatch.setenv("PATH", ":" + os.environ["PATH"])
    asked, _ = _decide(tmp_path, home, f"cd {planted} && git status", ["Bash"])
    assert not ran.exists()
    assert asked == []  # not a repository there: git's real answer, nothing to ask
    asked, _ = _decide(tmp_path, home, "git push", ["Bash"])  # the hook still asks
    assert len(asked) == 1
    assert asked[0].startswith("matches Bash(git push:*)"), asked


def test_the_hooks_git_runs_without_the_gateway_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The git the hook runs gets the environment the agent's commands get: the secrets
    its CLI keeps from them (a gateway's token) were in it, and so in anything git runs."""
    _repo(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "git-env"
    real = shutil.which("git")
    (bin_dir / "git").write_text(f'#!/bin/sh\nenv >> {seen}\nexec {real} "$@"\n')
    (bin_dir / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("ACME_GATEWAY_TOKEN", "gw-s3cr3t-value-123456")
    asked, _ = _decide(tmp_path, home, "git status", ["Bash"])
    assert asked == []
    text = seen.read_text()
    assert f"HOME={home}" in text  # it is the hook's git, with the agent's env
    assert "gw-s3cr3t-value-123456" not in text


# git's ext:: transport runs its URL's command (measured, git 2.39, each ran x.sh unasked
# under Bash(git:*)): given on the line, by --config-env from a variable, or by the
# repository's config. (the setup `git config` pairs, the line, why the hook asks)
EXT = "gives git an ext:: URL, whose command git runs"
EXT_LINES = [
    ([], "git -c protocol.ext.allow=always ls-remote 'ext::sh ./x.sh'", EXT),
    ([], "git -c protocol.allow=always ls-remote 'ext::sh ./x.sh'", EXT),
    (
        [],
        "XX='sh ./x.sh' git --config-env=diff.external=XX diff",
        "gives git diff.external from the variable XX (--config-env)",
    ),
    (
        [],
        "XX='sh ./x.sh' git --config-env diff.external=XX diff",
        "gives git diff.external from the variable XX (--config-env)",
    ),
    (
        [("remote.o.url", "ext::sh ./x.sh"), ("protocol.ext.allow", "always")],
        "git fetch o",
        "remote.o.url in git's config ({repo}) " + EXT,
    ),
]


@pytest.mark.parametrize(("config", "line", "why"), EXT_LINES)
def test_an_ext_url_or_a_config_env_program_asks(
    config: list[tuple[str, str]], line: str, why: str, tmp_path: Path
) -> None:
    repo = _repo(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    (repo / "x.sh").write_text(f"{MARK}\n")
    (repo / "a.txt").write_text("changed\n")
    for key, value in config:
        _git("config", key, value, cwd=repo)
    env = {**os.environ, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(line, shell=True, cwd=repo, env=env, capture_output=True, check=False)
    assert (repo / "ran-it").exists()
    (asked,), _ = _decide(tmp_path, home, line, ["Bash", "Bash(git:*)"])
    assert asked == f"matches Bash(git push:*): {why.format(repo=repo)}: cannot be read"


def test_everyday_protocol_settings_ask_nothing(tmp_path: Path) -> None:
    _repo(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    for line in (
        "git -c protocol.version=2 -c protocol.file.allow=always status",
        "git -c protocol.ext.allow=never status",
        "git commit -qm 'use ext:: here' --allow-empty",
        "GIT_PAGER=cat git --config-env=user.name=USER log -1",
    ):
        assert _decide(tmp_path, home, line, ["Bash", "Bash(git:*)"]) == ([], {}), line
