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
there. So ``refs/heads`` itself stays writable and each branch outside ``octy/`` is denied
by name, as ``<branch>/.octy-deny``, a path below it, because of what the CLI does with a
denied path (measured): an existing file on the way is bound read-only (a loose branch
cannot be written, removed or renamed), and where the path is missing the CLI binds an
empty read-only folder at its first missing part for the length of each command. A
branch that is only in ``packed-refs`` (or was deleted, or packed by ``git gc`` while the
team runs) thus has an empty folder at its name: the agent cannot make a loose ref there
to shadow it, and git outside the sandbox reads an empty folder there as "no loose ref"
(a placeholder at the branch's own name would be an empty file, which git reads as a
broken branch: the operator's ``main`` broken during every command of the agents).

Not covered: branches made after the agent started (until its next start), and the
``octy/`` branches, so agents of one repository can still move each other's branches
(``workspaces diff`` shows what a merge would bring).
"""

from __future__ import annotations

from pathlib import Path

from orchestrator import gitcmd

# Shared folders and files a worktree agent never writes. The folders are made (empty) with
# the worktree and packed-refs too (git reads an empty one as "no packed refs"): for a
# missing denied file the CLI's sandbox binds a placeholder that git cannot read while each
# command runs. HEAD and index are the operator's main checkout's.
SHARED_FOLDERS = ("info", "refs/tags", "refs/remotes", "refs/replace", "refs/notes")
SHARED_FILES = ("packed-refs", "HEAD", "index")
BELOW = ".octy-deny"  # the name below each denied branch (see the module docstring)


def denied(repo: Path, branch: str) -> list[Path]:
    """The paths of ``repo``'s shared git folder the sandbox of the agent working on
    ``branch`` (``octy/<team>/<agent>``) may not write."""
    common = gitcmd.common_dir(repo)
    ours = f"refs/heads/{Path(branch).parts[0]}/"  # "refs/heads/octy/"
    branches = [common / ref / BELOW for ref in _branches(common) if not ref.startswith(ours)]
    if (common / "reftable").exists():
        branches = []  # no loose refs to bind: a reftable repository's branches are open
    return [*(common / f for f in (*SHARED_FOLDERS, *SHARED_FILES)), *branches]


def prepare(repo: Path) -> None:
    """Make the shared folders and packed-refs :func:`denied` names exist before the agent
    runs (see SHARED_FOLDERS)."""
    common = gitcmd.common_dir(repo)
    for folder in SHARED_FOLDERS:
        (common / folder).mkdir(parents=True, exist_ok=True)
    (common / "packed-refs").touch(exist_ok=True)


def _branches(common: Path) -> list[str]:
    done = gitcmd.run(["for-each-ref", "--format=%(refname)", "refs/heads/"], common, check=False)
    return [ref for ref in done.stdout.splitlines() if ref.startswith("refs/heads/")]
