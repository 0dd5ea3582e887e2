"""Making an agent's worktree again (review E, findings 4 and 8), with real git: a plain
folder where the worktree was is moved aside, not a restart loop; a missing worktree is
re-registered alone, and the user's own worktrees stay registered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from gitrepo import git, make_repo
from team_harness import Team, agent_rule

from orchestrator import workspaces
from orchestrator.errors import WorkspaceError
from orchestrator.roster import load_roster


def worktree(tmp_path: Path) -> workspaces.Worktree:
    roster_path = tmp_path / "agents.yaml"
    roster_path.write_text(
        textwrap.dedent(
            """\
            name: t
            agents:
              a: {prompt: p, cwd: repo, workspace: worktree}
            """
        ),
        encoding="utf-8",
    )
    roster = load_roster(roster_path, {})
    tree = workspaces.locate(roster.agents["a"], roster)
    assert tree is not None
    return workspaces.ensure(tree)


def commit_in(tree: workspaces.Worktree, name: str) -> None:
    (tree.path / name).write_text("work\n")
    git(tree.path, "add", name)
    git(tree.path, "commit", "-qm", name)


def test_a_plain_folder_at_the_worktree_path_is_moved_aside(tmp_path: Path) -> None:
    """`workspaces remove` (or rm -rf) while the agent runs, then its next write makes the
    folder again as a plain one: the next start renames it `a.orphan-<time>` (its file
    kept) and makes the worktree again on its branch, committed work intact."""
    repo = make_repo(tmp_path / "repo")
    tree = worktree(tmp_path)
    commit_in(tree, "done.txt")
    subprocess.run(["rm", "-rf", str(tree.path)], check=True)
    tree.path.mkdir()
    (tree.path / "stray.txt").write_text("written after the remove\n")

    again = worktree(tmp_path)
    assert again.exists()
    assert (again.path / "done.txt").read_text() == "work\n"
    assert git(again.path, "symbolic-ref", "--short", "HEAD") == "octy/t/a"
    [orphan] = [p for p in tree.path.parent.iterdir() if p.name.startswith("a.orphan-")]
    assert (orphan / "stray.txt").read_text() == "written after the remove\n"
    assert git(repo, "status", "--porcelain") == ""  # under .octy/, excluded


def test_a_folder_with_its_own_git_repository_is_not_taken_for_the_worktree(
    tmp_path: Path,
) -> None:
    make_repo(tmp_path / "repo")
    tree = worktree(tmp_path)
    subprocess.run(["rm", "-rf", str(tree.path)], check=True)
    tree.path.mkdir()
    git(tree.path, "init", "-q")
    again = worktree(tmp_path)
    assert (again.path / ".git").is_file()
    assert git(again.path, "symbolic-ref", "--short", "HEAD") == "octy/t/a"


def test_remaking_a_worktree_never_prunes_the_users_own(tmp_path: Path) -> None:
    """A user's worktree whose folder is away (an unmounted disk) stays registered when
    the agent's deleted worktree is made again; it works when its folder is back."""
    repo = make_repo(tmp_path / "repo")
    user = tmp_path / "disk" / "feature"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(user))
    tree = worktree(tmp_path)
    (tmp_path / "disk").rename(tmp_path / "unmounted")
    subprocess.run(["rm", "-rf", str(tree.path)], check=True)

    again = worktree(tmp_path)
    assert again.exists()
    (tmp_path / "unmounted").rename(tmp_path / "disk")
    assert git(user, "symbolic-ref", "--short", "HEAD") == "feature"
    assert (repo / ".git" / "worktrees" / "feature").is_dir()


def test_the_agents_branch_checked_out_elsewhere_is_a_clear_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    tree = worktree(tmp_path)
    subprocess.run(["rm", "-rf", str(tree.path)], check=True)
    git(repo, "worktree", "unlock", str(tree.path))
    git(repo, "worktree", "prune")
    git(repo, "checkout", "-q", "octy/t/a")
    with pytest.raises(WorkspaceError, match=r"checked out in .*repo: check out another"):
        worktree(tmp_path)


@pytest.mark.cli
def test_a_running_agent_whose_worktree_became_a_plain_folder_restarts_in_a_new_one(
    team: Callable[..., Team], tmp_path: Path
) -> None:
    """The worktree is removed by hand while the agent runs and made again as a plain
    folder (the agent's next write did that); the agent's next start moves it aside,
    says where in its log, and the agent is ready again in a worktree on its branch
    (it went restarting until `failed` before)."""
    make_repo(tmp_path / "repo")
    t = team(
        [{"agent": agent_rule("a"), "match": "ping", "text": "pong"}],
        {"a": {"cwd": "repo", "workspace": "worktree", "tools": ["Read"]}},
    )
    t.up()
    t.wait_ready("a")
    path = tmp_path / "repo" / ".octy" / "worktrees" / "testteam" / "a"
    subprocess.run(["rm", "-rf", str(path)], check=True)
    path.mkdir()
    (path / "notes.md").write_text("written after the remove\n")
    pid = t.agent_pid("a")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    t.wait_for(lambda: t.log_events("worktree_moved_aside", log="a"), what="moved aside")
    t.wait_for(lambda: t.agent_pid("a") not in (None, pid), what="a new claude for a")
    t.wait_ready("a")
    assert t.ask("a", "ping") == "pong"
    [event] = t.log_events("worktree_moved_aside", log="a")
    orphan = Path(event["moved_to"])
    assert orphan.parent == path.parent
    assert orphan.name.startswith("a.orphan-")
    assert (orphan / "notes.md").read_text() == "written after the remove\n"
    assert (path / ".git").is_file()
    assert git(path, "symbolic-ref", "--short", "HEAD") == "octy/testteam/a"


def folder_for(tmp_path: Path, name: str) -> Path:
    (tmp_path / "agents.yaml").write_text(
        json.dumps(
            {"name": name, "agents": {"a": {"prompt": "p", "cwd": "repo", "workspace": "worktree"}}}
        ),
        encoding="utf-8",
    )
    roster = load_roster(tmp_path / "agents.yaml", {})
    return workspaces.agent_folder(roster.agents["a"], roster)


def test_team_names_that_clean_to_one_slug_never_share_a_worktree(tmp_path: Path) -> None:
    """'my team', 'my-team' and 'my/team' all cleaned to ``my-team`` (no digest: ASCII
    lowercase): the three teams worked in one worktree on one branch. Now a name that
    cleaning changed gets a digest, and a clean name keeps its plain segment."""
    repo = make_repo(tmp_path / "repo")
    folders = {name: folder_for(tmp_path, name) for name in ("my team", "my-team", "my/team")}
    assert len({f.parent for f in folders.values()}) == 3, folders
    assert folders["my-team"].parent.name == "my-team"
    for name, folder in folders.items():
        branch = git(folder, "symbolic-ref", "--short", "HEAD")
        assert git(repo, "config", "--get", f"branch.{branch}.octyTeam") == name


def test_an_earlier_worktree_keeps_its_segment_and_a_clean_name_then_gets_a_digest(
    tmp_path: Path,
) -> None:
    """An earlier version made ``octy/my-team/a`` for the team 'my team' (recorded as
    its): 'my team' keeps it with its work; the team 'my-team', whose plain segment that
    is, gets a digest instead of working in the other team's worktree."""
    repo = make_repo(tmp_path / "repo")
    old = workspaces.Worktree(
        "a",
        repo,
        repo / workspaces.FOLDER / "my-team" / "a",
        "octy/my-team/a",
        None,
        Path(),
        "my team",
    )
    workspaces.ensure(old)
    assert folder_for(tmp_path, "my team") == old.path
    other = folder_for(tmp_path, "my-team")
    assert other != old.path
    assert other.parent.name.startswith("my-team-")
    assert git(repo, "config", "--get", "branch.octy/my-team/a.octyTeam") == "my team"
