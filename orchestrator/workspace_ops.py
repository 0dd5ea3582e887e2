"""What the operator does with agents' worktrees: list, diff, merge, remove.

Used by ``octy-orchestrate workspaces``; nothing here needs a running
supervisor. A merge is all or nothing: ``git merge-tree`` computes it first
without touching any ref, index or file, and a conflict is reported with its
paths while everything stays as it was.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator import errors, gitcmd
from orchestrator import workspace_checks as checks
from orchestrator.roster import AgentSpec, Roster
from orchestrator.workspaces import FOLDER, Worktree, locate


@dataclass(frozen=True)
class Status:
    agent: str
    branch: str
    base: str | None
    path: str
    exists: bool
    ahead: int  # commits on the agent's branch that the base lacks
    behind: int  # commits on the base that the agent's branch lacks
    uncommitted: tuple[str, ...]  # paths with changes not committed in the worktree
    # Where the worktree's HEAD is, when not on its branch: "branch X" or "a detached
    # HEAD at ID" (None: on its branch, or not made). Commits made there are not on the
    # branch: `merge` would leave them out and `remove` could lose them.
    off_branch: str | None = None
    off_branch_commits: int = 0  # commits at that HEAD the agent's branch lacks

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "uncommitted": list(self.uncommitted)}


def worktree_of(roster: Roster, agent: str) -> Worktree:
    spec = roster.agents.get(agent)
    if spec is None:
        raise errors.WorkspaceError(
            agent, f"no agent {agent!r} in {roster.path.name}; agents: {', '.join(roster.agents)}"
        )
    tree = locate(spec, roster)
    if tree is None:
        raise errors.WorkspaceError(
            agent, "works in a shared workspace (its cwd), not a worktree; nothing to do"
        )
    return tree


def statuses(roster: Roster) -> list[Status]:
    result = []
    for spec in roster.agents.values():
        if spec.workspace.is_worktree:
            result.append(status(spec, roster))
    return result


def status(spec: AgentSpec, roster: Roster) -> Status:
    tree = worktree_of(roster, spec.name)
    ahead = behind = 0
    if tree.base and gitcmd.is_branch(tree.repo, tree.branch):
        counts = gitcmd.run(
            ["rev-list", "--left-right", "--count", f"{tree.base}...{tree.branch}"], tree.repo
        ).stdout.split()
        behind, ahead = int(counts[0]), int(counts[1])
    head = checks.head_of(tree)
    off = head is not None and head.commit is not None and not head.on(tree.branch)
    return Status(
        agent=spec.name,
        branch=tree.branch,
        base=tree.base,
        path=str(tree.path),
        exists=tree.exists(),
        ahead=ahead,
        behind=behind,
        uncommitted=tuple(uncommitted(tree)),
        off_branch=head.shown() if off and head is not None else None,
        off_branch_commits=head.lacking if off and head is not None else 0,
    )


def uncommitted(tree: Worktree) -> list[str]:
    if not tree.exists():
        return []
    out = gitcmd.run(["status", "--porcelain=v1", "-z", "--untracked-files=all"], tree.path)
    entries = [e for e in out.stdout.split("\0") if e]
    paths, skip = [], False
    for entry in entries:
        if skip:  # the old name of a rename
            skip = False
            continue
        paths.append(entry[3:])
        skip = entry[0] in "RC"
    return paths


def diff(roster: Roster, agent: str) -> str:
    """What the agent's branch changed since it left its base (committed work)."""
    tree = _known(worktree_of(roster, agent))
    _refuse_tampering(tree)
    tip = gitcmd.commit_of(tree.repo, tree.branch)
    base = gitcmd.commit_of(tree.repo, str(tree.base))
    return gitcmd.run(["diff", f"{base}...{tip}"], tree.repo).stdout


def merge(roster: Roster, agent: str, *, allow_team_files: bool = False) -> str:
    """Merge the agent's branch into its base. Returns the base's new commit.

    Refused with nothing changed (a :class:`errors.MergeRefused`) when: the repository
    holds replace refs, grafts or attributes octy did not write; the worktree holds commits
    its branch lacks; the branch touches :func:`team_files` and ``allow_team_files`` is
    off; the merge would conflict; it would write over files the base's checkout does not
    track. NothingToMerge when the branch has no commit the base lacks.

    The branch and the base are read once, as commit ids, and only those ids are used
    after: a worktree agent can move its branch, and a check of one commit followed by a
    merge of another let a roster change in unread (found by review)."""
    tree = _known(worktree_of(roster, agent))
    base = str(tree.base)
    _refuse_tampering(tree)
    tip = gitcmd.commit_of(tree.repo, tree.branch)
    old = gitcmd.commit_of(tree.repo, base)
    head = checks.head_of(tree)
    if head is not None and not head.on(tree.branch) and head.lacking:
        raise errors.OffBranch(
            agent, tree.branch, base, head.shown(), commits=head.lacking, ref=head.ref()
        )
    if _is_ancestor(tree.repo, tip, old):
        raise errors.NothingToMerge(agent, tree.branch, base)
    if not allow_team_files:
        touched = team_files(roster, tree.repo, _changed(tree.repo, old, tip))
        if touched:
            raise errors.TeamFilesInMerge(agent, tree.branch, base, touched)
    probe = gitcmd.run(
        ["merge-tree", "--write-tree", "--name-only", "--no-messages", old, tip],
        tree.repo,
        check=False,
    )
    lines = probe.stdout.splitlines()
    if probe.returncode == 1:
        raise errors.MergeConflict(agent, tree.branch, base, [p for p in lines[1:] if p])
    if probe.returncode != 0:
        raise errors.GitError(["merge-tree", old, tip], probe.returncode, probe.stderr)
    checkout = _checked_out(tree.repo, base)
    message = f"Merge {tree.branch} (agent {agent}) into {base}"
    if checkout is not None:
        # The base is someone's checkout: merge there so its files follow the branch. git
        # refuses (changing nothing) if local edits there would be overwritten, but it
        # overwrites ignored files silently: another agent's live worktree under .octy/,
        # the operator's .env. So what the merge brings is checked against them first.
        brought = _changed(tree.repo, old, lines[0], since_fork=False)
        blocked = checks.in_the_way(checkout, brought)
        if blocked:
            raise errors.UntrackedInTheWay(agent, tree.branch, base, blocked, str(checkout))
        if gitcmd.run(["rev-parse", "--verify", "HEAD"], checkout).stdout.strip() != old:
            raise errors.WorkspaceError(
                agent, f"{base} moved while merging; nothing was changed: merge again"
            )
        gitcmd.run(["merge", "--no-edit", "-m", message, tip], checkout)
    else:
        if _is_ancestor(tree.repo, old, tip):
            new = tip
        else:
            new = gitcmd.run(
                ["commit-tree", lines[0], "-p", old, "-p", tip, "-m", message], tree.repo
            ).stdout.strip()
        gitcmd.run(["update-ref", "-m", message, f"refs/heads/{base}", new, old], tree.repo)
    return gitcmd.commit_of(tree.repo, base)


def changed(tree: Worktree) -> list[str]:
    """Paths (from the repository's top) the agent's branch changed since it left its base:
    what a merge brings. Renames count as both names."""
    return _changed(tree.repo, str(tree.base), tree.branch)


def _changed(repo: Path, base: str, tip: str, *, since_fork: bool = True) -> list[str]:
    """Paths changed from ``base`` (or from where ``tip`` forked from it) to ``tip``."""
    span = f"{base}...{tip}" if since_fork else f"{base}..{tip}"
    out = gitcmd.run(["diff", "--name-only", "--no-renames", "-z", span], repo).stdout
    return [p for p in out.split("\0") if p]


def _refuse_tampering(tree: Worktree) -> None:
    found = checks.tampering(tree.repo)
    if found:
        raise errors.UnsafeRepository(tree.agent, tree.branch, str(tree.base), found)


def team_files(roster: Roster, repo: Path, paths: list[str]) -> list[str]:
    """Those of ``paths`` a merge must not bring in unread: an agent edits its worktree's
    copy of the roster or of a prompt, and the merge would hand it to the running team
    through hot reload (found by review: a worktree agent could give itself any tools).
    Also the CLI's project settings (``.claude/``: hooks and permissions; ``.mcp.json``:
    servers), which run code outside the sandbox for every agent that loads them, and the
    team's database and logs folders, and anything under ``.octy/``, where the agents'
    worktrees live (a branch tracking ``.octy/worktrees/t/b/x`` was merged over agent b's
    uncommitted file)."""
    top = repo.resolve()
    exact: set[str] = set()
    folders: list[str] = []
    for path in (roster.path, *(s.prompt_file for s in roster.agents.values() if s.prompt_file)):
        with contextlib.suppress(ValueError):
            exact.add(path.resolve().relative_to(top).as_posix())
    for folder in (roster.database.parent, roster.logs):
        with contextlib.suppress(ValueError):
            folders.append(folder.resolve().relative_to(top).as_posix() + "/")
    return [
        p
        for p in paths
        if p in exact
        or p.split("/", 1)[0] == FOLDER.parts[0]  # .octy/: the agents' live worktrees
        or any(p.startswith(f) for f in folders)
        or ".claude" in p.split("/")
        or p.rsplit("/", 1)[-1] == ".mcp.json"
    ]


def remove(roster: Roster, agent: str, *, force: bool = False) -> Worktree:
    """Remove the agent's worktree (its branch stays). Unless ``force``: UncommittedWork,
    and CommitsOnNoBranch when its HEAD holds commits no branch has (they would become
    unreachable, then collected)."""
    tree = worktree_of(roster, agent)
    if not tree.exists():
        raise errors.WorkspaceError(agent, f"has no worktree at {tree.path}")
    dirty = uncommitted(tree)
    if dirty and not force:
        raise errors.UncommittedWork(agent, dirty)
    head = checks.head_of(tree)
    if head is not None and head.commit is not None and head.on_no_branch and not force:
        raise errors.CommitsOnNoBranch(agent, str(tree.path), head.commit, head.on_no_branch)
    gitcmd.run(["worktree", "unlock", str(tree.path)], tree.repo, check=False)
    gitcmd.run(["worktree", "remove", *(["--force"] if force else []), str(tree.path)], tree.repo)
    return tree


def _known(tree: Worktree) -> Worktree:
    if tree.base is None or not gitcmd.is_branch(tree.repo, tree.branch):
        raise errors.WorkspaceError(
            tree.agent, f"has no branch {tree.branch} yet (its worktree is made when it starts)"
        )
    return tree


def _checked_out(repo: Path, branch: str) -> Path | None:
    listing = gitcmd.run(["worktree", "list", "--porcelain"], repo).stdout
    path: Path | None = None
    for line in listing.splitlines():
        if line.startswith("worktree "):
            path = Path(line.removeprefix("worktree "))
        elif line == f"branch refs/heads/{branch}":
            return path
    return None


def _is_ancestor(repo: Path, a: str, b: str) -> bool:
    return gitcmd.run(["merge-base", "--is-ancestor", a, b], repo, check=False).returncode == 0
