"""What ``workspaces merge``/``diff``/``remove`` check before they act (found by review).

A worktree agent's sandboxed shell can write the repository's shared parts (refs,
``info/``), and git overwrites ignored files without asking. So before anything
changes: the repository must hold nothing that makes git show other objects than the
real ones; the merge must not write over a file the base's checkout does not track;
the agent's worktree must not hold commits its branch lacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator import gitcmd
from orchestrator.workspaces import Worktree


def tampering(repo: Path) -> list[str]:
    """What in ``repo`` makes git show or merge other objects than the real ones: replace
    refs (ignored by our git anyway, but ``git push`` and the operator's git honour them),
    a grafts file, an ``info/attributes`` with rules (octy writes none; ``* -diff`` turned
    every ``workspaces diff`` into "Binary files differ")."""
    found = gitcmd.run(
        ["for-each-ref", "--format=%(refname)", "refs/replace/"], repo
    ).stdout.split()
    info = gitcmd.common_dir(repo) / "info"
    if (info / "grafts").exists() or (info / "grafts").is_symlink():
        found.append(str(info / "grafts"))
    attributes = info / "attributes"
    if attributes.is_symlink() or (attributes.exists() and _has_rules(attributes)):
        found.append(str(attributes))
    return found


def _has_rules(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True  # unreadable: it cannot be vouched for
    return any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines())


def in_the_way(checkout: Path, paths: list[str]) -> list[str]:
    """Those of ``paths`` (from the top) that ``checkout`` holds as a file git does not
    track there, untracked or ignored, or under such a folder or file: another agent's
    live worktree (``.octy/`` is ignored), the operator's ``.env``."""
    # No --exclude-standard: ignored files are "others" too. --directory lists a folder
    # with nothing tracked in it once (node_modules/, a nested worktree) instead of
    # walking it.
    out = gitcmd.run(
        ["ls-files", "-z", "--others", "--directory", "--no-empty-directory"], checkout
    ).stdout
    untracked = {e for e in out.split("\0") if e}
    hit = []
    for path in paths:
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(p in untracked or f"{p}/" in untracked for p in prefixes):
            hit.append(path)
    return hit


@dataclass(frozen=True)
class Head:
    """Where an agent's worktree is: on which branch, at which commit."""

    branch: str | None  # the branch checked out there (None: a detached HEAD)
    commit: str | None  # None: no commit yet
    lacking: int  # commits at HEAD that the agent's own branch lacks
    on_no_branch: int  # commits at HEAD that no branch, tag or remote holds

    def on(self, branch: str) -> bool:
        return self.branch == branch

    def ref(self) -> str:
        """What names this HEAD in a git command."""
        return self.branch or (self.commit or "HEAD")[:12]

    def shown(self) -> str:
        if self.branch is not None:
            return f"branch {self.branch}"
        return f"a detached HEAD at {(self.commit or '?')[:12]}"


def head_of(tree: Worktree) -> Head | None:
    """The worktree's HEAD (None when the worktree is not made)."""
    if not tree.exists():
        return None
    ref = gitcmd.run(["symbolic-ref", "--quiet", "HEAD"], tree.path, check=False)
    name = ref.stdout.strip() if ref.returncode == 0 else ""
    branch = name.removeprefix("refs/heads/") if name.startswith("refs/heads/") else None
    done = gitcmd.run(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], tree.path, check=False)
    commit = done.stdout.strip() if done.returncode == 0 else None
    if commit is None:
        return Head(branch, None, 0, 0)
    own = f"refs/heads/{tree.branch}"
    lacking = (
        _count(tree.path, [commit, "--not", own])
        if gitcmd.is_branch(tree.repo, tree.branch)
        else _count(tree.path, [commit])
    )
    loose = _count(tree.path, [commit, "--not", "--branches", "--tags", "--remotes"])
    return Head(branch, commit, lacking, loose)


def _count(cwd: Path, revs: list[str]) -> int:
    return int(gitcmd.run(["rev-list", "--count", *revs], cwd).stdout.strip() or 0)
