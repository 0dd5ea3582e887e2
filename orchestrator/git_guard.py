"""What a worktree agent's sandboxed shell may write in the repository's shared git folder.

The CLI's sandbox keeps a worktree's shared git folder (``<repo>/.git``) writable, so that
``git commit`` can store objects and move the agent's branch, and protects only what makes
git run code (config, hooks, commondir, alternates). The rest is the whole team's and the
operator's: found by review, an agent's own Bash could move the base branch
(``git update-ref refs/heads/main``), make every reader see another commit in place of the
real one (``git replace``, ``info/grafts``) or turn every ``workspaces diff`` into "Binary
files differ" (``info/attributes``). So, for a worktree agent, these are denied as well
(``denyWrite``: bound read-only by the CLI's bubblewrap).

The agent's own branch (``refs/heads/octy/<team>/<agent>``) must stay writable, and the
CLI binds every ``allowWrite`` before every ``denyWrite`` (measured on CLI 2.1.332: a
writable folder inside a denied one stays read-only) and takes no globs or exclusions
there. So ``refs/heads`` itself stays writable and each branch beside ``octy/`` is denied
by name: the names there when the agent starts. A branch only in ``packed-refs`` first
gets its loose file (same commit, what git writes itself) so that the agent cannot shadow
it with a new one. ``refs/heads/octy/`` is left alone: for a denied path that is missing
when a command runs, the CLI mounts a placeholder at its first missing folder, and after
a ``git pack-refs``/``gc`` (which removes loose refs and their empty folders) a denied
teammate's branch would take the agent's own branch folder with it. The cost: agents of
one repository can still move each other's ``octy/`` branches (``workspaces diff`` shows
what a merge would bring).

The same placeholder hits a denied branch whose loose file is gone while the team runs
(deleted, or packed by ``git gc``/``git pack-refs``): during each of the agent's commands
the CLI binds an empty file at its name, which git outside the sandbox too reads as a
broken branch ("ignoring broken ref"). Measured; the next start of the agent takes the
branches as they are then (and removes such a file left behind by a CLI that died).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from orchestrator import gitcmd

# Shared folders and files a worktree agent never writes. The folders are made (empty) with
# the worktree and packed-refs too (git reads an empty one as "no packed refs"): for a
# missing denied path the CLI's sandbox mounts an unreadable placeholder while each command
# runs, and every git command of the agent would fail to read it. HEAD and index are the
# operator's main checkout's.
SHARED_FOLDERS = ("info", "refs/tags", "refs/remotes", "refs/replace", "refs/notes")
SHARED_FILES = ("packed-refs", "HEAD", "index")


def common_dir(repo: Path) -> Path:
    """The repository's shared git folder (``<repo>/.git`` unless moved)."""
    common = gitcmd.run(["rev-parse", "--path-format=absolute", "--git-common-dir"], repo)
    return Path(common.stdout.strip())


def denied(repo: Path, branch: str) -> list[Path]:
    """The paths of ``repo``'s shared git folder the sandbox of the agent working on
    ``branch`` (``octy/<team>/<agent>``) may not write."""
    common = common_dir(repo)
    heads = common / "refs" / "heads"
    mine = Path(branch).parts[0]  # "octy"
    branches = [heads / name for name in _top_names(common, heads) if name != mine]
    return [*(common / f for f in (*SHARED_FOLDERS, *SHARED_FILES)), *branches]


def prepare(repo: Path) -> None:
    """Make what :func:`denied` names exist before the agent runs (see SHARED_FOLDERS)."""
    common = common_dir(repo)
    for folder in SHARED_FOLDERS:
        (common / folder).mkdir(parents=True, exist_ok=True)
    (common / "packed-refs").touch(exist_ok=True)
    _unpack_branches(common)


def _top_names(common: Path, heads: Path) -> list[str]:
    """The first components of the branches, loose or only packed."""
    names: set[str] = set()
    with contextlib.suppress(OSError):
        names.update(entry.name for entry in os.scandir(heads))
    names.update(ref.split("/")[2] for ref, _ in _branches(common))
    return sorted(n for n in names if not n.endswith(".lock"))


def _branches(common: Path) -> list[tuple[str, str]]:
    done = gitcmd.run(
        ["for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/"],
        common,
        check=False,
    )
    pairs = (line.partition(" ") for line in done.stdout.splitlines())
    return [(ref, sha) for ref, _, sha in pairs if ref and sha]


def _unpack_branches(common: Path) -> None:
    """Give every branch that is only in ``packed-refs`` its loose file (see the module
    docstring). Best effort: a file git made meanwhile wins (O_EXCL)."""
    if (common / "reftable").exists():
        return  # no loose refs in a reftable repository
    _remove_stale_placeholders(common / "refs" / "heads")
    for ref, sha in _branches(common):
        path = common / ref
        if path.exists():
            continue
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(f"{sha}\n")


def _remove_stale_placeholders(heads: Path) -> None:
    """Empty files directly in ``refs/heads``: the CLI's placeholder for a denied branch
    that was gone when a command ran (see the module docstring), left behind if the CLI
    died during that command. An empty file is never a valid ref, and git reads it as a
    broken branch ("ignoring broken ref"), hiding the packed one of that name."""
    with contextlib.suppress(OSError), os.scandir(heads) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if (
                    entry.is_file(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_size == 0
                ):
                    os.unlink(entry.path)
