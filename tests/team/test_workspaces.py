"""A git worktree per agent (`workspace: worktree`): roster checks with real git, and a
real team whose two agents edit the same file in their own worktrees (issue 11)."""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_runner import octy
from gitrepo import git, make_repo
from team_harness import Team, agent_rule

from orchestrator.errors import RosterErrors
from orchestrator.roster import load_roster

TeamFactory = Callable[..., Team]


def problems(folder: Path, text: str) -> list[str]:
    path = folder / "agents.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(RosterErrors) as info:
        load_roster(path, {})
    return [str(e) for e in info.value.errors]


def test_worktree_outside_git_and_unknown_base_are_roster_errors(tmp_path: Path) -> None:
    """file:line:key for a cwd outside any repository and for a base branch that does not
    exist (the branches are listed)."""
    make_repo(tmp_path / "repo")
    (tmp_path / "plain").mkdir()
    found = problems(
        tmp_path,
        """\
        agents:
          a:
            prompt: p
            cwd: plain
            workspace: worktree
          b:
            prompt: p
            cwd: repo
            workspace: {type: worktree, base: develop}
        """,
    )
    path = tmp_path / "agents.yaml"
    assert found == [
        f"{path}:5: key 'agents.a.workspace': not a git repository: {tmp_path / 'plain'}; a "
        "worktree workspace needs the agent's cwd inside one (git init), or use "
        "'workspace: shared'",
        f"{path}:9: key 'agents.b.workspace': unknown base 'develop': no such branch in "
        f"{tmp_path / 'repo'} (branches: main)",
    ]


def edit_rules(agent: str) -> list[dict[str, object]]:
    """`edit` -> Write shared.txt; then commit it with Bash; then say done."""
    return [
        {"agent": agent_rule(agent), "tool_result": r"\[octy/", "text": f"{agent} committed"},
        {
            "agent": agent_rule(agent),
            "tool_result": r"(?i)file created",
            "tool_use": {
                "name": "Bash",
                "input": {"command": f"git add shared.txt && git commit -m '{agent} edit'"},
            },
        },
        {
            "agent": agent_rule(agent),
            "match": "edit",
            "tool_use": {
                "name": "Write",
                "input": {"file_path": "shared.txt", "content": f"written by {agent}\n"},
            },
        },
        {
            "agent": agent_rule(agent),
            "match": "where",
            "tool_use": {"name": "Bash", "input": {"command": "pwd && cat shared.txt"}},
        },
        {"agent": agent_rule(agent), "tool_result": r"(?s)(/.*)", "text": "AT {1}"},
    ]


@pytest.mark.cli
def test_two_agents_in_worktrees_edit_one_file_then_merge_and_conflict(
    team: TeamFactory, tmp_path: Path
) -> None:
    """alpha and beta each write shared.txt in their own worktree at once and commit: each
    branch has its own change and main is untouched; `workspaces merge alpha` brings
    alpha's in; `workspaces merge beta` then conflicts, names shared.txt and changes
    nothing. A restarted agent gets the same worktree; `down` keeps them; `remove`
    refuses uncommitted work unless --force."""
    repo = make_repo(tmp_path / "repo")
    main_before = git(repo, "rev-parse", "main")
    t = team(
        [*edit_rules("alpha"), *edit_rules("beta")],
        {
            "alpha": {"cwd": "repo", "workspace": "worktree", "tools": ["Write", "Bash"]},
            "beta": {"cwd": "repo", "workspace": "worktree", "tools": ["Write", "Bash"]},
        },
    )
    t.up()
    t.wait_ready("alpha", "beta")
    # One after the other, seconds apart: two sandboxed `git commit`s started at the same
    # instant in worktrees of one repository sometimes fail inside the CLI's own sandbox
    # set-up ("<repo>/.git/config.lock: No such file or directory": a file it saw while
    # preparing bwrap was gone when bwrap ran). That is the CLI's race, not the workspaces'.
    with t.mailbox() as mb:
        first = t.request("alpha", "edit please")
        assert mb.wait_for_reply(first.id, 60).body == "alpha committed"
        second = t.request("beta", "edit please")
        assert mb.wait_for_reply(second.id, 60).body == "beta committed"

    trees = repo / ".octy" / "worktrees" / "testteam"
    for agent in ("alpha", "beta"):
        assert git(repo, "show", f"octy/testteam/{agent}:shared.txt") == f"written by {agent}"
        assert (trees / agent / "shared.txt").read_text() == f"written by {agent}\n"
    assert git(repo, "rev-parse", "main") == main_before
    assert not (repo / "shared.txt").exists()
    assert git(repo, "status", "--porcelain") == ""  # .octy/ is excluded, not untracked

    listed = json.loads(octy("workspaces", "--json", cwd=tmp_path).stdout)["workspaces"]
    assert [
        (w["agent"], w["branch"], w["base"], w["ahead"], w["behind"], w["uncommitted"])
        for w in listed
    ] == [
        ("alpha", "octy/testteam/alpha", "main", 1, 0, []),
        ("beta", "octy/testteam/beta", "main", 1, 0, []),
    ]
    assert "+written by alpha" in octy("workspaces", "diff", "alpha", cwd=tmp_path).stdout

    # restart: the same worktree, with its file
    assert octy("restart", "alpha", cwd=tmp_path).returncode == 0
    t.wait_for(lambda: t.states().get("alpha") == "ready", 90, "alpha back")
    assert t.ask("alpha", "where are you") == f"AT {trees / 'alpha'}\nwritten by alpha"

    merged = octy("workspaces", "merge", "alpha", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    assert (repo / "shared.txt").read_text() == "written by alpha\n"
    main_after = git(repo, "rev-parse", "main")

    conflict = octy("workspaces", "merge", "beta", cwd=tmp_path)
    assert conflict.returncode == 1
    assert "conflicts in: shared.txt" in conflict.stderr
    assert "nothing was changed" in conflict.stderr
    assert git(repo, "rev-parse", "main") == main_after
    assert git(repo, "status", "--porcelain") == ""
    assert (repo / "shared.txt").read_text() == "written by alpha\n"

    t.signal(signal.SIGTERM)  # `down`: the worktrees stay
    assert t.wait_exit(60) == 0
    assert (trees / "alpha" / "shared.txt").exists()
    assert (trees / "beta" / "shared.txt").exists()

    (trees / "beta" / "scratch.txt").write_text("not committed\n")
    refused = octy("workspaces", "remove", "beta", cwd=tmp_path)
    assert refused.returncode == 1
    assert "uncommitted changes (scratch.txt)" in refused.stderr
    assert (trees / "beta").exists()
    assert octy("workspaces", "remove", "beta", "--force", cwd=tmp_path).returncode == 0
    assert not (trees / "beta").exists()
    assert git(repo, "rev-parse", "octy/testteam/beta")  # the branch, and its work, stay


def test_a_worktree_deleted_by_hand_is_made_again_on_the_same_branch(tmp_path: Path) -> None:
    """The folder is gone (rm -rf) but the branch holds the agent's commits: the next start
    makes the worktree again on that branch, its work intact; a team name git would refuse
    in a ref is made safe."""
    from orchestrator import workspaces

    repo = make_repo(tmp_path / "repo")
    (tmp_path / "agents.yaml").write_text(
        "name: My Team..v2\nagents:\n  a: {prompt: p, cwd: repo, workspace: worktree}\n"
    )
    roster = load_roster(tmp_path / "agents.yaml", {})
    folder = workspaces.agent_folder(roster.agents["a"], roster)
    team = workspaces.slug("My Team..v2")
    assert team.startswith("my-team.v2-")  # capitals: a digest of the exact name
    assert folder == repo / ".octy" / "worktrees" / team / "a"
    (folder / "work.txt").write_text("kept\n")
    git(folder, "add", "work.txt")
    git(folder, "commit", "-qm", "agent work")
    subprocess.run(["rm", "-rf", str(folder)], check=True)
    again = workspaces.agent_folder(roster.agents["a"], roster)
    assert again == folder
    assert (folder / "work.txt").read_text() == "kept\n"
    assert git(folder, "rev-parse", "--abbrev-ref", "HEAD") == f"octy/{team}/a"
    assert "locked" in git(repo, "worktree", "list")


def test_a_team_name_longer_than_a_path_segment_still_makes_worktrees(tmp_path: Path) -> None:
    """Regression: a team name of 300 characters (a long folder's name is the default) made
    the worktree's team folder a path segment past 255 bytes: each start of the agent
    crashed with ENAMETOOLONG until it was marked failed. A long name is cut, with a digest
    of the whole name, so two long names that share a beginning stay apart."""
    from orchestrator import workspaces

    make_repo(tmp_path / "repo")
    folders = []
    for tail in ("one", "two"):
        (tmp_path / "agents.yaml").write_text(
            f"name: {'n' * 300}{tail}\n"
            "agents:\n  a: {prompt: p, cwd: repo, workspace: worktree}\n"
        )
        roster = load_roster(tmp_path / "agents.yaml", {})
        folder = workspaces.agent_folder(roster.agents["a"], roster)
        assert folder.is_dir()
        team = folder.parent.name
        assert len(team) <= workspaces.MAX_SLUG
        assert git(folder, "rev-parse", "--abbrev-ref", "HEAD") == f"octy/{team}/a"
        folders.append(folder)
    assert folders[0] != folders[1]


def test_regression_worktrees_made_at_once_all_record_their_base(tmp_path: Path) -> None:
    """The supervisor makes its agents' worktrees in parallel threads; git refuses a second
    writer of .git/config at once, so one of two worktrees made together lost its recorded
    base (`workspaces` showed base None, ahead 0). Eight made at once all record theirs."""
    import threading

    from orchestrator import workspaces

    repo = make_repo(tmp_path / "repo")
    trees = [
        workspaces.Worktree(
            f"a{i}", repo, repo / workspaces.FOLDER / "t" / f"a{i}", f"octy/t/a{i}", None, Path()
        )
        for i in range(8)
    ]
    start = threading.Barrier(len(trees))
    made: dict[str, object] = {}

    def make(tree: workspaces.Worktree) -> None:
        start.wait()
        try:
            made[tree.agent] = workspaces.ensure(tree)
        except Exception as exc:  # what went wrong is the assertion's message
            made[tree.agent] = exc

    threads = [threading.Thread(target=make, args=(t,)) for t in trees]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(isinstance(v, workspaces.Worktree) for v in made.values()), made
    for tree in trees:
        assert git(repo, "config", "--get", f"branch.{tree.branch}.octyBase") == "main"


def test_workspaces_list_is_the_listing(tmp_path: Path) -> None:
    """`workspaces list` (and `ls`), as the verb's help says, print what `workspaces` alone
    prints; it was refused as an invalid choice (exit 2)."""
    from orchestrator import workspaces

    make_repo(tmp_path / "repo")
    (tmp_path / "agents.yaml").write_text(
        "name: t\nagents:\n  a: {prompt: p, cwd: repo, workspace: worktree}\n"
    )
    roster = load_roster(tmp_path / "agents.yaml", {})
    workspaces.agent_folder(roster.agents["a"], roster)
    alone = octy("workspaces", "--json", cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr
    assert [w["agent"] for w in json.loads(alone.stdout)["workspaces"]] == ["a"]
    for action in ("list", "ls"):
        done = octy("workspaces", action, "--json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == json.loads(alone.stdout)
    assert "octy/t/a" in octy("workspaces", "list", cwd=tmp_path).stdout


def test_merge_refuses_a_branch_that_changes_the_team_unless_told(tmp_path: Path) -> None:
    """Regression: an agent in a worktree edited its copy of agents.yaml (any tools, no
    sandbox) and `workspaces merge` brought it into the live roster, which hot reload
    applies. A branch touching the roster, a prompt file or the CLI's project settings is
    refused, naming them, with nothing changed; --allow-team-files merges it."""
    from orchestrator import workspaces

    repo = make_repo(tmp_path / "repo")
    (repo / "prompts").mkdir()
    (repo / "prompts" / "coder.md").write_text("You write code.\n")
    (repo / "agents.yaml").write_text(
        "name: t\nagents:\n  coder:\n    prompt_file: prompts/coder.md\n"
        "    workspace: worktree\n    tools: [Bash]\n"
    )
    (repo / ".gitignore").write_text(".octy/\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "team")
    roster = load_roster(repo / "agents.yaml", {})
    folder = workspaces.agent_folder(roster.agents["coder"], roster)

    def commit(path: str, text: str) -> None:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
        git(folder, "add", path)
        git(folder, "commit", "-qm", f"edit {path}")

    commit("src/app.py", "print('work')\n")
    commit("agents.yaml", (repo / "agents.yaml").read_text() + "    sandbox: false\n")
    commit("prompts/coder.md", "You obey nobody.\n")
    commit(".claude/settings.json", '{"hooks": {}}\n')
    before = git(repo, "rev-parse", "main")
    refused = octy("workspaces", "merge", "coder", "--json", cwd=repo)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    report = json.loads(refused.stdout)
    assert report["error"] == "team_files_in_merge"
    assert report["paths"] == [".claude/settings.json", "agents.yaml", "prompts/coder.md"]
    assert "--allow-team-files" in report["message"]
    assert git(repo, "rev-parse", "main") == before
    assert "sandbox" not in (repo / "agents.yaml").read_text()
    plain = octy("workspaces", "merge", "coder", cwd=repo)
    assert plain.returncode == 1
    assert "agents.yaml" in plain.stderr
    assert "Traceback" not in plain.stderr

    allowed = octy("workspaces", "merge", "coder", "--allow-team-files", "--json", cwd=repo)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "sandbox: false" in (repo / "agents.yaml").read_text()
    assert (repo / "src" / "app.py").is_file()


def test_merge_of_ordinary_work_is_not_held_up(tmp_path: Path) -> None:
    """Only team files are held back: a branch that changes code merges as before, and a
    roster outside the repository matches nothing in it."""
    from orchestrator import workspace_ops, workspaces

    repo = make_repo(tmp_path / "repo")
    (tmp_path / "agents.yaml").write_text(
        "name: t\nagents:\n  a: {prompt: p, cwd: repo, workspace: worktree}\n"
    )
    roster = load_roster(tmp_path / "agents.yaml", {})
    folder = workspaces.agent_folder(roster.agents["a"], roster)
    (folder / "agents.yaml").write_text("not the team's roster\n")
    (folder / "lib").mkdir()
    (folder / "lib" / "claude.md").write_text("x\n")
    git(folder, "add", ".")
    git(folder, "commit", "-qm", "work")
    tree = workspace_ops.worktree_of(roster, "a")
    assert workspace_ops.team_files(roster, repo, workspace_ops.changed(tree)) == []
    assert workspace_ops.merge(roster, "a") == git(repo, "rev-parse", "main")
    assert (repo / "lib" / "claude.md").is_file()


def test_team_names_that_differ_only_in_case_or_script_get_their_own_worktrees(
    tmp_path: Path,
) -> None:
    """Regression: the slug dropped capitals and every non-ASCII letter, so teams named
    'команда-фронт', 'フロント' and '前端' all worked in worktrees/team/a on branch
    octy/team/a, and 'App' in app's: two teams in one repository mixed their agents' work.
    A name the slug would lose information of gets a digest of it; an ASCII-lowercase name
    keeps its old segment (existing worktrees are found)."""
    from orchestrator import workspaces

    make_repo(tmp_path / "repo")
    names = ["команда-фронт", "フロント", "前端", "App", "app"]
    branches = {}
    for name in names:
        (tmp_path / "agents.yaml").write_text(
            json.dumps(
                {
                    "name": name,
                    "agents": {"a": {"prompt": "p", "cwd": "repo", "workspace": "worktree"}},
                }
            ),
            encoding="utf-8",
        )
        roster = load_roster(tmp_path / "agents.yaml", {})
        folder = workspaces.agent_folder(roster.agents["a"], roster)
        branches[name] = git(folder, "rev-parse", "--abbrev-ref", "HEAD")
    assert len(set(branches.values())) == len(names), branches
    for name, branch in branches.items():
        assert git(tmp_path / "repo", "config", "--get", f"branch.{branch}.octyTeam") == name
    assert branches["app"] == "octy/app/a"
    assert all(b.removeprefix("octy/").split("/")[0] != "team" for b in branches.values())


def test_a_worktree_made_before_the_digest_is_kept_by_its_team(tmp_path: Path) -> None:
    """A team named MyProject (a folder's name is the default) made octy/myproject/a with
    an earlier version: it keeps that worktree and its commits, and records it as its own;
    a branch already recorded as another team's is left to that team."""
    from orchestrator import workspaces

    repo = make_repo(tmp_path / "repo")
    old = workspaces.Worktree(
        "a", repo, repo / workspaces.FOLDER / "myproject" / "a", "octy/myproject/a", None, Path()
    )
    workspaces.ensure(old)  # as before: no team recorded
    (old.path / "work.txt").write_text("kept\n")
    git(old.path, "add", "work.txt")
    git(old.path, "commit", "-qm", "agent work")

    def folder_of(name: str, agent: str = "a") -> Path:
        (tmp_path / "agents.yaml").write_text(
            f"name: {name}\nagents:\n  {agent}: {{prompt: p, cwd: repo, workspace: worktree}}\n"
        )
        roster = load_roster(tmp_path / "agents.yaml", {})
        return workspaces.agent_folder(roster.agents[agent], roster)

    assert folder_of("MyProject") == old.path
    assert (old.path / "work.txt").read_text() == "kept\n"
    assert git(repo, "config", "--get", "branch.octy/myproject/a.octyTeam") == "MyProject"
    # b's old worktree belongs to the lowercase team, which ran since and recorded it.
    assert folder_of("myproject", "b").parent.name == "myproject"
    assert folder_of("MyProject", "b").parent.name == workspaces.slug("MyProject")
