"""A worktree agent's sandboxed Bash and the repository's shared git folder (review E,
findings 2 and 6): it commits on its own branch with the usual ``git add -A``, and cannot
move the base or another branch, plant a replace ref or a graft, or change the
repository's attributes. Real git, the real CLI sandbox, the scripted model."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from gitrepo import git, make_repo
from team_harness import Team, agent_rule

from orchestrator import git_exclude

TeamFactory = Callable[..., Team]


def shell_rules(agent: str) -> list[dict[str, object]]:
    """``RUN b64:<command>`` runs it in the agent's Bash; the answer is its output."""
    return [
        {"agent": agent_rule(agent), "tool_result": r"(?s)(.*)", "text": "OUT<<{1}>>"},
        {
            "agent": agent_rule(agent),
            "match": r"RUN b64:([A-Za-z0-9+/=]+)",
            "tool_use": {
                "name": "Bash",
                "input": {"command": 'eval "$(echo {1} | base64 -d)" 2>&1; echo rc=$?'},
            },
        },
    ]


def run(t: Team, agent: str, command: str) -> str:
    return t.ask(agent, "RUN b64:" + base64.b64encode(command.encode()).decode(), timeout=90)


@pytest.mark.cli
def test_worktree_agent_commits_its_branch_but_cannot_touch_shared_refs(
    team: TeamFactory, tmp_path: Path
) -> None:
    """`git commit` moves the agent's own branch; `update-ref` of the base,
    of a branch that is only in packed-refs and of a branch in a folder, `git replace`, a
    tag and writes to info/attributes and info/grafts are all refused."""
    repo = make_repo(tmp_path / "repo")
    git(repo, "branch", "packed")
    git(repo, "branch", "feat/x")
    git(repo, "pack-refs", "--all")  # `packed` and `feat/x` have no loose file now
    base = git(repo, "rev-parse", "main")
    t = team(shell_rules("a"), {"a": {"cwd": "repo", "workspace": "worktree", "tools": ["Bash"]}})
    t.up()
    t.wait_ready("a")

    out = run(
        t, "a", "echo work > work.txt && git add work.txt && git commit -qm work && echo DONE"
    )
    assert "DONE" in out, out
    branch = "octy/testteam/a"
    assert git(repo, "show", "--stat", "--format=", branch).split("|")[0].strip() == "work.txt"

    attempts = {
        "main": "git update-ref refs/heads/main HEAD",
        "packed": "git update-ref refs/heads/packed HEAD",
        "feat": "git update-ref refs/heads/feat/x HEAD",
        "replace": "git replace -f HEAD~1 HEAD",
        "tag": "git tag v1",
        "attributes": "echo '* -diff' >> $(git rev-parse --git-common-dir)/info/attributes",
        "grafts": "echo $(git rev-parse HEAD) >> $(git rev-parse --git-common-dir)/info/grafts",
    }
    for name, command in attempts.items():
        out = run(t, "a", f"{command} && echo MOVED-{name}")
        assert f"MOVED-{name}" not in out, out

    for ref in ("main", "packed", "feat/x"):
        assert git(repo, "rev-parse", ref) == base

    # Packed (git gc) and deleted while the team runs: still refused, and the operator's
    # git never sees a broken branch, during the agent's command or after it.
    git(repo, "pack-refs", "--all")
    git(repo, "branch", "-D", "feat/x")
    out = run(
        t,
        "a",
        "git update-ref refs/heads/main HEAD && echo MOVED-main; "
        "git update-ref refs/heads/feat/x HEAD && echo MADE-feat; "
        "echo during; git -C $(git rev-parse --git-common-dir)/.. for-each-ref refs/heads",
    )
    assert "MOVED-main" not in out, out
    assert "MADE-feat" not in out, out
    after = subprocess.run(
        ["git", "for-each-ref", "refs/heads"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert "broken" not in after.stderr + out, after.stderr + out
    assert git(repo, "rev-parse", "main") == base
    assert git(repo, "for-each-ref", "refs/replace", "refs/tags") == ""
    info = repo / ".git" / "info"
    assert not (info / "grafts").exists()
    attributes = info / "attributes"
    assert not attributes.exists() or "-diff" not in attributes.read_text()
    assert git(repo, "status", "--porcelain") == ""  # the operator's checkout is untouched


@pytest.mark.cli
def test_git_add_all_and_stash_work_in_a_sandboxed_worktree(
    team: TeamFactory, tmp_path: Path
) -> None:
    """The CLI's sandbox binds /dev/null placeholders (.bashrc, .mcp.json,
    .claude/settings.json…) in the agent's folder while a command runs; the agent's git
    ignores them (its core.excludesFile), so `git add -A`, `git add .` and `git stash -u`
    work and commit only the agent's files. The user's global ignore rules still apply;
    a placeholder name the repository tracks is not ignored; the repository's
    info/exclude (read by the operator's checkout too) is not touched."""
    repo = make_repo(tmp_path / "repo")
    (repo / ".profile").write_text("tracked\n")
    git(repo, "add", ".profile")
    git(repo, "commit", "-qm", "track .profile")
    t = team(shell_rules("a"), {"a": {"cwd": "repo", "workspace": "worktree", "tools": ["Bash"]}})
    config = Path(t.env.get("XDG_CONFIG_HOME") or Path(t.env["HOME"]) / ".config")
    (config / "git").mkdir(parents=True, exist_ok=True)
    (config / "git" / "ignore").write_text("*.log\n")
    t.up()
    t.wait_ready("a")

    out = run(
        t,
        "a",
        "echo one > one.txt && echo x > debug.log && git add -A && echo two > two.txt && "
        "git add . && echo keep > keep.txt && git stash -u -q && git stash pop -q && "
        "git commit -qm work && git status --porcelain && echo DONE",
    )
    assert out.endswith("keep.txt\nDONE\nrc=0>>"), out  # only keep.txt is left untracked
    changed = git(repo, "show", "--name-only", "--format=", "octy/testteam/a")
    assert changed.split() == ["one.txt", "two.txt"]
    rules = (repo / ".octy" / "excludes" / "testteam" / "a").read_text().splitlines()
    assert "*.log" in rules
    assert "/.bashrc" in rules
    assert "/.claude/settings.json" in rules
    assert "/.profile" not in rules
    assert ".bashrc" not in (repo / ".git" / "info" / "exclude").read_text()


def test_placeholder_patterns_are_anchored_escaped_and_skip_tracked_names(
    tmp_path: Path,
) -> None:
    """In an agent folder below the top ('sub [1]'), the patterns start from the top and
    escape glob characters; a folder with a tracked file (.vscode/) is not excluded."""
    repo = make_repo(tmp_path / "repo")
    (repo / "sub [1]" / ".vscode").mkdir(parents=True)
    (repo / "sub [1]" / ".vscode" / "settings.json").write_text("{}\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "vscode")
    lines = git_exclude.placeholder_lines(repo, Path("sub [1]"))
    assert "/sub\\ \\[1\\]/.bashrc" in lines
    assert "/sub\\ \\[1\\]/.claude/settings.json" in lines
    assert not [line for line in lines if ".vscode" in line]
    assert len(lines) == len(git_exclude.CLI_PLACEHOLDERS) - 1
    (repo / ".git" / "info" / "exclude").write_text("/sub\\ \\[1\\]/.bashrc\n")
    (repo / "sub [1]" / ".bashrc").write_text("x\n")
    (repo / "sub [1]" / ".zshrc").write_text("x\n")
    assert git(repo, "status", "--porcelain") == '?? "sub [1]/.zshrc"'


def test_each_branch_but_the_agents_is_denied_below_its_name(tmp_path: Path) -> None:
    """Loose or packed, nested or not: `<branch>/.octy-deny` (see git_guard), never a path
    under octy/; the shared folders and packed-refs exist before the agent runs."""
    from orchestrator import git_guard

    repo = make_repo(tmp_path / "repo")
    git(repo, "branch", "feat/x")
    git(repo, "branch", "octy/t/b")
    git(repo, "pack-refs", "--all")
    git(repo, "branch", "loose")  # after the packing: a loose file
    (repo / ".git" / "refs" / "replace").mkdir(exist_ok=True)
    git_guard.prepare(repo)
    common = repo / ".git"
    assert (common / "packed-refs").is_file()
    assert all((common / f).is_dir() for f in git_guard.SHARED_FOLDERS)
    heads = common / "refs" / "heads"
    got = [p for p in git_guard.denied(repo, "octy/t/a") if heads in p.parents]
    assert got == [heads / b / ".octy-deny" for b in ("feat/x", "loose", "main")]
