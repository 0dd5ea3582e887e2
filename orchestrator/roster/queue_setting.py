"""The roster's ``queue:`` setting: where the team's queue lives when it is not the
embedded SQLite ``database``, a NATS JetStream server or cluster.

Either one address, a list of addresses (a cluster), or a mapping::

    queue: nats://10.0.0.5:4222
    queue:
      servers: [nats://n1:4222, nats://n2:4222, nats://n3:4222]
      user: octy                      # or token: ${NATS_TOKEN}, or creds: octy.creds
      password: ${NATS_PASSWORD}
      tls: {ca: ca.pem, cert: client.pem, key: client-key.pem}
      replicas: 3                     # copies of the team's bucket in the cluster
      namespace: myteam               # bucket name; default: the team name
      agent_lease: 15s                # a dead supervisor's agents are free again after this

Secrets come from ``${VAR}``s; they never appear in ``config`` output or a repr.
Read from agents.yaml by :mod:`orchestrator.roster._queue` (this module holds only the
validated value, so the roster's model can name it without importing the parser).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.redact import REDACTED


@dataclass(frozen=True)
class QueueSetting:
    """A validated ``queue:`` (``NatsConfig.from_setting`` turns it into client settings)."""

    servers: tuple[str, ...]
    namespace: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    creds: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    replicas: int = 1
    agent_lease_s: float = 15.0
    """How long an agent's lease lasts without renewal (nats/lease.py): how soon a dead
    supervisor's agents can run elsewhere."""

    def __repr__(self) -> str:
        return f"QueueSetting({self.to_dict()})"

    def to_dict(self) -> dict[str, Any]:
        """For ``config``: secrets shown as '***', passwords in URLs too."""
        out: dict[str, Any] = {
            "servers": [re.sub(r"//[^@/]*@", f"//{REDACTED}@", s) for s in self.servers],
            "namespace": self.namespace,
            "replicas": self.replicas,
            "agent_lease_s": self.agent_lease_s,
        }
        if self.user is not None:
            out["user"] = self.user
        for key, value in (("password", self.password), ("token", self.token)):
            if value is not None:
                out[key] = REDACTED
        for key, path in (
            ("creds", self.creds),
            ("tls_ca", self.tls_ca),
            ("tls_cert", self.tls_cert),
            ("tls_key", self.tls_key),
        ):
            if path is not None:
                out[key] = str(path)
        return out


def default_namespace(team: str) -> str:
    """The team's name as a bucket name (letters, digits, '-', '_')."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", team)[:64] or "octy"
