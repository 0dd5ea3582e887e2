"""Which keys exist, how each is read, what an agent gets when a key is left out,
and how team defaults and an agent's own settings combine."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.roster import _budget
from orchestrator.roster import _coerce as c
from orchestrator.roster import _work as w
from orchestrator.roster._files import existing_directory, prompt_file
from orchestrator.roster._refs import NameRefs, name_refs, names_or_everyone
from orchestrator.roster.model import (
    DEFAULT_MODEL_RETRIES,
    PERMISSION_MODES,
    RESTART_POLICIES,
    AgentSpec,
    Backoff,
    Env,
    FrozenDict,
)
from orchestrator.roster.work import DEFAULT_APPROVAL_TIMEOUT_S, Workspace

TOP_KEYS = (
    "name",
    "defaults",
    "database",
    "logs",
    "log_max_bytes",
    "log_backups",
    "agents",
    "budget",  # team-wide, see _budget.py
    "prices",  # per model: what the CLI does not price (or prices otherwise), see _prices.py
    "queue",  # NATS JetStream instead of the SQLite database, see queue_setting.py
)

AGENT_FIELDS: Mapping[str, c.Coercer] = {
    "description": c.text,
    "prompt": c.text,
    "prompt_file": prompt_file,
    "model": c.optional_text,
    "fallback_model": c.optional_text,
    "tools": c.name_list,
    "disallowed_tools": c.name_list,
    "permission_mode": c.choice(PERMISSION_MODES, "permission mode", "modes", optional=True),
    "cwd": existing_directory,
    "env": c.env_map,
    "max_turns": c.integer(1, optional=True),
    "max_budget_usd": c.positive_number,
    "restart": c.choice(RESTART_POLICIES, "restart policy", "policies"),
    "max_restarts": c.integer(0),
    "restart_window": c.duration(),
    "backoff": c.backoff,
    "depends_on": name_refs,
    "can_message": names_or_everyone,
    "turn_timeout": c.duration(optional=True),
    "connect_timeout": c.duration(),
    "model_retries": c.integer(0),
    **_budget.AGENT_FIELDS,
    "sandbox": c.boolean,
    "inherit_secrets": c.boolean,
    # --- issue 11: workspaces, owned paths, approvals, subagents (roster/_work.py) ---
    "workspace": w.workspace,
    "owns": w.owns,
    "approve": w.approve,
    "approver": w.approver,
    "approval_timeout": c.duration(),
    "subagents": w.subagents,
}
AGENT_KEYS = tuple(AGENT_FIELDS)
PROMPT_KEYS = ("prompt", "prompt_file")

# What an agent gets for a key that neither it nor `defaults` sets
# (cwd: the roster's folder; prompt/prompt_file: required).
BUILT_IN: Mapping[str, Any] = {
    "description": "",
    "model": None,
    "fallback_model": None,
    "tools": (),
    "disallowed_tools": (),
    "permission_mode": None,
    "env": Env(),
    "max_turns": None,
    "max_budget_usd": None,
    "restart": "on-failure",
    "max_restarts": 5,
    "restart_window": 60.0,
    "backoff": Backoff(),
    "depends_on": None,
    "can_message": None,
    "turn_timeout": 600.0,
    "connect_timeout": 60.0,
    "model_retries": DEFAULT_MODEL_RETRIES,
    **_budget.BUILT_IN,
    "sandbox": True,
    "inherit_secrets": False,
    # --- issue 11 ---
    "workspace": Workspace(),
    "owns": None,
    "approve": (),
    "approver": "user",
    "approval_timeout": DEFAULT_APPROVAL_TIMEOUT_S,
    "subagents": FrozenDict(),
}


def misplaced(key: Any, prefix: str) -> str:
    """A team setting under an agent, or an agent setting at the top: say where it goes."""
    if prefix == "" and key in AGENT_FIELDS:
        return (
            f"; '{key}' is an agent setting: put it under 'defaults:' (for every agent) "
            "or under one agent"
        )
    if prefix != "" and key == "name":
        return "; an agent's name is its key under 'agents:'"
    if prefix != "" and key in TOP_KEYS:
        return f"; '{key}' is a team setting: put it at the top level of the file"
    return ""


def merge(defaults: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """An agent's settings over the team's: own values win, ``env`` merges key by key,
    and an agent's own prompt or prompt_file replaces whichever the team gave."""
    values = {k: v for k, v in defaults.items() if v is not c.INVALID}
    if any(k in own for k in PROMPT_KEYS):
        for k in PROMPT_KEYS:
            values.pop(k, None)
    team_env, own_env = values.get("env"), own.get("env")
    values.update(own)
    if isinstance(team_env, Env) and isinstance(own_env, Env):
        values["env"] = Env({**team_env, **own_env})
    return values


def make_spec(name: str, values: Mapping[str, Any], line: int, folder: Path) -> AgentSpec:
    """The AgentSpec for settings that passed validation (no INVALID left)."""
    v = {**BUILT_IN, **values}
    source = v.get("prompt_file")
    deps, talk = v["depends_on"], v["can_message"]
    return AgentSpec(
        name=name,
        description=v["description"],
        prompt=source.text if source is not None else v["prompt"],
        prompt_file=source.path if source is not None else None,
        model=v["model"],
        fallback_model=v["fallback_model"],
        tools=v["tools"],
        disallowed_tools=v["disallowed_tools"],
        permission_mode=v["permission_mode"],
        cwd=v.get("cwd", folder),
        env=v["env"],
        max_turns=v["max_turns"],
        max_budget_usd=v["max_budget_usd"],
        restart=v["restart"],
        max_restarts=v["max_restarts"],
        restart_window_s=v["restart_window"],
        backoff=v["backoff"],
        depends_on=deps.unique() if isinstance(deps, NameRefs) else (),
        can_message=talk.unique() if isinstance(talk, NameRefs) else None,
        turn_timeout_s=v["turn_timeout"],
        connect_timeout_s=v["connect_timeout"],
        model_retries=v["model_retries"],
        sandbox=v["sandbox"],
        inherit_secrets=v["inherit_secrets"],
        # --- issue 11 ---
        workspace=w.plain(v["workspace"]),
        owns=w.plain(v["owns"]),
        approve=v["approve"],
        approver=w.plain(v["approver"]),
        approval_timeout_s=v["approval_timeout"],
        subagents=v["subagents"],
        line=line,
        budget=v["budget"],
        context_window=v["context_window"],
        compact_at=v["compact_at"],
    )
