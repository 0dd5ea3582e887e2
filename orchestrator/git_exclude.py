"""Ignore rules octy-orchestrate adds for git: the worktrees' folder in the repository's
``info/exclude`` (a local file, never a tracked one), and the claude CLI sandbox's
placeholders for the agents' own git.

The placeholders (review E, finding 6): for each protected name that does not exist in
the working folder, the CLI's sandbox binds ``/dev/null`` there while a command runs, so
the agent's own ``git status`` lists them and ``git add -A``, ``git add .`` and
``git stash -u`` abort ("can only add regular files"): an unattended agent's usual
``git add -A; git commit`` committed nothing. Ignored names are skipped by those commands.
They exist only inside the agent's commands, so only the agent's git is told to ignore
them: through its session's ``core.excludesFile`` (sandbox.settings), a file per agent
under ``<repository>/.octy/excludes/`` holding the user's own global ignore rules and
these. ``info/exclude`` would have hidden a new ``.claude/settings.json`` or ``.mcp.json``
in the operator's main checkout too (git reads no per-worktree exclude file).
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from orchestrator import gitcmd

# Measured on the bundled CLI 2.1.332 (the /dev/null binds of one sandboxed command in a
# fresh worktree, and .claude/.cc-writes, an empty folder it makes and binds read-only, which
# `git stash -u` then failed to remove: "Device or resource busy"): relative to the agent's
# working folder.
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
    ".claude/.cc-writes",
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


def agent_file(repo: Path, team: str, agent: str) -> Path:
    """Where the ignore rules of ``agent``'s git are (see the module docstring)."""
    return repo / ".octy" / "excludes" / team / agent


def write_agent_file(path: Path, worktree: Path, offset: Path) -> None:
    """The user's global ignore rules (git reads one ``core.excludesFile``, and this one
    takes its place for the agent), then the placeholders in ``worktree/offset`` that the
    branch does not track. Written whole at each start (a temp file renamed over)."""
    text = "".join(
        [
            "# octy-orchestrate: this agent's git ignores these (core.excludesFile)\n",
            "# your global ignore rules, copied at the agent's start:\n",
            _user_rules(worktree),
            "\n# the claude CLI sandbox's placeholders:\n",
            "".join(f"{line}\n" for line in placeholder_lines(worktree, offset)),
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _user_rules(repo: Path) -> str:
    done = gitcmd.run(["config", "--type=path", "--get", "core.excludesFile"], repo, check=False)
    name = done.stdout.strip()
    if not name:
        xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        name = str(Path(xdg) / "git" / "ignore")
    try:
        with open(name, encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 20)
    except OSError:
        return ""
    return text if text.endswith("\n") or not text else text + "\n"


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
