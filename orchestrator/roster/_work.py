"""Reading and cross-checking the issue-11 keys: ``workspace``, ``owns``, ``approve``,
``approver``, ``approval_timeout``, ``subagents`` (objects in :mod:`.work`).

Values keep where they were written (:class:`Placed`) so the checks across
agents (owns that overlap, a worktree outside git, an unknown base) can name
the file, line and key like every other roster error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from orchestrator import globs
from orchestrator.errors import GitError
from orchestrator.names import MAX_NAME_LEN
from orchestrator.roster import _coerce as c
from orchestrator.roster._files import prompt_file
from orchestrator.roster._yaml import YMap, join
from orchestrator.roster.model import AGENT_NAME_RE, FrozenDict
from orchestrator.roster.work import WORKSPACE_TYPES, Subagent, Workspace

# The CLI's permission-rule syntax: `Tool` or `Tool(specifier)` (Bash(git push:*), Write,
# mcp__server__tool, Edit(src/**)).
RULE_RE = re.compile(r"(?P<tool>[A-Za-z_][A-Za-z0-9_-]*)(?:\((?P<spec>.*)\))?", re.DOTALL)
_SUBAGENT_KEYS = ("description", "prompt", "prompt_file", "tools", "model")


@dataclass(frozen=True)
class Placed:
    """A coerced value and where it was written."""

    value: Any
    key: str
    line: int | None


def plain(value: Any) -> Any:
    return value.value if isinstance(value, Placed) else value


def workspace(value: Any, where: c.Where) -> Any:
    """``shared``, ``worktree``, or ``{type: worktree, base: BRANCH}``."""
    if isinstance(value, str):
        if value not in WORKSPACE_TYPES:
            return where.error(
                f"unknown workspace '{value}'; valid: shared, worktree, "
                "or {type: worktree, base: BRANCH}" + c.did_you_mean(value, WORKSPACE_TYPES)
            )
        return Placed(Workspace(str(value)), where.key, where.line)
    if not isinstance(value, dict):
        return c.wrong_type("'shared', 'worktree' or {type: worktree, base: BRANCH}", value, where)
    kind, base = value.get("type", "worktree"), value.get("base")
    for key in value:
        if key not in ("type", "base"):
            line = value.line_of(key) if hasattr(value, "line_of") else where.line
            hint = c.did_you_mean(str(key), ("type", "base")) or "; valid keys are type, base"
            return where.error(f"unknown key '{key}'{hint}", line)
    if kind not in WORKSPACE_TYPES:
        return where.error(f"unknown workspace type {c.describe(kind)}; valid: shared, worktree")
    if base is not None and (not isinstance(base, str) or not base.strip()):
        return c.wrong_type("a branch name for 'base'", base, where)
    if kind == "shared" and base is not None:
        return where.error("'base' applies to a worktree; write {type: worktree, base: ...}")
    return Placed(Workspace(str(kind), str(base) if base else None), where.key, where.line)


def owns(value: Any, where: c.Where) -> Any:
    """Path globs this agent alone may write with the file tools (null: anywhere)."""
    if value is None:
        return None
    patterns = c.name_list(value, where)
    if patterns is c.INVALID:
        return c.INVALID
    for index, pattern in enumerate(patterns):
        line = value.line_of(index) if hasattr(value, "line_of") else where.line
        if ".." in pattern.split("/"):
            return where.error(
                f"'{pattern}': a pattern may not contain '..'; write it from the agent's "
                "folder downwards, or as an absolute path",
                line,
            )
        if pattern.count("**") > MAX_ANY_DEPTH:
            return where.error(
                f"'{pattern[:60]}': more than {MAX_ANY_DEPTH} '**' in one pattern; write "
                "fewer (one '**/' already spans any number of folders)",
                line,
            )
    return Placed(tuple(patterns), where.key, where.line)


MAX_ANY_DEPTH = 4
"""'**' per owns pattern. The check that two agents' owns do not overlap tries each '**/'
matching no folder, 2**n forms per pattern: 30 of them hung `config`, `up` and the running
team's reload (a thread that never returned)."""


def approve(value: Any, where: c.Where) -> Any:
    """Permission rules, in the CLI's own syntax, whose calls wait for an approver."""
    rules = c.name_list(value, where)
    if rules is c.INVALID:
        return c.INVALID
    for index, rule in enumerate(rules):
        if RULE_RE.fullmatch(rule.strip()) is None:
            line = value.line_of(index) if hasattr(value, "line_of") else where.line
            return where.error(
                f"'{rule}' is not a permission rule; write Tool or Tool(specifier), like "
                "Bash(git push:*), Write, Edit(src/**) or mcp__server__tool",
                line,
            )
    return tuple(r.strip() for r in rules)


def approver(value: Any, where: c.Where) -> Any:
    name = c.text(value, where)
    return name if name is c.INVALID else Placed(name, where.key, where.line)


def subagents(value: Any, where: c.Where) -> Any:
    """``{name: {description, prompt | prompt_file, tools, model}}``."""
    if value is None:
        return FrozenDict()
    if not isinstance(value, dict):
        return c.wrong_type("a mapping of subagent name to its settings", value, where)
    result: dict[str, Subagent] = {}
    ok = True
    for name, raw in value.items():
        line = value.line_of(name) if hasattr(value, "line_of") else where.line
        sub = replace(where, key=join(where.key, str(name)), line=line)
        made = _subagent(name, raw, sub)
        if made is c.INVALID:
            ok = False
        else:
            result[name] = made
    return FrozenDict(result) if ok else c.INVALID


def _subagent(name: Any, raw: Any, where: c.Where) -> Any:
    if not isinstance(name, str) or not AGENT_NAME_RE.fullmatch(name):
        return where.error(
            f"invalid subagent name {c.describe(name)}; use [a-z0-9][a-z0-9_-]*, "
            f"at most {MAX_NAME_LEN} characters"
        )
    if not isinstance(raw, YMap):
        return c.wrong_type("a mapping with description and prompt", raw, where)
    for key in raw:
        if key not in _SUBAGENT_KEYS:
            hint = c.did_you_mean(str(key), _SUBAGENT_KEYS) or (
                f"; valid keys are {', '.join(_SUBAGENT_KEYS)}"
            )
            return where.error(f"unknown key '{key}'{hint}", raw.line_of(key))

    def field(key: str, coerce: c.Coercer) -> Any:
        return coerce(raw[key], replace(where, key=join(where.key, key), line=raw.line_of(key)))

    if "description" not in raw:
        return where.error("a subagent needs a 'description' (the model picks it by that)")
    if ("prompt" in raw) == ("prompt_file" in raw):
        return where.error("give exactly one of 'prompt' or 'prompt_file'")
    description = field("description", c.text)
    prompt = field("prompt", c.text) if "prompt" in raw else field("prompt_file", prompt_file)
    tools = field("tools", c.name_list) if "tools" in raw else None
    model = field("model", c.optional_text) if "model" in raw else None
    if c.INVALID in (description, prompt, tools, model):
        return c.INVALID
    text = prompt if isinstance(prompt, str) else prompt.text
    line = raw.line_of("tools") if "tools" in raw else where.line
    return Subagent(name, description, text, tools, model, line)


# --- across agents ---------------------------------------------------------------------


def check_work(merged: Mapping[str, Mapping[str, Any]], folder: Path, report: c.Report) -> None:
    """Approver names, worktrees (a git repository, a known base) and overlapping owns."""
    names = list(merged)
    for name, values in merged.items():
        who = values.get("approver")
        if isinstance(who, Placed) and who.value not in (*names, "user"):
            report(
                who.line,
                who.key,
                f"unknown approver '{who.value}'; name 'user' or an "
                f"agent of this team ({', '.join(names)})",
            )
        elif isinstance(who, Placed) and who.value == name:
            report(
                who.line,
                who.key,
                "an agent cannot approve its own calls; name 'user' or another agent",
            )
        _check_subagent_tools(name, values, report)
        space = values.get("workspace")
        cwd = _cwd(values, folder)
        if isinstance(space, Placed) and space.value.is_worktree and cwd is not None:
            _check_worktree(space, cwd, report)
    _check_overlaps(merged, folder, report)


def _check_subagent_tools(name: str, values: Mapping[str, Any], report: c.Report) -> None:
    """A subagent runs in its agent's session, under the agent's tool rules: a tool the
    agent does not have was refused at every call, with "not in this agent's tools (allowed:
    …)" although agents.yaml listed it for the subagent (review E). Now a roster error."""
    tools, subs = values.get("tools"), values.get("subagents")
    if not isinstance(tools, tuple) or not isinstance(subs, Mapping):
        return  # invalid already (reported), or none
    for sub in subs.values():
        extra = [t for t in sub.tools or () if t not in tools]
        if extra:
            them = "it" if len(extra) == 1 else "them"
            report(
                sub.tools_line,
                f"agents.{name}.subagents.{sub.name}.tools",
                f"subagent '{sub.name}' lists {', '.join(repr(t) for t in extra)}, which its "
                f"agent '{name}' does not have (tools: {', '.join(tools) or 'none'}); a "
                "subagent works inside its agent's session and can use only the agent's "
                f"tools: add {them} to agents.{name}.tools, or take {them} out of the "
                "subagent's",
            )


def _cwd(values: Mapping[str, Any], folder: Path) -> Path | None:
    """The agent's cwd, or None when it was already reported invalid (a missing folder:
    the checks that read it crashed with a TypeError instead of one clear error)."""
    cwd = values.get("cwd")
    return None if cwd is c.INVALID else Path(cwd or folder)


def _check_worktree(space: Placed, cwd: Path, report: c.Report) -> None:
    # Only a roster with a git workspace runs git: the CLI reads rosters on every verb.
    from orchestrator import gitcmd  # noqa: PLC0415

    try:
        top = gitcmd.toplevel(cwd)
        if top is None:
            report(
                space.line,
                space.key,
                f"not a git repository: {cwd}; a worktree workspace "
                "needs the agent's cwd inside one (git init), or use 'workspace: shared'",
            )
            return
        base = space.value.base
        if base is None:
            if gitcmd.current_branch(top) is None:
                report(
                    space.line,
                    space.key,
                    f"the repository {top} has no current branch "
                    "(detached HEAD or no commit yet); commit once, or give {type: worktree, "
                    "base: BRANCH}",
                )
        elif not gitcmd.is_branch(top, base):
            known = ", ".join(gitcmd.branches(top)) or "(none)"
            report(
                space.line,
                space.key,
                f"unknown base '{base}': no such branch in {top} (branches: {known})",
            )
    except GitError as exc:
        report(space.line, space.key, str(exc))


def _check_overlaps(
    merged: Mapping[str, Mapping[str, Any]], folder: Path, report: c.Report
) -> None:
    claimed: list[tuple[str, str, str]] = []  # (agent, pattern as written, anchored)
    for name, values in merged.items():
        patterns = values.get("owns")
        space = plain(values.get("workspace"))
        if not isinstance(patterns, Placed) or (isinstance(space, Workspace) and space.is_worktree):
            continue  # agents in worktrees each write their own copy
        cwd = _cwd(values, folder)
        if cwd is None:
            continue
        anchor = os.path.realpath(cwd)
        mine = [(p, globs.absolute_pattern(p, anchor)) for p in patterns.value]
        for other, theirs_written, theirs in claimed:
            for written, pattern in mine:
                if other != name and globs.overlap(pattern, theirs):
                    report(
                        patterns.line,
                        patterns.key,
                        f"owns '{written}' of agent '{name}' overlaps owns "
                        f"'{theirs_written}' of agent '{other}' in the same shared "
                        "workspace; two agents must not own one path (narrow one pattern, "
                        "or give one of them 'workspace: worktree')",
                    )
        claimed += [(name, w, p) for w, p in mine]
