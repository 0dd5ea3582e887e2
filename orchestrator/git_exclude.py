"""Lines octy-orchestrate adds to a repository's ``info/exclude`` (a local file, never a
tracked one): the worktrees' folder, and the claude CLI sandbox's placeholders.

The placeholders (review E, finding 6): for each protected name that does not exist in
the working folder, the CLI's sandbox binds ``/dev/null`` there while a command runs, so
the agent's own ``git status`` lists them and ``git add -A``, ``git add .`` and
``git stash -u`` abort ("can only add regular files"): an unattended agent's usual
``git add -A; git commit`` committed nothing. Ignored names are skipped by those commands.
``info/exclude`` is the repository's (git reads no per-worktree one), so the main
checkout ignores them too: only names the agent's branch does not track are added, and
ignoring never hides a tracked file.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from orchestrator import gitcmd

# Measured on the bundled CLI 2.1.332 (the /dev/null binds of one sandboxed command in a
# fresh worktree): relative to the agent's working folder.
CLI_PLACEHOLDERS = (
    ".bash_profile",
    ".bashrc",
    ".gitconfig",
    ".gitmodules",
    ".idea",
    ".mcp.json",
    ".profile",
    ".ripgreprc",
    ".vscode",
    ".zprofile",
    ".zshrc",
    ".claude/agents",
    ".claude/commands",
    ".claude/hooks",
    ".claude/launch.json",
    ".claude/loop.md",
    ".claude/output-styles",
    ".claude/routines",
    ".claude/scheduled_tasks.json",
    ".claude/settings.json",
    ".claude/settings.local.json",
    ".claude/skills",
    ".claude/workflows",
)
WORKTREES_HEADER = "# octy-orchestrate: agents' worktrees"
PLACEHOLDERS_HEADER = "# octy-orchestrate: the claude CLI sandbox's placeholders"
_SPECIAL = re.compile(r"([\\*?\[\]!# ])")


def add(exclude: Path, header: str, lines: list[str]) -> None:
    """Append ``lines`` that ``exclude`` does not hold yet, under ``header``."""
    existing = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
    have = set(existing.splitlines())
    new = [line for line in lines if line not in have]
    if not new:
        return
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with exclude.open("a", encoding="utf-8") as f:
        prefix = "" if existing.endswith("\n") or not existing else "\n"
        f.write(prefix + "\n".join([header, *new]) + "\n")


def placeholder_lines(worktree: Path, offset: Path) -> list[str]:
    """Anchored patterns for the placeholders in ``worktree/offset`` that the worktree's
    branch does not track (a tracked name, or a folder holding tracked files, is left to
    git). None for a folder name git patterns cannot spell (a newline)."""
    folder = PurePosixPath(offset.as_posix())
    names = [(folder / name).as_posix().removeprefix("./") for name in CLI_PLACEHOLDERS]
    if any("\n" in n or "\r" in n for n in names):
        return []
    done = gitcmd.run(
        ["ls-files", "-z", "--", *(f":(literal){n}" for n in names)], worktree, check=False
    )
    tracked = done.stdout.split("\0") if done.returncode == 0 else names
    return [
        "/" + _SPECIAL.sub(r"\\\1", name)
        for name in names
        if not any(t == name or t.startswith(name + "/") for t in tracked)
    ]
