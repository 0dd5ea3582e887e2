"""Reading the roster's ``queue:`` setting into a :class:`QueueSetting` (what it may
hold: :mod:`orchestrator.roster.queue_setting`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

from orchestrator.roster import _coerce as c
from orchestrator.roster._limits import shown_path
from orchestrator.roster._yaml import YList, YMap, join
from orchestrator.roster.queue_setting import QueueSetting, default_namespace

QUEUE_KEYS: Final = (
    "servers",
    "user",
    "password",
    "token",
    "creds",
    "tls",
    "replicas",
    "namespace",
    "agent_lease",
)
TLS_KEYS: Final = ("ca", "cert", "key")
_URL: Final = re.compile(r"^(nats|tls)://([^\s/@]+@)?[^\s/@:]+(:\d{1,5})?/?$")
_NAMESPACE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def queue_setting(value: Any, where: c.Where, team: str) -> Any:
    """``queue:`` -> QueueSetting, None when absent, or INVALID after reporting."""
    if value is None:
        return None
    if isinstance(value, str | YList):
        value_map: dict[str, Any] = {"servers": value}
        lines: dict[str, int | None] = {"servers": where.line}
    elif isinstance(value, YMap):
        value_map = dict(value)
        lines = {k: value.line_of(k) for k in value}
        for key in value:
            if key not in QUEUE_KEYS:
                where.report(
                    value.line_of(key),
                    join(where.key, str(key)),
                    f"unknown key '{key}'{c.did_you_mean(str(key), QUEUE_KEYS)}; "
                    f"valid keys are {', '.join(QUEUE_KEYS)}",
                )
                return c.INVALID
    else:
        return c.wrong_type("a nats:// address, a list of them, or a mapping", value, where)

    def at(key: str) -> c.Where:
        return c.Where(join(where.key, key), lines.get(key, where.line), where.report, where.base)

    servers = _servers(value_map.get("servers"), at("servers"))
    namespace = value_map.get("namespace", default_namespace(team))
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        namespace = at("namespace").error(
            f"namespace {namespace!r} must be 1-64 letters, digits, '-' or '_'"
        )
    replicas = value_map.get("replicas", 1)
    if replicas not in (1, 3, 5) or isinstance(replicas, bool):
        replicas = at("replicas").error(f"replicas must be 1, 3 or 5, not {replicas!r}")
    agent_lease = c.duration()(value_map.get("agent_lease", 15.0), at("agent_lease"))
    if agent_lease is not c.INVALID and not 1.0 <= agent_lease <= 3600.0:
        agent_lease = at("agent_lease").error(
            f"agent_lease must be between 1s and 1h, not {agent_lease:g}s"
        )
    texts = {k: _text(value_map.get(k), at(k)) for k in ("user", "password", "token")}
    if texts["password"] is not None and texts["user"] is None:
        texts["password"] = at("password").error("a password needs a user")
    if texts["token"] is not None and texts["user"] is not None:
        texts["token"] = at("token").error("give either user/password or token, not both")
    creds = _file(value_map.get("creds"), at("creds"))
    tls = _tls(value_map.get("tls"), at("tls"))
    checked = (servers, namespace, replicas, agent_lease, creds, tls, *texts.values())
    if any(v is c.INVALID for v in checked):
        return c.INVALID
    return QueueSetting(
        servers=servers,
        namespace=namespace,
        user=texts["user"],
        password=texts["password"],
        token=texts["token"],
        creds=creds,
        tls_ca=tls.get("ca"),
        tls_cert=tls.get("cert"),
        tls_key=tls.get("key"),
        replicas=replicas,
        agent_lease_s=agent_lease,
    )


def _servers(value: Any, where: c.Where) -> Any:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        return where.error("servers: give one nats://host:4222 address or a list of them")
    for item in items:
        if not isinstance(item, str) or not _URL.match(item):
            return where.error(
                f"{item!r} is not a NATS address; write nats://host:4222 (tls://host:4222 for TLS)"
            )
    return tuple(items)


def _text(value: Any, where: c.Where) -> Any:
    if value is None:
        return None
    if not isinstance(value, str) or value == "":
        return where.error("must be a non-empty string (use ${VAR} for secrets)")
    return value


def _file(value: Any, where: c.Where) -> Any:
    if value is None:
        return None
    if not isinstance(value, str) or value == "":
        return where.error("must be a file path")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else where.base / path
    if not path.is_file():
        return where.error(f"file not found: {shown_path(path)}")
    return path


def _tls(value: Any, where: c.Where) -> Any:
    if value is None:
        return {}
    if not isinstance(value, YMap):
        return c.wrong_type("a mapping with ca, cert and key files", value, where)
    out: dict[str, Any] = {}
    for key in value:
        if key not in TLS_KEYS:
            return where.error(f"unknown key '{key}' in tls; valid keys are ca, cert, key")
        out[key] = _file(
            value[key], c.Where(join(where.key, key), value.line_of(key), where.report, where.base)
        )
    if c.INVALID in out.values():
        return c.INVALID
    if ("cert" in out) != ("key" in out):
        return where.error("tls: cert and key go together")
    return out
