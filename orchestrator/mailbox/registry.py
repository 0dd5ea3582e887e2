"""The agent registry: who exists, what each handles, whether it is alive.

Names follow the roster's rule (:mod:`orchestrator.names`): ``user`` and
``supervisor`` are the team's own rows, and only the supervisor writes its row
(:meth:`RegistryOps.register_supervisor`). Rows the supervisor manages carry
``meta.supervised``; while that supervisor runs, ``unregister`` refuses them.
"""

from __future__ import annotations

from typing import Any

from orchestrator import errors
from orchestrator.lockfile import holder_pid
from orchestrator.mailbox.core import MailboxCore
from orchestrator.mailbox.model import (
    AGENT_COLUMNS,
    KEEP,
    SUPERVISOR,
    AgentInfo,
    Keep,
    agent_from_row,
    encode_meta,
    meta_of,
)
from orchestrator.names import RESERVED_NAMES, name_problem


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
        replaces the old one when given, and is kept when ``None``. A reserved or
        malformed name raises :class:`~orchestrator.errors.InvalidName`."""
        problem = name_problem(name) if isinstance(name, str) else "a name is a string"
        if problem is not None:
            raise errors.InvalidName(str(name), problem)
        return self._upsert(name, description, pid=pid, state=state, meta=meta)

    def register_supervisor(self, pid: int, meta: dict[str, Any]) -> AgentInfo:
        """The supervisor's own row (state ``running``): for the supervisor only."""
        return self._upsert(
            SUPERVISOR, "the team's supervisor", pid=pid, state="running", meta=meta
        )

    def _upsert(
        self,
        name: str,
        description: str,
        *,
        pid: int | None,
        state: str,
        meta: dict[str, Any] | None,
    ) -> AgentInfo:
        meta_text = None if meta is None else encode_meta(meta)
        now = self.now()
        with self._write() as conn:
            self._quiet()  # registry rows end no wait
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
            self._quiet()  # registry rows end no wait
            row = conn.execute("SELECT meta FROM agents WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise errors.RecipientUnknown(name, self._known_names(conn))
            merged = meta_of(row[0])
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
                (
                    state,
                    pid is KEEP,
                    None if pid is KEEP else pid,
                    encode_meta(merged),
                    heartbeat,
                    self.now(),
                    name,
                ),
            )

    def unregister(self, name: str, *, force: bool = False) -> bool:
        """Remove a participant; True if it was registered. Messages already addressed to it
        stay and wait for its return. Refused (:class:`~orchestrator.errors.ParticipantSupervised`)
        for an agent a running supervisor manages, unless ``force`` (the supervisor itself,
        applying a roster edit); the reserved rows are refused always."""
        if name in RESERVED_NAMES:
            raise errors.InvalidName(name, name_problem(name) or "reserved", "unregister")
        if not force:
            info = self.agent(name)
            sup = holder_pid(self.path) if info and info.meta.get("supervised") else None
            if sup is not None:
                raise errors.ParticipantSupervised(name, sup)
        with self._write() as conn:
            self._quiet()  # registry rows end no wait
            return conn.execute("DELETE FROM agents WHERE name = ?", (name,)).rowcount > 0

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
