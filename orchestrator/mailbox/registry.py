"""The agent registry: who exists, what each handles, whether it is alive."""

from __future__ import annotations

import json
from typing import Any

from orchestrator import errors
from orchestrator.mailbox.core import MailboxCore
from orchestrator.mailbox.model import (
    AGENT_COLUMNS,
    KEEP,
    AgentInfo,
    Keep,
    agent_from_row,
    encode_meta,
)


class RegistryOps(MailboxCore):
    def register(
        self,
        name: str,
        description: str = "",
        *,
        pid: int | None = None,
        state: str = "registered",
        meta: dict[str, Any] | None = None,
    ) -> AgentInfo:
        """Add or replace an agent (upsert). Keeps the first ``registered_at``; ``meta``
        replaces the old one when given, and is kept when ``None``."""
        if not name or not name.strip():
            raise ValueError("agent name must be a non-empty string")
        meta_text = None if meta is None else encode_meta(meta)
        now = self.now()
        with self._write() as conn:
            conn.execute(
                """
                INSERT INTO agents
                    (name, description, pid, state, heartbeat_at, registered_at, meta)
                VALUES (?, ?, ?, ?, ?, ?, coalesce(?, '{}'))
                ON CONFLICT (name) DO UPDATE SET
                    description = excluded.description,
                    pid = excluded.pid,
                    state = excluded.state,
                    heartbeat_at = excluded.heartbeat_at,
                    meta = coalesce(?, agents.meta)
                """,
                (name, description, pid, state, now, now, meta_text, meta_text),
            )
            row = conn.execute(
                f"SELECT {AGENT_COLUMNS} FROM agents WHERE name = ?", (name,)
            ).fetchone()
        return agent_from_row(row)

    def update_agent(
        self,
        name: str,
        *,
        state: str | None = None,
        pid: int | Keep | None = KEEP,
        meta: dict[str, Any] | None = None,
        heartbeat: bool = True,
    ) -> None:
        """Change some fields of a registered agent; the others stay. ``pid=None`` clears
        the pid (the process is gone); leave it out to keep it. ``meta`` keys are merged
        into the existing meta. Unknown name -> RecipientUnknown."""
        with self._write() as conn:
            row = conn.execute("SELECT meta FROM agents WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise errors.RecipientUnknown(name, self._known_names(conn))
            merged = json.loads(row[0])
            if meta:
                merged.update(meta)
            conn.execute(
                """
                UPDATE agents SET
                    state = coalesce(?, state),
                    pid = CASE WHEN ? THEN pid ELSE ? END,
                    meta = ?,
                    heartbeat_at = CASE WHEN ? THEN ? ELSE heartbeat_at END
                WHERE name = ?
                """,
                (state, pid is KEEP, None if pid is KEEP else pid, encode_meta(merged),
                 heartbeat, self.now(), name),
            )

    def unregister(self, name: str) -> None:
        """Remove an agent. Messages already addressed to it stay and wait for its return."""
        with self._write() as conn:
            conn.execute("DELETE FROM agents WHERE name = ?", (name,))

    def agents(self) -> list[AgentInfo]:
        """Every registered agent, by name."""
        with self._read() as conn:
            rows = conn.execute(f"SELECT {AGENT_COLUMNS} FROM agents ORDER BY name").fetchall()
        return [agent_from_row(r) for r in rows]

    def agent(self, name: str) -> AgentInfo | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {AGENT_COLUMNS} FROM agents WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else agent_from_row(row)
