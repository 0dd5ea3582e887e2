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
shadowed by a loose file), and ``refs/heads/octy`` is one symbolic link to
``<common>/octy-refs``, outside ``refs/heads`` and so still writable, where each team has a
plain folder: git follows the link like any folder (measured on git 2.39: commit, branch
-d/-m, pack-refs, gc, fsck, worktree add). In the team's folder, each branch of the team's
other agents is denied by name, as ``<branch>/.octy-deny``, a path below it, because of
what the CLI does with a denied path (measured): an existing file on the way is bound
read-only (a loose branch cannot be written, removed or renamed), and where the path is
missing the CLI binds an empty read-only folder at its first missing part for the length
of each command (a packed branch: no loose file can shadow it; git reads an empty folder
as "no loose ref"). Other teams' folders under ``octy-refs`` are denied whole.

One link, not one per team (an earlier version): after each command, the CLI's sandbox
renames a symbolic link that appeared in a ``.git`` folder since its session began to
``.<name>.claude-sandbox-quarantine-<hex>`` (measured on CLI 2.1.332). A team started in
the repository while another ran lost its link, so all its branches, at the next command
of any agent of the running team. The one link is made when the repository's first team
starts (a sandboxed CLI session already running in the repository would move it aside
the same way: not measured). A ``git gc`` removes the folders its packing emptied, through
the link, and the team's agents could not make theirs again (its mates' placeholders stand
in the way), so each team's folder holds a :data:`KEEP` file, denied to its agents.

The team's other agents are named by the roster, so an agent added while the team runs
changes the others' rules (reload restarts them); a branch an agent made in the team's
folder under a later agent's name is refused at that agent's start (workspaces: no
``octyBase``), so is one planted in the folder of a team yet to start. Stale locks of the
agent's branch are removed at its start (workspaces.clear_stale_locks). Not covered: new
branches of other names in the team's folder or in ``octy-refs`` itself (``octy/x``,
measured), the reflogs but the mates' (``.git/logs``: the base's, other teams'), and the
folder of a team that
started in the same repository after the agent, writable to it until its next start: a
folder made later inside a writable one is writable, and one inside a denied folder stays
read-only even when allowed (measured, above), so no shape of the rules can protect it.

A reftable repository (``git init --ref-format=reftable``) keeps every ref in one set of
files: no branch can be protected alone, so no worktree is made there (:func:`prepare`).
"""

from __future__ import annotations

import errno
import os
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
STORE = "octy-refs"  # <common>/octy-refs/<team>: the teams' branch folders
# In each team's folder: git skips names that start with a dot, and while it is there the
# folder is never empty, so git never removes it (a `git gc` removes the folders its
# packing emptied; the team's agents could not make it again: see the module docstring).
KEEP = ".octy-keep"


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
    store = (common / STORE).resolve()
    others = sorted(p for p in store.iterdir() if p != ours) if store.is_dir() else []
    held: list[Path] = []
    if ours is not None:
        held.append(ours / KEEP)
        prefix = f"refs/heads/{Path(branch).parent.as_posix()}/"
        names = {ref.removeprefix(prefix) for ref in _branches(common, prefix)} | set(mates)
        names.discard(Path(branch).name)
        held += [ours / name / BELOW for name in sorted(names)]
        # Their reflogs too (a mate's shell rewrote or expired them, measured), the same way.
        logs = common / "logs" / "refs" / "heads" / Path(branch).parent
        held += [logs / name / BELOW for name in sorted(names)]
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
    folders and packed-refs :func:`denied` names exist (see SHARED_FOLDERS), make
    ``refs/heads/octy`` the link into :data:`STORE` (folders and links of earlier versions
    moved there, with their branches) and the team's folder there, with its :data:`KEEP`."""
    common = gitcmd.common_dir(repo)
    if (common / "reftable").exists():
        raise errors.WorkspaceError(agent, gitcmd.reftable_reason(repo))
    for folder in SHARED_FOLDERS:
        (common / folder).mkdir(parents=True, exist_ok=True)
    (common / "packed-refs").touch(exist_ok=True)
    (common / "logs").mkdir(exist_ok=True)  # allowed to an agent below the top (below_top)
    ours = common / STORE / _team(branch)
    try:
        _link(common)
        if ours.is_symlink() or (ours.exists() and not ours.is_dir()):
            raise FileExistsError(errno.EEXIST, "not a folder", str(ours))
        ours.mkdir(exist_ok=True)
        (ours / KEEP).touch(exist_ok=True)
    except OSError as exc:
        raise errors.WorkspaceError(
            agent,
            f"cannot make {common / 'refs/heads/octy'} a link into {common / STORE} with the "
            f"team's folder {ours} in it ({exc.strerror or exc}{_named(exc)}): its branches "
            "could not be kept apart from other agents'; fix that path (a branch named "
            "octy, or a file in the way?), then start the agent again",
        ) from exc


def team_folder(common: Path, branch: str) -> Path | None:
    """The folder git keeps ``branch``'s loose ref in, relative to ``common``
    (``octy-refs/<team>``), when ``refs/heads/octy`` is our link into the store; None
    otherwise. Relative: the store and the team's folder are writable to worktree agents,
    so whoever opens it walks down from ``common`` following no link."""
    if _linked(common, _team(branch)) is None:
        return None
    return Path(STORE) / _team(branch)


def _named(exc: OSError) -> str:
    return f": {exc.filename}" if exc.filename else ""


def _team(branch: str) -> str:
    parts = Path(branch).parts  # ("octy", team, agent)
    return parts[1] if len(parts) > 2 else parts[0]


def _linked(common: Path, team: str) -> Path | None:
    """The team's branch folder in the store, if ``refs/heads/octy`` links there."""
    link = common / "refs" / "heads" / "octy"
    store = (common / STORE).resolve()
    if not link.is_symlink() or link.resolve() != store:
        return None
    folder = store / team
    return folder if folder.is_dir() and not folder.is_symlink() else None


def _link(common: Path) -> None:
    """``refs/heads/octy`` as a link to :data:`STORE`. What an earlier version left there
    moves into the store: a team's folder, a link to a team's ``<team>.<random>`` folder
    in the store (renamed ``<team>``), a loose branch ``octy/<name>``."""
    octy = common / "refs" / "heads" / "octy"
    store = common / STORE
    store.mkdir(exist_ok=True)
    if octy.is_symlink():
        if octy.resolve() == store.resolve():
            return
        octy.unlink()  # dangling or leading elsewhere: made again below
    elif octy.is_dir():
        for entry in sorted(octy.iterdir()):
            _adopt(entry, store)
        octy.rmdir()
    os.symlink(os.path.relpath(store, octy.parent), octy)


def _adopt(entry: Path, store: Path) -> None:
    dest = store / entry.name
    if not entry.is_symlink():
        if os.path.lexists(dest):
            raise FileExistsError(errno.EEXIST, "already in the store", str(dest))
        os.rename(entry, dest)
        return
    target = entry.resolve()
    if target.is_dir() and target.parent == store.resolve() and target != dest.resolve():
        if os.path.lexists(dest):
            raise FileExistsError(errno.EEXIST, "already in the store", str(dest))
        os.rename(target, dest)
    entry.unlink()


def _branches(common: Path, prefix: str) -> list[str]:
    done = gitcmd.run(["for-each-ref", "--format=%(refname)", prefix], common, check=False)
    return [ref for ref in done.stdout.splitlines() if ref.startswith(prefix)]
