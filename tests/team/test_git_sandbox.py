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


def both_rules() -> list[dict[str, object]]:
    return shell_rules("a") + shell_rules("b")


@pytest.mark.cli
def test_branches_made_later_and_other_agents_branches_are_out_of_reach(
    team: TeamFactory, tmp_path: Path
) -> None:
    """The whole of refs/heads is read-only for a worktree agent, but for its team's
    folder (a link into .git/octy-refs/): a branch the operator makes while the agent
    runs, a new branch, another agent's branch (loose, then packed) cannot be made,
    moved or deleted from its shell, by git or by writing the file; each agent's own
    commits still move its own branch."""
    repo = make_repo(tmp_path / "repo")
    worktree = {"cwd": "repo", "workspace": "worktree", "tools": ["Bash"]}
    t = team(both_rules(), {"a": dict(worktree), "b": dict(worktree)})
    t.up()
    t.wait_ready("a")
    t.wait_ready("b")
    base = git(repo, "rev-parse", "main")
    git(repo, "branch", "later")  # made after the agents started
    git(repo, "branch", "feat/later")
    commit = "echo {0} > {0}.txt && git add {0}.txt && git commit -qm {0} && echo DONE"
    assert "DONE" in run(t, "b", commit.format("b1")), "b commits"
    b_tip = git(repo, "rev-parse", "octy/testteam/b")
    assert b_tip != base

    def attempts() -> dict[str, str]:
        return {
            "later": "git update-ref refs/heads/later HEAD",
            "feat-later": "git update-ref refs/heads/feat/later HEAD",
            "later-del": "git branch -D later",
            "new": "git update-ref refs/heads/brand-new HEAD",
            "new-dir": "git branch fresh/one",
            "b": "git update-ref refs/heads/octy/testteam/b HEAD",
            "b-del": "git branch -D octy/testteam/b",
            "b-rename": "git branch -m octy/testteam/b octy/testteam/bb",
            "b-packed": 'echo "$(git rev-parse HEAD) refs/heads/octy/testteam/b" >> '
            "$(git rev-parse --git-common-dir)/packed-refs",
            "b-file": "git rev-parse HEAD > $(git rev-parse --git-common-dir)"
            "/refs/heads/octy/testteam/b",
            "b-store": "for f in $(git rev-parse --git-common-dir)/octy-refs/*/b; do "
            "git rev-parse HEAD > $f || exit 1; done",
        }

    for round_ in ("loose", "packed"):
        for name, command in attempts().items():
            out = run(t, "a", f"{command} && echo MOVED-{name}")
            assert f"MOVED-{name}" not in out, (round_, out)
        assert git(repo, "rev-parse", "later") == base
        assert git(repo, "rev-parse", "feat/later") == base
        assert git(repo, "rev-parse", "octy/testteam/b") == b_tip
        assert git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/brand-new") == ""
        assert git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/fresh") == ""
        git(repo, "pack-refs", "--all")  # then again with every branch packed

    assert "DONE" in run(t, "a", commit.format("a1")), "a commits"
    assert "DONE" in run(t, "b", commit.format("b2")), "b commits again"
    assert git(repo, "show", "--name-only", "--format=", "octy/testteam/a") == "a1.txt"
    assert git(repo, "show", "--name-only", "--format=", "octy/testteam/b") == "b2.txt"
    assert git(repo, "status", "--porcelain") == ""


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


def test_refs_heads_is_denied_and_the_octy_folder_is_a_link(tmp_path: Path) -> None:
    """prepare makes refs/heads/octy one link into .git/octy-refs/, moving there the team
    folders an earlier version made (loose branches), every branch intact; each team's
    folder holds a .octy-keep. denied names the whole of refs/heads, other teams' folders,
    each team mate's branch (loose, packed, or only in the roster) below its name and the
    team's .octy-keep, never the agent's own branch."""
    from orchestrator import git_guard

    repo = make_repo(tmp_path / "repo")
    for branch in ("feat/x", "octy/t/a", "octy/t/b", "octy/u/a"):
        git(repo, "branch", branch)
    git(repo, "pack-refs", "--all")
    git(repo, "branch", "octy/t/loose")  # after the packing: a loose file
    before = git(repo, "for-each-ref")
    git_guard.prepare(repo, "octy/u/a", "a")  # another team's folder, made first
    git_guard.prepare(repo, "octy/t/a", "a")
    git_guard.prepare(repo, "octy/t/a", "a")  # again: nothing moves
    common = repo / ".git"
    link = common / "refs" / "heads" / "octy"
    assert link.is_symlink()
    assert link.resolve() == common / "octy-refs"
    ours = common / "octy-refs" / "t"
    assert ours.is_dir()
    assert not ours.is_symlink()
    assert (ours / "loose").is_file()  # moved along
    assert (ours / ".octy-keep").is_file()
    assert git(repo, "for-each-ref") == before
    assert (common / "packed-refs").is_file()
    assert all((common / f).is_dir() for f in git_guard.SHARED_FOLDERS)
    got = git_guard.denied(repo, "octy/t/a", ["a", "c"])
    assert common / "refs" / "heads" in got
    assert common / "octy-refs" / "u" in got
    assert [p for p in got if ours in p.parents] == [
        ours / ".octy-keep",
        *(ours / n / ".octy-deny" for n in ("b", "c", "loose")),
    ]
    assert not [p for p in got if p == ours or "/a/" in str(p.relative_to(common))]
    git(repo, "branch", "-D", "octy/t/loose")
    git(repo, "pack-refs", "--all", "--prune")  # empties the folder but for .octy-keep
    assert ours.is_dir()


def test_the_team_links_of_an_earlier_version_move_into_the_store(tmp_path: Path) -> None:
    """An earlier version linked each team's folder refs/heads/octy/<team> to
    .git/octy-refs/<team>.<random>: those folders are renamed <team> behind the one link,
    loose branches and all; a dangling link is dropped."""
    import os

    from orchestrator import git_guard

    repo = make_repo(tmp_path / "repo")
    git(repo, "branch", "octy/t/a")
    git(repo, "branch", "octy/w/a")
    common = repo / ".git"
    octy = common / "refs" / "heads" / "octy"
    (common / "octy-refs").mkdir()
    os.rename(octy / "t", common / "octy-refs" / "t.0123abcd")
    os.symlink("../../../octy-refs/t.0123abcd", octy / "t")
    os.symlink("../../../octy-refs/gone.99", octy / "gone")
    before = git(repo, "for-each-ref")
    git_guard.prepare(repo, "octy/w/a", "a")
    assert octy.is_symlink()
    assert sorted(p.name for p in (common / "octy-refs").iterdir()) == ["t", "w"]
    assert (common / "octy-refs" / "t" / "a").is_file()
    assert git(repo, "for-each-ref") == before


def test_a_reftable_repository_gets_no_worktree(tmp_path: Path) -> None:
    """Its refs are one set of files: no branch can be denied alone. prepare refuses (a
    git that reads reftable: the folder is there), and a git too old to read it gives the
    same reason instead of 'not a git repository'."""
    from orchestrator import git_guard, gitcmd
    from orchestrator.errors import GitError, RosterErrors, WorkspaceError
    from orchestrator.roster import load_roster

    repo = make_repo(tmp_path / "repo")
    (repo / ".git" / "reftable").mkdir()
    with pytest.raises(WorkspaceError, match=r"a: .*reftable format.*git refs migrate"):
        git_guard.prepare(repo, "octy/t/a", "a")
    assert not (repo / ".git" / "refs" / "heads" / "octy").exists()
    version = subprocess.run(
        ["git", "--version"], capture_output=True, text=True, check=True
    ).stdout
    if tuple(int(n) for n in version.split()[2].split(".")[:2]) >= (2, 45):
        return  # this git reads reftable: the folder check above is the one that holds
    old = make_repo(tmp_path / "old")
    git(old, "config", "core.repositoryformatversion", "1")
    git(old, "config", "extensions.refStorage", "reftable")
    (old / "sub").mkdir()
    with pytest.raises(GitError, match=r"reftable format.*'workspace: shared'"):
        gitcmd.toplevel(old / "sub")
    (tmp_path / "agents.yaml").write_text(
        "name: t\nagents:\n  a: {prompt: p, cwd: old/sub, workspace: worktree}\n"
    )
    with pytest.raises(RosterErrors, match=r"agents.a.workspace.*stores its refs in reftable"):
        load_roster(tmp_path / "agents.yaml", {})


@pytest.mark.cli
def test_an_agent_below_the_top_commits_and_still_cannot_touch_shared_refs(
    team: TeamFactory, tmp_path: Path
) -> None:
    """cwd: repo/api. The CLI leaves the worktree's git folders read-only there; the
    agent is given what a commit writes, and no more: its commit moves its branch, while
    the base, a new branch, its worktree's commondir and the repository's config and
    hooks stay out of reach."""
    repo = make_repo(tmp_path / "repo")
    (repo / "api").mkdir()
    (repo / "api" / "app.py").write_text("x = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "api")
    base = git(repo, "rev-parse", "main")
    t = team(
        shell_rules("a"), {"a": {"cwd": "repo/api", "workspace": "worktree", "tools": ["Bash"]}}
    )
    t.up()
    t.wait_ready("a")
    out = run(t, "a", "echo y > new.py && git add -A && git commit -qm work && echo DONE")
    assert "DONE" in out, out
    assert git(repo, "show", "--name-only", "--format=", "octy/testteam/a") == "api/new.py"
    common = "$(git rev-parse --git-common-dir)"
    attempts = {
        "main": "git update-ref refs/heads/main HEAD",
        "new": "git branch fresh",
        "commondir": "echo /tmp > $(git rev-parse --git-dir)/commondir",
        "config": f"echo '[core]' >> {common}/config",
        "hook": f"echo 'echo hi' > {common}/hooks/post-commit",
        "alternates": f"echo /tmp > {common}/objects/info/alternates",
    }
    for name, command in attempts.items():
        out = run(t, "a", f"{command} && echo MOVED-{name}")
        assert f"MOVED-{name}" not in out, out
    assert git(repo, "rev-parse", "main") == base
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/fresh") == ""
    assert not (repo / ".git" / "hooks" / "post-commit").exists()
    alternates = repo / ".git" / "objects" / "info" / "alternates"
    assert not alternates.exists() or alternates.read_text() == ""
    assert git(repo, "status", "--porcelain") == ""


def test_an_agent_added_to_the_roster_changes_its_mates_rules(tmp_path: Path) -> None:
    """Agents start in parallel, so a mate's branch is denied by its roster name before
    it exists; adding agent c to the roster changes a's and b's sandbox rules, so that
    reload restarts them (reload.with_new_rules) with c's branch denied."""
    from orchestrator import workspaces
    from orchestrator.reload import with_new_rules
    from orchestrator.roster import Roster, load_roster
    from orchestrator.roster.diff import diff_rosters
    from orchestrator.sandbox import settings

    def roster_of(*names: str, made: tuple[str, ...] = ("a", "b")) -> Roster:
        (tmp_path / "agents.yaml").write_text(
            "name: t\nagents:\n"
            + "".join(
                f"  {n}:\n    prompt: p\n    tools: [Bash]\n    cwd: repo\n"
                "    workspace: worktree\n"
                for n in names
            )
        )
        roster = load_roster(tmp_path / "agents.yaml", {})
        for name in made:  # c's worktree is made when it starts, after the comparison
            tree = workspaces.locate(roster.agents[name], roster)
            assert tree is not None
            workspaces.ensure(tree)
        return roster

    def denied_to_a(roster: Roster) -> list[str]:
        got: list[str] = settings(roster.agents["a"], roster)["sandbox"]["filesystem"]["denyWrite"]
        return got

    repo = make_repo(tmp_path / "repo")
    old = roster_of("a", "b")
    before = denied_to_a(old)
    store = (repo / ".git" / "refs" / "heads" / "octy" / "t").resolve()
    assert store == repo / ".git" / "octy-refs" / "t"
    assert f"/{store}/b/.octy-deny" in before
    assert not [p for p in before if p.startswith(f"/{store}/a")]
    new = roster_of("a", "b", "c")
    logs = repo / ".git" / "logs" / "refs" / "heads" / "octy" / "t"
    assert f"/{logs}/b/.octy-deny" in before
    assert sorted(set(denied_to_a(new)) - set(before)) == sorted(
        [f"/{store}/c/.octy-deny", f"/{logs}/c/.octy-deny"]
    )
    diff = with_new_rules(diff_rosters(old, new), old, new)
    assert (diff.added, diff.changed) == (("c",), ("a", "b"))


def test_a_branch_the_supervisor_did_not_make_is_not_taken_up(tmp_path: Path) -> None:
    """A team mate's shell can make a branch in the team's folder; one named after an
    agent added later is refused at that agent's start (no octyBase recorded, which no
    agent can write) instead of becoming its branch with the commits planted there."""
    from orchestrator import workspaces
    from orchestrator.errors import WorkspaceError

    repo = make_repo(tmp_path / "repo")
    git(repo, "branch", "octy/t/c")  # as a's shell would: a branch with no octyBase
    tree = workspaces.Worktree(
        "c", repo, repo / workspaces.FOLDER / "t" / "c", "octy/t/c", None, Path(), "t"
    )
    with pytest.raises(WorkspaceError, match=r"c: its branch octy/t/c exists but was not made"):
        workspaces.ensure(tree)
    assert not tree.exists()
    git(repo, "config", "branch.octy/t/c.octyBase", "main")  # the operator keeps it
    assert workspaces.ensure(tree).exists()


@pytest.mark.cli
def test_stale_locks_of_an_agents_branch_and_worktree_are_cleared_at_its_start(
    team: TeamFactory, tmp_path: Path
) -> None:
    """A git killed mid-commit (the agent stopped, its CLI killed) leaves its branch's
    ``<agent>.lock`` in the team's folder and its worktree's ``index.lock``; a team mate's
    shell can leave the first too (measured: it may write the team's folder). Each made
    every later commit of the agent fail ("File exists") until someone deleted it by hand;
    the supervisor removes them when it starts the agent's CLI, before any of its
    commands can run. A mate's lock and the operator's locks are left alone."""
    repo = make_repo(tmp_path / "repo")
    worktree = {"cwd": "repo", "workspace": "worktree", "tools": ["Bash"]}
    t = team(both_rules(), {"a": dict(worktree), "b": dict(worktree)})
    t.up()
    t.wait_ready("a", "b")
    commit = "echo {0} > {0}.txt && git add {0}.txt && git commit -qm {0} && echo DONE"
    assert "DONE" in run(t, "a", commit.format("a1")), "a commits"
    common = repo / ".git"
    # b's shell can plant a's branch lock (the team's folder is writable to it).
    out = run(t, "b", "touch $(git rev-parse --git-common-dir)/refs/heads/octy/testteam/a.lock")
    assert "rc=0" in out, out
    planted = common / "refs" / "heads" / "octy" / "testteam" / "a.lock"
    assert planted.is_file()
    assert "File exists" in run(t, "a", commit.format("a2")), "the lock blocks a's commit"

    assert t.octy("stop", "a").returncode == 0
    admin = next(p for p in (common / "worktrees").iterdir() if p.name.startswith("a"))
    (admin / "index.lock").write_text("")  # as a git killed while writing the index
    (admin / "HEAD.lock").write_text("")
    keep = [common / "refs" / "heads" / "octy" / "testteam" / "b.lock", common / "index.lock"]
    for path in keep:
        path.write_text("")
    assert t.octy("start", "a").returncode == 0
    t.wait_ready("a")
    out = run(t, "a", "git add -A && git commit -qm a2 && echo DONE")
    assert "DONE" in out, out
    assert git(repo, "show", "--name-only", "--format=", "octy/testteam/a") == "a2.txt"
    assert not planted.exists()
    assert not (admin / "index.lock").exists()
    assert not (admin / "HEAD.lock").exists()
    assert all(path.exists() for path in keep)  # not a's: left for their owners
    logs = [p.read_text(errors="replace") for p in (t.folder / "logs").rglob("*") if p.is_file()]
    assert any("stale_git_lock_removed" in text for text in logs)


@pytest.mark.cli
def test_a_team_started_later_in_the_same_repository_keeps_its_branches(
    team: TeamFactory, tmp_path: Path
) -> None:
    """Measured on CLI 2.1.332: after each command, the CLI's sandbox renames a symbolic
    link that appeared in a .git folder since its session began
    (``.<name>.claude-sandbox-quarantine-<hex>``). With one link per team, a team started
    in the repository while another ran lost its branch folder at the first command of
    any agent of the first team: its branches were gone from every git. One link for all
    teams (``refs/heads/octy``), made before the first team's sessions, is never new; a
    later team's folder is a plain folder behind it. Its branches stay where they are."""
    from orchestrator import workspaces

    repo = make_repo(tmp_path / "repo")
    base = git(repo, "rev-parse", "main")
    t = team(shell_rules("a"), {"a": {"cwd": "repo", "workspace": "worktree", "tools": ["Bash"]}})
    t.up()
    t.wait_ready("a")
    later = workspaces.Worktree(  # what the later team's supervisor makes for its agent x
        "x", repo, repo / workspaces.FOLDER / "other" / "x", "octy/other/x", None, Path(), "other"
    )
    workspaces.ensure(later)
    out = run(t, "a", "echo w > w.txt && git add w.txt && git commit -qm w && echo DONE")
    assert "DONE" in out, out
    assert "quarantine" not in out, out
    assert git(repo, "rev-parse", "octy/other/x") == base
    assert git(repo, "rev-parse", "octy/testteam/a") != base
    (later.path / "y.txt").write_text("y\n")
    git(later.path, "add", "y.txt")
    git(later.path, "commit", "-qm", "y")  # the later team's agent still commits
    assert git(repo, "show", "--name-only", "--format=", "octy/other/x") == "y.txt"
    assert not list((repo / ".git" / "refs" / "heads").rglob("*quarantine*"))


@pytest.mark.cli
def test_a_mates_reflog_is_out_of_reach_and_a_mate_started_later_logs_its_commits(
    team: TeamFactory, tmp_path: Path
) -> None:
    """Measured: a worktree agent's shell could append to, expire or delete a team mate's
    reflog (``.git/logs/refs/heads/octy/<team>/<mate>``), the record of where the mate's
    branch was. Each mate's reflog is denied below its name, like its branch: a's writes
    fail while b's and a's own commits are logged. c, in the roster but started while a
    command of a runs (its reflog denied to a before it exists), gets its worktree, its
    branch and its reflog."""
    import threading

    repo = make_repo(tmp_path / "repo")
    worktree = {"cwd": "repo", "workspace": "worktree", "tools": ["Bash"]}
    rules = both_rules() + shell_rules("c")
    t = team(rules, {"a": dict(worktree), "b": dict(worktree), "c": dict(worktree)})
    t.up("a", "b")
    t.wait_ready("a", "b")
    commit = "echo {0} > {0}.txt && git add {0}.txt && git commit -qm {0} && echo DONE"
    assert "DONE" in run(t, "b", commit.format("b1")), "b commits"
    logs = repo / ".git" / "logs" / "refs" / "heads" / "octy" / "testteam"
    before = (logs / "b").read_text()
    ref = "refs/heads/octy/testteam/b"
    attempts = {
        "append": f"echo junk >> $(git rev-parse --git-common-dir)/logs/{ref}",
        "expire": f"git reflog expire --expire=now --expire-unreachable=now {ref} && "
        f'test -z "$(git reflog show {ref})"',
        "delete": f"rm $(git rev-parse --git-common-dir)/logs/{ref}",
    }
    for name, command in attempts.items():
        out = run(t, "a", f"{command} && echo DONE-{name}")
        assert f"DONE-{name}" not in out, out
    assert (logs / "b").read_text() == before
    assert "DONE" in run(t, "a", commit.format("a1")), "a commits"
    assert "a1" in (logs / "a").read_text()

    slept: list[str] = []
    sleeper = threading.Thread(target=lambda: slept.append(run(t, "a", "sleep 12; echo SLEPT")))
    sleeper.start()
    try:
        assert t.octy("start", "c").returncode == 0
        t.wait_ready("c")
        assert "DONE" in run(t, "c", commit.format("c1")), "c commits"
    finally:
        sleeper.join(120)
    assert "SLEPT" in slept[0], slept
    assert "c1" in (logs / "c").read_text()
    assert git(repo, "show", "--name-only", "--format=", "octy/testteam/c") == "c1.txt"
    assert "DONE" in run(t, "b", commit.format("b2")), "b commits again"
    assert "b2" in (logs / "b").read_text()


@pytest.mark.cli
def test_a_worktree_agent_started_after_a_shared_one_keeps_its_branch(
    team: TeamFactory, tmp_path: Path
) -> None:
    """Measured on CLI 2.1.332: a sandboxed CLI renames a symbolic link that appeared in
    the repository's .git since its session began. The branch link was made when the
    first worktree agent started, so with a shared agent s already running in the
    repository (``up s``, then ``start w``), s's next command moved it aside: w's branch
    was gone and its commit failed. The supervisor makes it before any agent starts."""
    repo = make_repo(tmp_path / "repo")
    t = team(
        shell_rules("s") + shell_rules("w"),
        {
            "s": {"cwd": "repo", "tools": ["Bash"]},
            "w": {"cwd": "repo", "workspace": "worktree", "tools": ["Bash"]},
        },
    )
    t.up("s")
    t.wait_ready("s")
    assert "rc=0" in run(t, "s", "echo hi")
    assert t.octy("start", "w").returncode == 0
    t.wait_ready("w")
    out = run(t, "s", "git status --short >/dev/null; echo ran")
    assert "quarantine" not in out, out
    out = run(t, "w", "echo x > x.txt && git add x.txt && git commit -qm x && echo DONE")
    assert "DONE" in out, out
    assert git(repo, "show", "--name-only", "--format=", "octy/testteam/w") == "x.txt"
    assert not list((repo / ".git" / "refs" / "heads").glob("*quarantine*"))


@pytest.mark.cli
def test_a_start_waiting_for_the_config_lock_is_stopped_at_once(
    team: TeamFactory, tmp_path: Path
) -> None:
    """An agent's start waits (up to 300 s) while ``.git/config.lock`` is there (the CLI's
    placeholder while a mate's command runs). Measured before: ``octy stop`` of that agent
    did not return (60 s here, and not before the wait's end), its thread being no task a
    stop could cancel; `down` the same. Now the stop ends the wait."""
    repo = make_repo(tmp_path / "repo")
    worktree = {"cwd": "repo", "workspace": "worktree", "tools": ["Bash"]}
    t = team(both_rules(), {"a": dict(worktree), "b": dict(worktree)})
    t.up("a")
    t.wait_ready("a")
    lock = repo / ".git" / "config.lock"
    lock.write_text("")  # as the CLI's placeholder
    assert t.octy("start", "b").returncode == 0
    t.wait_for(lambda: t.log_events("git_config_locked"), what="b's start waiting for the lock")
    done = t.octy("stop", "b", timeout=60)  # a deadlock guard: the stop ends the wait
    assert done.returncode == 0, done.stdout + done.stderr
    assert t.states()["b"] == "stopped"
    lock.unlink()
    assert t.octy("start", "b").returncode == 0
    t.wait_ready("b")  # the next start makes it
