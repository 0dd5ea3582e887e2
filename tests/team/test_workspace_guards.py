"""`workspaces merge/diff/remove` against what a worktree agent's shell can do to the
shared repository (review E): write files over others' work through a merge, plant
replace refs, grafts or attributes, flip its branch between check and merge, commit on a
detached HEAD, or have its worktree removed under it. Real git in tmp_path."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_runner import CLI, octy
from gitrepo import git, make_repo
from team_harness import Team

from orchestrator import errors, gitcmd, workspace_ops, workspaces
from orchestrator.roster import Roster, load_roster

TeamFactory = Callable[..., Team]


def team_repo(tmp_path: Path, agents: tuple[str, ...] = ("a", "b")) -> tuple[Path, Roster]:
    """A repository with one commit and a roster (outside it) whose agents work in
    worktrees, made as the supervisor makes them."""
    repo = make_repo(tmp_path / "repo")
    lines = [f"  {a}: {{prompt: p, cwd: repo, workspace: worktree}}" for a in agents]
    (tmp_path / "agents.yaml").write_text("name: t\nagents:\n" + "\n".join(lines) + "\n")
    roster = load_roster(tmp_path / "agents.yaml", {})
    for agent in agents:
        workspaces.agent_folder(roster.agents[agent], roster)
    return repo, roster


def commit(folder: Path, files: dict[str, str], *, force: bool = False) -> str:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    git(folder, "add", *(["-f"] if force else []), *files)
    git(folder, "commit", "-qm", f"edit {', '.join(files)}")
    return git(folder, "rev-parse", "HEAD")


def worktree(repo: Path, agent: str) -> Path:
    return repo / ".octy" / "worktrees" / "t" / agent


# --- finding 1: a merge writes over files the checkout does not track ------------------


def test_merge_never_writes_over_another_agents_worktree_or_ignored_files(
    tmp_path: Path,
) -> None:
    """Regression: a's branch tracked .octy/worktrees/t/b/design.md (git add -f) and .env;
    `workspaces merge a` wrote them over b's uncommitted file in b's live worktree and
    over the operator's ignored .env, exit 0. Now .octy/ is held back like team files,
    and even with --allow-team-files the merge is refused, naming both, nothing changed."""
    repo, _ = team_repo(tmp_path)
    (worktree(repo, "b") / "design.md").write_text("b's uncommitted work\n")
    (repo / ".env").write_text("SECRET=operator\n")
    with (repo / ".git" / "info" / "exclude").open("a") as f:
        f.write(".env\n")
    a = worktree(repo, "a")
    commit(
        a, {".octy/worktrees/t/b/design.md": "clobbered\n", ".env": "SECRET=agent\n"}, force=True
    )
    before = git(repo, "rev-parse", "main")

    held = octy("workspaces", "merge", "a", "--json", cwd=tmp_path)
    assert held.returncode == 1, held.stdout + held.stderr
    assert json.loads(held.stdout)["error"] == "team_files_in_merge"
    assert json.loads(held.stdout)["paths"] == [".octy/worktrees/t/b/design.md"]

    forced = octy("workspaces", "merge", "a", "--allow-team-files", cwd=tmp_path)
    assert forced.returncode == 1, forced.stdout + forced.stderr
    assert ".env" in forced.stderr
    assert ".octy/worktrees/t/b/design.md" in forced.stderr
    assert "nothing was changed" in forced.stderr
    assert "Traceback" not in forced.stderr
    assert git(repo, "rev-parse", "main") == before
    assert (worktree(repo, "b") / "design.md").read_text() == "b's uncommitted work\n"
    assert (repo / ".env").read_text() == "SECRET=operator\n"


def test_merge_refuses_untracked_files_and_folders_in_the_way(tmp_path: Path) -> None:
    """An untracked (not ignored) file and a file inside an untracked folder of the
    checkout are refused as well (listed, JSON `untracked_in_the_way`); a path nobody
    holds merges as before."""
    repo, roster = team_repo(tmp_path, ("a",))
    (repo / "notes.txt").write_text("mine\n")
    (repo / "build").mkdir()
    (repo / "build" / "keep.o").write_text("object\n")
    a = worktree(repo, "a")
    commit(a, {"notes.txt": "agent\n", "build/out.txt": "x\n", "src/new.py": "y\n"})
    done = octy("workspaces", "merge", "a", "--json", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["error"] == "untracked_in_the_way"
    assert report["paths"] == ["build/out.txt", "notes.txt"]
    assert (repo / "notes.txt").read_text() == "mine\n"
    assert not (repo / "src").exists()
    (repo / "notes.txt").unlink()
    subprocess.run(["rm", "-rf", str(repo / "build")], check=True)
    assert workspace_ops.merge(roster, "a") == git(repo, "rev-parse", "main")
    assert (repo / "src" / "new.py").read_text() == "y\n"


# --- finding 2: replace refs, grafts, attributes -------------------------------------


def test_merge_and_diff_refuse_replace_refs_grafts_and_foreign_attributes(
    tmp_path: Path,
) -> None:
    """Regression: `git replace EVIL GOOD` from the agent's shell made `workspaces diff`,
    the merge and the checkout show GOOD while main really got EVIL (what `git push`
    ships); `* -diff` in info/attributes hid every diff. While any of them is there,
    diff and merge are refused, naming it, nothing changed; and our git never follows a
    replace ref."""
    repo, roster = team_repo(tmp_path, ("a",))
    a = worktree(repo, "a")
    good = commit(a, {"pay.py": "def pay(): return amount\n"})
    git(a, "reset", "-q", "--hard", "HEAD~1")
    evil = commit(a, {"pay.py": "def pay(): send_to_attacker(amount)\n"})
    git(a, "replace", evil, good)
    assert "send_to_attacker" in gitcmd.run(["show", f"{evil}:pay.py"], repo).stdout
    before = git(repo, "rev-parse", "main")
    for verb in ("diff", "merge"):
        done = octy("workspaces", verb, "a", "--json", cwd=tmp_path)
        assert done.returncode == 1, done.stdout + done.stderr
        report = json.loads(done.stdout)
        assert report["error"] == "repository_unsafe"
        assert report["paths"] == [f"refs/replace/{evil}"]
    assert git(repo, "rev-parse", "main") == before
    git(repo, "replace", "-d", evil)

    info = repo / ".git" / "info"
    (info / "grafts").write_text(f"{evil}\n")
    with pytest.raises(errors.UnsafeRepository) as grafted:
        workspace_ops.merge(roster, "a")
    assert grafted.value.paths == [str(info / "grafts")]
    (info / "grafts").unlink()

    (info / "attributes").write_text("* -diff\n")
    with pytest.raises(errors.UnsafeRepository) as attributed:
        workspace_ops.diff(roster, "a")
    assert attributed.value.paths == [str(info / "attributes")]
    (info / "attributes").write_text("# comments only\n\n")
    assert "send_to_attacker" in workspace_ops.diff(roster, "a")
    assert workspace_ops.merge(roster, "a") == evil  # a fast-forward, to the real commit
    assert "send_to_attacker" in (repo / "pay.py").read_text()


# --- finding 3: the branch is read once --------------------------------------------


def test_merge_merges_the_commit_it_checked_even_if_the_branch_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the team-files check read the branch by name, then merge-tree, `git
    merge` and commit-tree read it again: an agent flipping its branch between a harmless
    commit and one that edits agents.yaml got `sandbox: false` merged (4 in 30 tries).
    Here the branch moves right after the check: what was checked is what is merged."""
    repo = make_repo(tmp_path / "repo")
    (repo / "agents.yaml").write_text(
        "name: t\nagents:\n  a:\n    prompt: p\n    workspace: worktree\n    tools: [Read]\n"
    )
    (repo / ".gitignore").write_text(".octy/\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "team")
    roster = load_roster(repo / "agents.yaml", {})
    a = workspaces.agent_folder(roster.agents["a"], roster)
    good = commit(a, {"src.txt": "work\n"})
    git(a, "checkout", "-q", "--detach")
    evil = commit(a, {"agents.yaml": (repo / "agents.yaml").read_text() + "    sandbox: false\n"})
    git(a, "checkout", "-q", "octy/t/a")
    checked = workspace_ops.team_files

    def then_flip(roster: Roster, top: Path, paths: list[str]) -> list[str]:
        found = checked(roster, top, paths)
        git(repo, "update-ref", "refs/heads/octy/t/a", evil)  # the agent's shell, meanwhile
        return found

    monkeypatch.setattr(workspace_ops, "team_files", then_flip)
    assert workspace_ops.merge(roster, "a") == good
    assert "sandbox" not in (repo / "agents.yaml").read_text()
    assert (repo / "src.txt").read_text() == "work\n"


# --- finding 5: commits off the agent's branch ---------------------------------------


def test_commits_on_a_detached_head_are_shown_not_merged_silently_and_not_lost(
    tmp_path: Path,
) -> None:
    """Regression: commits made on a detached HEAD in the worktree showed ahead 0, `merge`
    said "merged" and changed nothing, `remove` deleted the worktree and the commits were
    unreachable. Now `list` says the worktree is off its branch, `merge` refuses saying
    so, `remove` refuses without --force; a branch with nothing new says so, exit 0."""
    repo, _ = team_repo(tmp_path, ("a",))
    before = git(repo, "rev-parse", "main")
    nothing = octy("workspaces", "merge", "a", cwd=tmp_path)
    assert nothing.returncode == 0, nothing.stderr
    assert "nothing to merge" in nothing.stdout
    a = worktree(repo, "a")
    git(a, "checkout", "-q", "--detach")
    work = commit(a, {"work.txt": "a day of work\n"})

    listed = json.loads(octy("workspaces", "--json", cwd=tmp_path, check=True).stdout)
    row = listed["workspaces"][0]
    assert row["off_branch"] == f"a detached HEAD at {work[:12]}"
    assert row["off_branch_commits"] == 1
    table = octy("workspaces", cwd=tmp_path, check=True).stdout
    assert "not on octy/t/a" in table

    merged = octy("workspaces", "merge", "a", "--json", cwd=tmp_path)
    assert merged.returncode == 1, merged.stdout + merged.stderr
    assert json.loads(merged.stdout)["error"] == "worktree_off_branch"
    assert git(repo, "rev-parse", "main") == before

    removed = octy("workspaces", "remove", "a", "--json", cwd=tmp_path)
    assert removed.returncode == 1, removed.stdout + removed.stderr
    assert json.loads(removed.stdout)["error"] == "commits_on_no_branch"
    assert (a / "work.txt").is_file()
    git(a, "branch", "rescued", "HEAD")  # kept on a branch: nothing would be lost
    octy("workspaces", "remove", "a", cwd=tmp_path, check=True)
    assert git(repo, "rev-parse", "rescued") == work


def test_remove_force_drops_a_detached_worktree(tmp_path: Path) -> None:
    repo, _ = team_repo(tmp_path, ("a",))
    a = worktree(repo, "a")
    git(a, "checkout", "-q", "--detach")
    commit(a, {"work.txt": "x\n"})
    octy("workspaces", "remove", "a", "--force", cwd=tmp_path, check=True)
    assert not a.exists()


# --- finding 4: remove under a running agent -----------------------------------------


def test_remove_refuses_while_the_supervisor_runs_the_agent(tmp_path: Path) -> None:
    """Regression: `workspaces remove` while the team ran: the agent's next write made a
    plain folder there and each restart failed ("already exists") until it was failed.
    While the team's supervisor holds its lock and the agent is not stopped, remove is
    refused (stop it first); a stopped agent's worktree is removed."""
    from orchestrator.lockfile import SupervisorLock
    from orchestrator.mailbox import Mailbox

    repo, roster = team_repo(tmp_path, ("a",))
    lock = SupervisorLock(roster.database)
    lock.acquire()
    try:
        with Mailbox(roster.database) as mailbox:
            mailbox.register("a", state="ready")
        refused = octy("workspaces", "remove", "a", "--force", cwd=tmp_path)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "octy-orchestrate stop a" in refused.stderr
        assert worktree(repo, "a").is_dir()
        with Mailbox(roster.database) as mailbox:
            mailbox.update_agent("a", state="stopped")
        octy("workspaces", "remove", "a", cwd=tmp_path, check=True)
        assert not worktree(repo, "a").exists()
    finally:
        lock.release()


@pytest.mark.cli
def test_remove_under_a_real_team_waits_for_the_agent_to_stop(
    team: TeamFactory, tmp_path: Path
) -> None:
    """The same with a real supervisor and the real CLI: refused (even with --force) while
    the agent runs; removed once `stop a` took effect; `start a` makes it again."""
    repo = make_repo(tmp_path / "repo")
    t = team([], {"a": {"cwd": "repo", "workspace": "worktree", "tools": ["Read"]}})
    t.up()
    t.wait_ready("a")
    tree = repo / ".octy" / "worktrees" / "testteam" / "a"
    assert tree.is_dir()
    refused = t.octy("workspaces", "remove", "a", "--force", "--json", check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert json.loads(refused.stdout)["error"] == "agent_running"
    assert tree.is_dir()
    t.octy("stop", "a")
    t.wait_for(lambda: t.states().get("a") == "stopped", 60, "a stopped")
    t.octy("workspaces", "remove", "a")
    assert not tree.exists()
    t.octy("start", "a")
    t.wait_ready("a")
    assert (tree / ".git").is_file()


# --- findings 9 and 11, git's version ------------------------------------------------


def test_diff_on_a_terminal_shows_escapes_instead_of_running_them(tmp_path: Path) -> None:
    """Regression: `workspaces diff` wrote the agent's bytes raw: a title change, a clear
    screen. On a terminal they are made visible; a pipe gets git's text unchanged."""
    repo, _ = team_repo(tmp_path, ("a",))
    commit(worktree(repo, "a"), {"notes.txt": "x\x1b]0;PWNED\x07\x1b[2J\tend\n"})
    piped = octy("workspaces", "diff", "a", cwd=tmp_path, check=True).stdout
    assert "+x\x1b]0;PWNED\x07\x1b[2J\tend" in piped
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(CLI), "workspaces", "diff", "a"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the other end closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    text = shown.decode()
    assert "+x\\x1b]0;PWNED\\x07\\x1b[2J\tend" in text
    assert "\x1b" not in text
    assert "\x07" not in text


@pytest.mark.parametrize("base", ["main~1", "main^", "main@{1}", "refs/heads/main", "HEAD"])
def test_a_base_must_name_a_branch(tmp_path: Path, base: str) -> None:
    """Regression: `base: main~1` passed (refs/heads/main~1^{commit} resolves), the
    worktree was made, and merge failed late: "refusing to update ref with bad name"."""
    repo = make_repo(tmp_path / "repo")
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    assert gitcmd.is_branch(repo, "main")
    assert not gitcmd.is_branch(repo, base)
    (tmp_path / "agents.yaml").write_text(
        f"name: t\nagents:\n  b: {{prompt: p, cwd: repo, workspace: {{type: worktree, "
        f"base: '{base}'}}}}\n"
    )
    with pytest.raises(errors.RosterErrors, match="unknown base"):
        load_roster(tmp_path / "agents.yaml", {})


def test_a_git_older_than_2_38_is_a_clear_error(tmp_path: Path) -> None:
    """merge-tree --write-tree needs git 2.38: an older git is named with what to do, no
    traceback (a git that says it is 2.30 and is otherwise the real one)."""
    team_repo(tmp_path, ("a",))
    real = gitcmd.git_binary()
    bin_dir = tmp_path / "oldgit"
    bin_dir.mkdir()
    fake = bin_dir / "git"
    fake.write_text(
        f'#!/bin/sh\n[ "$1" = --version ] && {{ echo "git version 2.30.9"; exit 0; }}\n'
        f'exec {real} "$@"\n'
    )
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = octy("workspaces", "merge", "a", cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "git 2.30.9" in done.stderr
    assert "2.38 or later" in done.stderr
    assert "Traceback" not in done.stderr
    assert gitcmd.git_binary() == real  # this process's git (2.38+) still passes


def test_a_relative_path_entry_runs_no_git_planted_in_a_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PATH=.:/usr/bin`` (or an empty entry): the supervisor's git was looked up as
    ``./git``, then run in the repository, where an agent's shell can put a ``git`` of
    its own (measured on main: it ran, as the supervisor, outside every sandbox)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    ran = tmp_path / "planted-ran"
    planted = repo / "git"
    planted.write_text(f'#!/bin/sh\ntouch {ran}\necho "git version 2.99.0"\n')
    planted.chmod(0o755)
    monkeypatch.chdir(repo)
    for path in (f".{os.pathsep}{os.environ['PATH']}", f"{os.pathsep}{os.environ['PATH']}"):
        monkeypatch.setenv("PATH", path)
        assert Path(gitcmd.git_binary()).is_absolute()
        gitcmd.run(["init", "-q"], repo)
        assert not ran.exists(), path
        assert (repo / ".git").is_dir()
