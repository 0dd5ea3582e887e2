"""A git worktree per agent (``workspace: worktree``), through the ``git`` binary.

Where: ``<repository>/.octy/worktrees/<team>/<agent>``, on branch
``octy/<team>/<agent>``, branched from the workspace's ``base`` (default: the
repository's current branch when the worktree is first made). ``/.octy/`` is
added to the repository's ``.git/info/exclude`` (never to a tracked file) so
the main checkout does not list the worktrees as untracked. The base is kept
in the branch's git config (``branch.<branch>.octyBase``) for ``workspaces``.

Promises: one worktree per agent; a restarted or resumed agent gets the same
one (:func:`ensure` reuses it); ``down`` never deletes one (only
``workspaces remove`` does). Each worktree is ``git worktree lock``-ed, so a
``git worktree prune`` will not drop it while its folder is briefly missing.

Why not the CLI's own ``--worktree`` (checked on the bundled CLI 2.1.332, see
README): it names the branch ``worktree-<name>``, branches from
``origin/<default>`` or HEAD only (no arbitrary base), and asks to remove the
worktree when an interactive session ends.
"""

from __future__ import annotations

import contextvars
import hashlib
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from orchestrator import errors, git_exclude, git_guard, gitcmd
from orchestrator.roster import AgentSpec, Roster

log = structlog.get_logger()

FOLDER = Path(".octy") / "worktrees"
# Agents of one team start in parallel threads, and git's own lock files (config.lock,
# worktrees/) refuse a second writer at once instead of waiting: two worktrees made at the
# same moment lost one agent's recorded base. One lock per repository in this process.
_REPO_LOCKS: dict[Path, threading.Lock] = {}
_REPO_LOCKS_GUARD = threading.Lock()


def _repo_lock(repo: Path) -> threading.Lock:
    with _REPO_LOCKS_GUARD:
        return _REPO_LOCKS.setdefault(repo.resolve(), threading.Lock())


_UNSAFE = re.compile(r"[^a-z0-9._-]+")


MAX_SLUG = 100
"""Longest team segment in a worktree's path and branch. A team name of 300 characters
(a long folder's name is the default) made a path segment past the file system's 255
bytes: every start of an agent with a worktree crashed (ENAMETOOLONG) until it failed."""


def slug(name: str) -> str:
    """A team name as one safe path segment and ref component. With a digest of the whole
    name whenever making it safe changed it: a long name (cut), capitals or non-ASCII
    letters ('команда-фронт', 'フロント' and '前端' were all ``team``, 'App' and 'app'
    both ``app``), and spaces or other characters ('my team', 'my/team' and 'my-team'
    were all ``my-team``): two teams in one repository shared their agents' worktrees
    and branches (found by two reviews). A name that is already a safe segment keeps it,
    so existing worktrees are found again."""
    if _legacy_slug(name) == name:
        return name
    return _digested(name)


def _digested(name: str) -> str:
    cut = _cleaned(name)[: MAX_SLUG - 9].rstrip("-.") or "team"
    return f"{cut}-{_digest(name)}"


def _legacy_slug(name: str) -> str:
    """The segment every name got before capitals and non-ASCII letters had a digest."""
    cleaned = _cleaned(name)
    if len(cleaned) > MAX_SLUG:
        cleaned = f"{cleaned[: MAX_SLUG - 9].rstrip('-.')}-{_digest(name)}"
    return cleaned.removesuffix(".lock") or "team"  # git refuses '..' and '.lock' in refs


def _cleaned(name: str) -> str:
    return re.sub(r"\.{2,}", ".", _UNSAFE.sub("-", name.lower())).strip("-.")


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]


@dataclass(frozen=True)
class Worktree:
    """Where one agent's worktree lives (whether or not it exists yet)."""

    agent: str
    repo: Path  # the main repository's top level
    path: Path
    branch: str
    base: str | None  # the recorded or configured base; None until known
    offset: Path  # the agent's cwd relative to the repository top level
    team: str = ""  # the team's exact name, recorded as the branch's octyTeam

    @property
    def folder(self) -> Path:
        """The agent's working folder inside its worktree."""
        return self.path / self.offset

    def exists(self) -> bool:
        # A worktree's .git is a file ("gitdir: ..."); a .git folder is a repository of
        # its own (an agent's `git init` in a plain folder), not this worktree.
        return (self.path / ".git").is_file()


def locate(spec: AgentSpec, roster: Roster) -> Worktree | None:
    """The worktree ``spec`` works in, or None for a shared workspace."""
    if not spec.workspace.is_worktree:
        return None
    top = gitcmd.toplevel(spec.cwd)
    if top is None:
        raise errors.WorkspaceError(spec.name, f"not a git repository: {spec.cwd}")
    repo = _main_repository(top)
    offset = Path(spec.cwd).resolve().relative_to(top.resolve())
    team = _team_segment(repo, spec.name, roster.name)
    branch = f"octy/{team}/{spec.name}"
    base = spec.workspace.base or _recorded_base(repo, branch)
    path = repo / FOLDER / team / spec.name
    return Worktree(spec.name, repo, path, branch, base, offset, roster.name)


def _team_segment(repo: Path, agent: str, name: str) -> str:
    """:func:`slug`, except where an earlier version made the agent's worktree under
    another segment. A name that made it safe changed (a capital in the team's name, the
    default for a folder named MyProject; 'my team') keeps the branch it had without a
    digest, with its work, unless that branch is recorded as another team's. A name that
    is already safe gets the digest after all when its plain segment's branch is recorded
    as another team's (an earlier 'my team' took ``octy/my-team/a``, then came 'my-team')."""
    team, old = slug(name), _legacy_slug(name)
    if team == old:
        if _recorded(repo, f"octy/{team}/{agent}", "octyTeam") in (None, name):
            return team
        return _digested(name)
    if gitcmd.is_branch(repo, f"octy/{team}/{agent}"):
        return team
    branch = f"octy/{old}/{agent}"
    if gitcmd.is_branch(repo, branch) and _recorded(repo, branch, "octyTeam") in (None, name):
        return old
    return team


def prepare_links(roster: Roster) -> None:
    """Before any agent of the team starts: make the branch link and the team's folder
    (git_guard.prepare) in the repository of every worktree agent of the roster, whether
    it starts now or later. Measured on CLI 2.1.332: after each command, a sandboxed
    CLI renames a symbolic link that appeared in the repository's ``.git`` since its
    session began, so the link made when a worktree agent first started (``start w``
    while a shared agent of the team ran in the repository, or agents started in
    parallel) was moved aside at the shared agent's next command, and the worktree
    agent's branch with it. A problem here is left for the agent's own start to report."""
    for spec in roster.agents.values():
        if not spec.workspace.is_worktree:
            continue
        try:
            tree = locate(spec, roster)
            if tree is not None:
                with _repo_lock(tree.repo):
                    git_guard.prepare(tree.repo, tree.branch, tree.agent)
        except (errors.OrchestratorError, OSError):
            continue


def agent_folder(spec: AgentSpec, roster: Roster) -> Path:
    """The folder the agent's claude runs in: its cwd, or the same place in its worktree
    (made now if missing)."""
    tree = locate(spec, roster)
    return spec.cwd if tree is None else ensure(tree).folder


def ensure(tree: Worktree) -> Worktree:
    """Make the worktree unless it exists; return it with its base known."""
    with _repo_lock(tree.repo):
        return _ensure(tree)


def _ensure(tree: Worktree) -> Worktree:
    # First: the team's branch folder must be a link before `worktree add -b` writes
    # the branch (see git_guard).
    git_guard.prepare(tree.repo, tree.branch, tree.agent)
    made = _ensure_made(tree)
    _exclude_placeholders(made)
    if tree.team and _recorded(tree.repo, tree.branch, "octyTeam") is None:
        _set_config(tree.repo, f"branch.{tree.branch}.octyTeam", tree.team, tree.agent)
    return made


def _ensure_made(tree: Worktree) -> Worktree:
    if tree.exists():
        if tree.base is None and (base := gitcmd.current_branch(tree.repo)) is not None:
            # made by a run that died before recording its base: record it now
            _set_config(tree.repo, f"branch.{tree.branch}.octyBase", base, tree.agent)
            return replace(tree, base=base)
        return tree
    base = tree.base or gitcmd.current_branch(tree.repo)
    if base is None:
        raise errors.WorkspaceError(
            tree.agent, f"{tree.repo} has no current branch; give the workspace a base"
        )
    _exclude(tree.repo)
    tree.path.parent.mkdir(parents=True, exist_ok=True)
    _move_aside(tree)
    # A worktree folder deleted by hand: git still has it registered (and locked). Only
    # that registration is overridden (-f -f), never with a global `git worktree prune`:
    # it also dropped the user's own worktrees whose disk was not mounted (review E).
    force = ["-f", "-f"] if _registered(tree) else []
    if gitcmd.is_branch(tree.repo, tree.branch):  # removed earlier, branch kept: reuse it
        _check_made_by_us(tree)
        gitcmd.run(["worktree", "add", *force, str(tree.path), tree.branch], tree.repo)
    else:
        gitcmd.run(["worktree", "add", *force, "-b", tree.branch, str(tree.path), base], tree.repo)
    _set_config(tree.repo, f"branch.{tree.branch}.octyBase", base, tree.agent)
    gitcmd.run(
        ["worktree", "lock", "--reason", f"octy-orchestrate agent {tree.agent}", str(tree.path)],
        tree.repo,
        check=False,  # already locked is fine
    )
    return replace(tree, base=base)


def clear_stale_locks(spec: AgentSpec, roster: Roster) -> list[Path]:
    """Remove the git lock files that would block the agent's commits, as its CLI is
    about to start: its branch's ``<agent>.lock`` in the team's branch folder and its
    worktree's ``index.lock`` and ``HEAD.lock``. Returns the paths removed.

    git never breaks a lock: one left by a git killed mid-commit (the agent stopped or
    restarted, its CLI killed, its commands with it) or planted by a team mate's shell
    (the team's folder is writable to it, measured) made every later commit of the agent
    fail ("File exists") until someone deleted it by hand. Here no command of the agent
    can be running (its CLI is not started yet), and no other agent takes these locks;
    a git of the operator's on that branch or worktree at this very moment fails instead
    of writing (its lock is gone when it renames it). The worktree's own git folder is
    found from the repository's ``worktrees/`` list, never from the ``.git`` file in the
    worktree, which the agent can rewrite. Nothing else is touched: a mate's lock is
    cleared at the mate's start, the operator's locks (``.git/index.lock``…) are the
    operator's.

    The folders on the way (``octy-refs/<team>``, ``worktrees/<id>``) and the ``gitdir``
    files read are writable to worktree agents: each is opened from the repository's git
    folder without following a symbolic link, and a ``gitdir`` that is not a regular file
    is skipped (a link there sent the removal into any folder its target named, a FIFO
    blocked the agent's start for good; measured before this)."""
    tree = locate(spec, roster)
    if tree is None or not tree.exists():
        return []
    return _clear_locks(tree)


def _clear_locks(tree: Worktree) -> list[Path]:
    common = gitcmd.common_dir(tree.repo)
    found: list[tuple[Path, str]] = []  # (folder under common, lock name)
    if (team := git_guard.team_folder(common, tree.branch)) is not None:
        found.append((team, f"{Path(tree.branch).name}.lock"))
    if (admin := _admin_folder(common, tree)) is not None:
        found += [(admin, "index.lock"), (admin, "HEAD.lock")]
    removed = []
    for folder, name in found:
        try:
            fd = _open_below(common, folder)
        except OSError:
            continue  # not a folder of ours any more: nothing followed
        try:
            mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                os.unlink(name, dir_fd=fd)
                removed.append(common / folder / name)
        except OSError:
            continue  # left as it is: git names it when it blocks a commit
        finally:
            os.close(fd)
    if removed:
        log.warning(
            "stale_git_lock_removed",
            agent=tree.agent,
            paths=[str(p) for p in removed],
            reason="left by a git that did not finish (killed?) or by another agent's "
            "shell; it would block every commit of the agent",
        )
    return removed


def _open_below(common: Path, relative: Path) -> int:
    """A descriptor of the folder ``common/relative``, each part of ``relative`` opened
    without following a symbolic link (OSError if one is a link or not a folder)."""
    fd = os.open(common, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in relative.parts:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_below(common: Path, relative: Path, limit: int = 4096) -> str | None:
    """The start of the regular file ``common/relative`` (no link followed, a FIFO or a
    device never opened for reading), or None."""
    try:
        folder = _open_below(common, relative.parent)
    except OSError:
        return None
    try:
        fd = os.open(relative.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except OSError:
        return None
    finally:
        os.close(folder)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit).decode("utf-8", errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _admin_folder(common: Path, tree: Worktree) -> Path | None:
    """``worktrees/<id>`` (relative to ``common``) of ``tree``: the one whose ``gitdir``
    names its ``.git`` file. git writes there the real path of the worktree's ``.git``;
    the ``.git`` itself (the agent's to rewrite or swap for a link) is not resolved."""
    mine = Path(os.path.realpath(tree.path)) / ".git"
    try:
        folders = sorted(p.name for p in (common / "worktrees").iterdir())
    except OSError:
        return None
    for name in folders:
        named = _read_below(common, Path("worktrees") / name / "gitdir")
        if named and Path(named.strip()) == mine:
            return Path("worktrees") / name
    return None


CONFIG_WAIT_S = 300.0
"""How long a start waits for ``.git/config.lock`` to go. While a command of any worktree
agent of the repository runs, the CLI's sandbox keeps a placeholder file there (it
protects ``.git/config``; measured on CLI 2.1.332), so every ``git config`` write fails
("could not lock config file"): an agent added or started while a mate ran a command
failed its start 6 times in a second and was given up ("failed"), for good."""


GIVE_UP: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar(
    "octy_workspace_give_up", default=None
)
"""Set by an agent's runner around the thread that makes its folder (anyio's threads run
in a copy of the caller's context): true once the agent is asked to stop, which ends the
config wait (:func:`_set_config`). Measured before it: ``octy stop`` (and ``down``) of an
agent whose start waited for ``.git/config.lock`` did not return for the whole
:data:`CONFIG_WAIT_S`, the thread being no task a stop could cancel."""


def _set_config(repo: Path, key: str, value: str, agent: str) -> None:
    """``git config KEY VALUE``, waiting while the config file is locked (see
    :data:`CONFIG_WAIT_S`) unless the agent is asked to stop (:data:`GIVE_UP`); other
    failures at once."""
    deadline = time.monotonic() + CONFIG_WAIT_S
    delay, told = 0.05, False
    give_up = GIVE_UP.get()
    while True:
        done = gitcmd.run(["config", key, value], repo, check=False)
        if done.returncode == 0:
            return
        locked = "could not lock config file" in done.stderr
        if not locked or time.monotonic() >= deadline:
            raise errors.GitError(["config", key, value], done.returncode, done.stderr.strip())
        if give_up is not None and give_up():
            raise errors.WorkspaceError(
                agent, f"stopped while waiting for {gitcmd.common_dir(repo) / 'config.lock'}"
            )
        if not told:
            told = True
            log.info(
                "git_config_locked",
                agent=agent,
                path=str(gitcmd.common_dir(repo) / "config.lock"),
                reason="a sandboxed agent's command may be running (the CLI keeps a "
                "placeholder there meanwhile); waiting for it to end",
            )
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _check_made_by_us(tree: Worktree) -> None:
    """A branch at the agent's name that we did not make: a team mate's shell can make
    branches in the team's folder (git_guard), and one named after an agent added later
    would have been taken up as that agent's, with whatever commits it planted there. We
    record the base in the git config, which no agent's shell can write."""
    if _recorded_base(tree.repo, tree.branch) is not None:
        return
    raise errors.WorkspaceError(
        tree.agent,
        f"its branch {tree.branch} exists but was not made by octy-orchestrate (no "
        f"branch.{tree.branch}.octyBase in the repository's config): another agent's shell "
        f"may have made it. Read it (git log {tree.branch}), then delete it (git branch -D "
        f"{tree.branch}) or, to keep it, record its base (git config "
        f"branch.{tree.branch}.octyBase BASE), and start the agent again",
    )


def _move_aside(tree: Worktree) -> None:
    """A folder at the worktree's path that is not a worktree (made again as a plain folder
    by the agent's next write after a `workspaces remove` or an `rm -rf`, found by review:
    `git worktree add` refused it and the agent restarted until it failed) is renamed to
    ``<agent>.orphan-<UTC time>`` beside it, so nothing in it is lost; an empty one is
    used as it is."""
    path = tree.path
    if not os.path.lexists(path) or (
        path.is_dir() and not path.is_symlink() and not any(path.iterdir())
    ):
        return
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = path.with_name(f"{path.name}.orphan-{stamp}")
    n = 1
    while os.path.lexists(dest):
        n += 1
        dest = path.with_name(f"{path.name}.orphan-{stamp}-{n}")
    os.rename(path, dest)
    log.warning(
        "worktree_moved_aside",
        agent=tree.agent,
        path=str(path),
        moved_to=str(dest),
        reason="the folder was not a git worktree; the worktree is made again on its branch",
    )


def _registered(tree: Worktree) -> bool:
    """Whether git has a worktree registered at ``tree.path`` (its folder being gone). A
    WorkspaceError when its branch is checked out in another worktree: forcing the add
    would check it out twice."""
    done = gitcmd.run(["worktree", "list", "--porcelain", "-z"], tree.repo, check=False)
    mine, found = tree.path.resolve(), False
    for record in done.stdout.split("\0\0"):
        fields = record.strip("\0").split("\0")
        where = Path(fields[0].removeprefix("worktree ")) if fields[0] else None
        if where is None:
            continue
        if where.resolve() == mine:
            found = True
        elif f"branch refs/heads/{tree.branch}" in fields:
            raise errors.WorkspaceError(
                tree.agent,
                f"its branch {tree.branch} is checked out in {where}: check out another "
                "branch there, then start the agent again",
            )
    return found


def _main_repository(top: Path) -> Path:
    """The main work tree of the repository ``top`` belongs to (an agent whose cwd is
    itself a worktree still gets its worktree beside the others)."""
    common = gitcmd.run(["rev-parse", "--path-format=absolute", "--git-common-dir"], top)
    git_dir = Path(common.stdout.strip())
    return git_dir.parent if git_dir.name == ".git" else top


def _recorded_base(repo: Path, branch: str) -> str | None:
    return _recorded(repo, branch, "octyBase")


def _recorded(repo: Path, branch: str, key: str) -> str | None:
    done = gitcmd.run(["config", "--get", f"branch.{branch}.{key}"], repo, check=False)
    return done.stdout.strip() or None


def _exclude(repo: Path) -> None:
    exclude = gitcmd.common_dir(repo) / "info" / "exclude"
    git_exclude.add(exclude, git_exclude.WORKTREES_HEADER, [f"/{FOLDER.parts[0]}/"])


def exclude_file(tree: Worktree) -> Path:
    """The ``core.excludesFile`` of the agent's git (see git_exclude)."""
    return git_exclude.agent_file(tree.repo, tree.path.parent.name, tree.agent)


def _exclude_placeholders(tree: Worktree) -> None:
    git_exclude.write_agent_file(exclude_file(tree), tree.path, tree.offset)
