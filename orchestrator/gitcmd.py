"""The ``git`` binary, run for us: one function, typed errors, no shell.

Workspaces and the roster's checks use git itself rather than a reimplementation
(issue 11): what git says about a repository is the truth the user also sees.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from orchestrator.errors import GitError

# Never prompt (no terminal behind us), never page, and ignore the user's global hooks
# only where git allows it per command; the repository's own config applies as usual.
_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "LC_ALL": "C"}
TIMEOUT_S = 60.0


def git_binary() -> str:
    found = shutil.which("git")
    if found is None:
        raise GitError(["git"], None, "the git program is not installed (apt-get install git)")
    return found


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
    return Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None


def current_branch(repo: Path) -> str | None:
    """The branch checked out in ``repo`` (None on a detached HEAD)."""
    done = run(["symbolic-ref", "--quiet", "--short", "HEAD"], repo, check=False)
    return done.stdout.strip() or None if done.returncode == 0 else None


def is_branch(repo: Path, name: str) -> bool:
    done = run(
        ["rev-parse", "--verify", "--quiet", f"refs/heads/{name}^{{commit}}"], repo, check=False
    )
    return done.returncode == 0


def branches(repo: Path) -> list[str]:
    done = run(["for-each-ref", "--format=%(refname:short)", "refs/heads"], repo, check=False)
    return done.stdout.split() if done.returncode == 0 else []
