"""octy-orchestrate: a supervisor for teams of Claude Code agents on one machine."""

from __future__ import annotations

__version__ = "0.1.0"
