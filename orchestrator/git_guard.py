"""What a worktree agent's sandboxed shell may write in the repository's shared git folder.

The CLI's sandbox keeps a worktree's shared git folder (``<repo>/.git``) writable, so that
``git commit`` can store objects and move the agent's branch, and protects only what makes
git run code (config, hooks, commondir, alternates). The rest is the whole team's and the
operator's: found by review, an agent's own Bash could move the base branch
(``git update-ref refs/heads/main``), make every reader see another commit in place of the
real one (``git replace``, ``info/grafts``) or turn every ``workspaces diff`` into "Binary
files differ" (``info/attributes``). So, for a worktree agent, these are denied as well
(``denyWrite``: bound read-only by the CLI's bubblewrap).

Branches. The CLI binds every ``allowWrite`` before every ``denyWrite`` (measured on CLI
2.1.332: a writable folder inside a denied one stays read-only) and takes no globs or
exclusions, and git writes a branch as ``<name>.lock`` in the branch's folder, renamed
over ``<name>``: denying branches one by one left every branch made after the agent
started (and every ``octy/`` branch) open to it. So the whole of ``refs/heads`` is denied
(no branch can be made, moved or deleted there, loose or packed: a packed one cannot be
shadowed by a loose file) and the team's own folder ``refs/heads/octy/<team>`` is a
symbolic link to ``<common>/octy-refs/<team>.<random>``, outside ``refs/heads`` and so
still writable: git follows it like any folder (measured on git 2.39: commit, branch -d/-m,
pack-refs, gc, fsck, worktree add). In that folder, each branch of the team's other
agents is denied by name, as ``<branch>/.octy-deny``, a path below it, because of what
the CLI does with a denied path (measured): an existing file on the way is bound
read-only (a loose branch cannot be written, removed or renamed), and where the path is
missing the CLI binds an empty read-only folder at its first missing part for the length
of each command (a packed branch: no loose file can shadow it; git reads an empty folder
as "no loose ref"). Other teams' folders under ``octy-refs`` are denied whole. The random
part keeps an agent from planting branches in a folder a team yet to start would adopt.

The team's other agents are named by the roster, so an agent added while the team runs
changes the others' rules (reload restarts them); a branch an agent made in the team's
folder under a later agent's name is refused at that agent's start (workspaces: no
``octyBase``). Not covered: new branches of other names in the team's folder, a stale
``<mate>.lock`` there (the mate's commits fail naming it), the reflogs, and the folder of
a team that started in the same repository after the agent.

A reftable repository (``git init --ref-format=reftable``) keeps every ref in one set of
files: no branch can be protected alone, so no worktree is made there (:func:`prepare`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from orchestrator import errors, gitcmd

# Shared folders and files a worktree agent never writes. The folders are made (empty) with
# the worktree and packed-refs too (git reads an empty one as "no packed refs"): for a
# missing denied file the CLI's sandbox binds a placeholder that git cannot read while each
# command runs. HEAD and index are the operator's main checkout's.
SHARED_FOLDERS = ("info", "refs/heads", "refs/tags", "refs/remotes", "refs/replace", "refs/notes")
SHARED_FILES = ("packed-refs", "HEAD", "index")
BELOW = ".octy-deny"  # the name below each denied branch (see the module docstring)
STORE = "octy-refs"  # <common>/octy-refs/<team>.<random>: the teams' branch folders


def denied(repo: Path, branch: str, mates: Iterable[str] = ()) -> list[Path]:
    """The paths of ``repo``'s shared git folder the sandbox of the agent working on
    ``branch`` (``octy/<team>/<agent>``) may not write. ``mates``: the names of the
    roster's other worktree agents, whose branches are denied even before they exist
    (agents start in parallel: the first one's rules were made before the others had a
    branch; an agent added later changes these rules, and reload restarts the agent)."""
    common = gitcmd.common_dir(repo)
    shared = [common / f for f in (*SHARED_FOLDERS, *SHARED_FILES)]
    if (common / "reftable").exists():
        return [*shared, common / "reftable"]  # prepare refuses these; nothing writable
    ours = _linked(common, _team(branch))
    store = common / STORE
    others = sorted(p for p in store.iterdir() if p != ours) if store.is_dir() else []
    held: list[Path] = []
    if ours is not None:
        prefix = f"refs/heads/{Path(branch).parent.as_posix()}/"
        names = {ref.removeprefix(prefix) for ref in _branches(common, prefix)} | set(mates)
        names.discard(Path(branch).name)
        held = [ours / name / BELOW for name in sorted(names)]
    return [*shared, *others, *held]


def below_top(repo: Path, worktree: Path, branch: str) -> tuple[list[Path], list[Path]]:
    """``(allowWrite, denyWrite)`` for an agent whose folder is below its worktree's top.

    The CLI's sandbox makes the shared git folder writable only when the agent's folder is
    a worktree's top (measured on CLI 2.1.332: with ``cwd`` in a subfolder, ``git commit``
    failed on ``.git/worktrees/<id>/index.lock: Read-only file system``). So what a commit
    writes is allowed here, no more: the objects, the reflogs, the worktree's own git
    folder and the team's branch folder (:func:`denied` still holds inside it). Outside a
    folder it allows, the CLI adds none of its own git rules, so the files there that
    would make git read elsewhere are denied here: the worktree's ``commondir``,
    ``gitdir``, ``config.worktree`` and lock, the objects' alternates. Empty lists while
    the worktree is not made."""
    done = gitcmd.run(["rev-parse", "--absolute-git-dir"], worktree, check=False)
    if not worktree.is_dir() or done.returncode != 0:
        return [], []
    common, own = gitcmd.common_dir(repo), Path(done.stdout.strip())
    ours = _linked(common, _team(branch))
    allow = [common / "objects", common / "logs", own, *([ours] if ours else [])]
    deny = [own / n for n in ("commondir", "gitdir", "config.worktree", "locked")]
    deny.append(common / "objects" / "info" / "alternates")
    return allow, deny


def prepare(repo: Path, branch: str, agent: str) -> None:
    """Before the agent's worktree is made: refuse a reftable repository, make the shared
    folders and packed-refs :func:`denied` names exist (see SHARED_FOLDERS), and make the
    team's branch folder a link into :data:`STORE` (an existing folder is moved there,
    with its branches)."""
    common = gitcmd.common_dir(repo)
    if (common / "reftable").exists():
        raise errors.WorkspaceError(agent, gitcmd.reftable_reason(repo))
    for folder in SHARED_FOLDERS:
        (common / folder).mkdir(parents=True, exist_ok=True)
    (common / "packed-refs").touch(exist_ok=True)
    (common / "logs").mkdir(exist_ok=True)  # allowed to an agent below the top (below_top)
    try:
        _link(common, _team(branch))
    except OSError as exc:
        raise errors.WorkspaceError(
            agent,
            f"cannot make {common / 'refs/heads/octy' / _team(branch)} a link into "
            f"{common / STORE} ({exc.strerror or exc}): its branches could not be kept apart "
            "from other agents'; fix that path (a branch named octy/<team> is in the way?), "
            "then start the agent again",
        ) from exc


def _team(branch: str) -> str:
    parts = Path(branch).parts  # ("octy", team, agent)
    return parts[1] if len(parts) > 2 else parts[0]


def _linked(common: Path, team: str) -> Path | None:
    """The team's branch folder in the store, if ``refs/heads/octy/<team>`` links there."""
    link = common / "refs" / "heads" / "octy" / team
    if not link.is_symlink():
        return None
    target = (link.parent / os.readlink(link)).resolve()
    store = (common / STORE).resolve()
    return target if target.parent == store and target.is_dir() else None


def _link(common: Path, team: str) -> None:
    if _linked(common, team) is not None:
        return
    octy = common / "refs" / "heads" / "octy"
    link = octy / team
    if link.is_symlink():
        link.unlink()  # dangling or leading elsewhere: made again below
    octy.mkdir(parents=True, exist_ok=True)
    (common / STORE).mkdir(exist_ok=True)
    folder = common / STORE / f"{team}.{secrets.token_hex(8)}"
    if link.is_dir():
        os.rename(link, folder)  # made by an earlier version: its loose branches move along
    else:
        folder.mkdir()
    os.symlink(os.path.relpath(folder, octy), link)


def _branches(common: Path, prefix: str) -> list[str]:
    done = gitcmd.run(["for-each-ref", "--format=%(refname)", prefix], common, check=False)
    return [ref for ref in done.stdout.splitlines() if ref.startswith(prefix)]
