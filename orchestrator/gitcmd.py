"""The ``git`` binary, run for us: one function, typed errors, no shell.

Workspaces and the roster's checks use git itself rather than a reimplementation
(issue 11): what git says about a repository is the truth the user also sees.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

from orchestrator.errors import GitError

# Never prompt (no terminal behind us), never page, and ignore the user's global hooks
# only where git allows it per command; the repository's own config applies as usual.
# GIT_NO_REPLACE_OBJECTS: a worktree agent's shell can write refs/replace/ (found by
# review: `git replace EVIL GOOD` made `workspaces diff` and the merge show GOOD while
# the base really got EVIL, which `git push` ships). Our git sees the real objects.
_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_PAGER": "cat",
    "LC_ALL": "C",
    "GIT_NO_REPLACE_OBJECTS": "1",
}
TIMEOUT_S = 60.0

MINIMUM = (2, 38)
"""The oldest git the code works with: ``merge-tree --write-tree`` (2.38) computes a merge
without touching a file; ``rev-parse --path-format=absolute`` needs 2.31. An older git
would fail deep inside (or, before 2.31, write a file named after an option)."""

_CHECKED: dict[str, tuple[int, ...]] = {}
_CHECKED_GUARD = threading.Lock()


def find_git(path: str | None = None) -> str | None:
    """The git program on ``path`` (default: ``$PATH``), looked for in its absolute folders
    only: an empty or relative entry (``PATH=/usr/bin:``, ``.``) names the folder a git
    runs in, and those are folders agents write (a repository, a worktree, a folder on a
    command line): a ``git`` planted there ran, outside every sandbox, with the
    supervisor's environment (measured with the approvals hook's git, before this)."""
    path = os.environ.get("PATH", os.defpath) if path is None else path
    folders = [d for d in path.split(os.pathsep) if os.path.isabs(d)]
    return shutil.which("git", path=os.pathsep.join(folders)) if folders else None


def git_binary() -> str:
    """The git on PATH (:func:`find_git`), checked once per binary to be at least
    :data:`MINIMUM`."""
    found = find_git()
    if found is None:
        raise GitError(["git"], None, "the git program is not installed (apt-get install git)")
    with _CHECKED_GUARD:
        known = _CHECKED.get(found)
    if known is None:
        known = _version(found)
        with _CHECKED_GUARD:
            _CHECKED[found] = known
    if known < MINIMUM:
        have = ".".join(map(str, known)) or "an unknown version"
        raise GitError(
            ["--version"],
            None,
            f"{found} is git {have}; octy-orchestrate's worktrees need git "
            f"{'.'.join(map(str, MINIMUM))} or later (git merge-tree --write-tree): "
            "install a newer git or put one first on PATH",
        )
    return found


def _version(binary: str) -> tuple[int, ...]:
    """``git version 2.39.5`` -> (2, 39, 5); () when git does not say."""
    try:
        done = subprocess.run(
            [binary, "--version"],
            env={**os.environ, **_ENV},
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(["--version"], None, str(exc)) from exc
    found = re.search(r"git version (\d+)\.(\d+)(?:\.(\d+))?", done.stdout)
    return tuple(int(n) for n in found.groups() if n is not None) if found else ()


def run(args: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``git ARGS`` in ``cwd``; GitError (with git's own words) if it fails and ``check``."""
    argv = [git_binary(), *args]
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env={**os.environ, **_ENV},
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(args, None, str(exc)) from exc
    if check and done.returncode != 0:
        raise GitError(args, done.returncode, (done.stderr or done.stdout).strip())
    return done


def toplevel(folder: Path) -> Path | None:
    """The root of the work tree holding ``folder``, or None outside any repository."""
    if not folder.is_dir():
        return None
    done = run(["rev-parse", "--show-toplevel"], folder, check=False)
    if done.returncode != 0 and "refstorage" in done.stderr.lower():
        # A reftable repository, which this git is too old to read (before 2.45): said as
        # such, not as "not a git repository".
        raise GitError(["rev-parse", "--show-toplevel"], done.returncode, reftable_reason(folder))
    return Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None


def reftable_reason(where: Path) -> str:
    """Why no worktree agent works in a reftable repository (see git_guard)."""
    return (
        f"the repository of {where} stores its refs in reftable format, where the sandbox "
        "cannot keep an agent's shell off the other branches (it could move the base or "
        "another agent's branch): convert it with `git refs migrate --ref-format=files` "
        "(git 2.46 or later), or use 'workspace: shared'"
    )


def current_branch(repo: Path) -> str | None:
    """The branch checked out in ``repo`` (None on a detached HEAD)."""
    done = run(["symbolic-ref", "--quiet", "--short", "HEAD"], repo, check=False)
    return done.stdout.strip() or None if done.returncode == 0 else None


def is_branch(repo: Path, name: str) -> bool:
    """Whether ``name`` is a branch (``refs/heads/NAME`` holding a commit). Not any
    revision: ``main~1``, ``main^`` and ``main@{1}`` resolved through ``refs/heads/main~1``
    and a worktree was branched from them; its merge then failed late ("refusing to
    update ref with bad name")."""
    ref = f"refs/heads/{name}"
    if run(["check-ref-format", ref], repo, check=False).returncode != 0:
        return False
    if run(["show-ref", "--verify", "--quiet", ref], repo, check=False).returncode != 0:
        return False
    done = run(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], repo, check=False)
    return done.returncode == 0


def commit_of(repo: Path, branch: str) -> str:
    """The commit id ``branch`` holds now: read once, then used by id, so a branch moved
    meanwhile (a worktree agent can write refs) cannot swap what was checked."""
    return run(["rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}"], repo).stdout.strip()


def branches(repo: Path) -> list[str]:
    done = run(["for-each-ref", "--format=%(refname:short)", "refs/heads"], repo, check=False)
    return done.stdout.split() if done.returncode == 0 else []


def common_dir(repo: Path) -> Path:
    """The repository's shared git folder (``<repo>/.git`` unless moved; a worktree's
    points there too)."""
    common = run(["rev-parse", "--path-format=absolute", "--git-common-dir"], repo)
    return Path(common.stdout.strip())
