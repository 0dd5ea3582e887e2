"""Roster settings for agents that work on code side by side (issue 11):
``workspace``, ``owns``, ``approve``/``approver``/``approval_timeout`` and ``subagents``.

Kept apart from :mod:`orchestrator.roster.model` so that other roster keys can
grow there without touching these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WORKSPACE_TYPES: tuple[str, ...] = ("shared", "worktree")
FILE_TOOLS: tuple[str, ...] = ("Write", "Edit", "MultiEdit", "NotebookEdit")
DEFAULT_APPROVAL_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Workspace:
    """``shared`` (the agent works in its ``cwd``) or ``worktree`` (a git worktree of the
    repository holding its ``cwd``, on its own branch, branched from ``base``).
    ``base`` None means the repository's current branch when the worktree is made."""

    type: str = "shared"
    base: str | None = None

    @property
    def is_worktree(self) -> bool:
        return self.type == "worktree"

    def to_value(self) -> Any:
        if not self.is_worktree:
            return "shared"
        return {"type": "worktree", "base": self.base} if self.base else "worktree"


@dataclass(frozen=True)
class Subagent:
    """One of the SDK's ``AgentDefinition``s an agent may delegate to inside its session."""

    name: str
    description: str
    prompt: str
    tools: tuple[str, ...] | None  # None: the parent agent's tools
    model: str | None
    # Where its tools were written, for the roster check against its agent's tools. Not
    # compared: an edit elsewhere in the file shifts it (hot reload).
    tools_line: int | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "prompt": self.prompt,
            "tools": None if self.tools is None else list(self.tools),
            "model": self.model,
        }
