"""What an agent may do with a tool call, decided before the call runs.

One ``PreToolUse`` hook per agent (:meth:`Policy.hooks`). A hook, not
``can_use_tool``: the CLI consults ``can_use_tool`` only for calls it would
prompt for, and a tool in the agent's ``tools`` (allowed outright) never
reaches it, while every call, a subagent's included, passes the hook.

- Confinement (:mod:`orchestrator.confine`): the file tools never write the
  team's own files, ``.git``, the install or the launcher; without ``owns``, only
  in the agent's folder and its temp folder, and not what another agent owns.
- ``owns``: the file tools (Write, Edit, MultiEdit, NotebookEdit) may write
  only paths matching the agent's globs, resolved first (relative to the
  agent's folder, ``..`` and symlinks followed). A denial names the owner.
  Bash is not checked: a shell command's writes cannot be known beforehand.
- ``approve``: a call matching one of the rules (:mod:`orchestrator.approve_rules`)
  waits for the approver's yes (:mod:`orchestrator.approvals`), who is told why it
  matched ("matches Bash(git push:*): runs code given to python3 -c: cannot be read").
  The agent's ``tools`` are passed along: a ``Bash(...)`` rule there exempts the
  interpreter hand-off it names (:mod:`orchestrator.handoffs`). A git command is read
  with the git config and hooks of the folder it runs in (:mod:`orchestrator.git_state`,
  git run in a worker thread, the call's ``cwd`` from the hook input).
- Subagents: the hook sees which subagent made a call (``agent_type`` in the
  hook input); it is logged, and the relay is told for its own logs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import anyio
import structlog
from claude_agent_sdk import HookContext, HookInput, HookJSONOutput, HookMatcher

from orchestrator import (
    agent_env,
    confine,
    git_state,
    globs,
    hold_scope,
    prompts,
    workspaces,
    write_hold,
)
from orchestrator.approval_wait import HOOK_DEADLINE, TAKEN, Approvals
from orchestrator.approve_rules import PATH_FIELDS, SEARCH_TOOLS, match_reason, written_path
from orchestrator.errors import OrchestratorError
from orchestrator.lifecycle import OnEvent
from orchestrator.mailbox import AsyncMailboxBackend
from orchestrator.relay import Relay
from orchestrator.roster import AgentSpec, Roster
from orchestrator.roster.work import FILE_TOOLS

log = structlog.get_logger()


class Decide(Protocol):
    """Asks the approver about a call; (granted, reason). ``why``: why the call asks."""

    async def __call__(
        self, tool: str, tool_input: dict[str, Any], subagent: str | None, why: str = ""
    ) -> tuple[bool, str]: ...


HOOK_SLACK_S = 60.0  # the hook outlives the approval wait it contains
# The tools whose calls start commands (the claude's children, which a write hold stops);
# a subagent's calls pass the same hook.
COMMAND_TOOLS = ("Bash",)
HELD_POLL_S = 0.002  # how often a command held back looks whether the write is done
HOOK_MARGIN_S = 5.0  # a hook's answer is sent this long before the CLI gives up on it


def owner_check(
    spec: AgentSpec,
    folder: Path,
    roster: Roster,
    folder_of: Callable[[AgentSpec], Path],
    path: str,
) -> str | None:
    """None if ``spec`` may write ``path``; else the reason, naming who owns it."""
    anchor = os.path.realpath(folder)
    real = globs.resolve(path, anchor)
    if spec.owns is None:
        return _owned_by_another(spec, roster, folder_of, real)
    if any(globs.matches(globs.absolute_pattern(p, anchor), real) for p in spec.owns):
        return None
    owners = []
    for other in roster.agents.values():
        if other.name == spec.name or not other.owns:
            continue
        theirs = os.path.realpath(folder_of(other))
        candidates = [real]
        if os.path.commonpath([real, anchor]) == anchor:  # the same file in their own copy
            candidates.append(os.path.join(theirs, os.path.relpath(real, anchor)))
        if any(
            globs.matches(globs.absolute_pattern(p, theirs), c)
            for p in other.owns
            for c in candidates
        ):
            owners.append(other.name)
    return prompts.not_owned(real, spec.owns, owners)


def _owned_by_another(
    spec: AgentSpec, roster: Roster, folder_of: Callable[[AgentSpec], Path], real: str
) -> str | None:
    """An agent without ``owns`` writes its folder, but not what another agent in a shared
    workspace owns (review E: an owns-less agent beside one with ``owns`` in the same
    folder overwrote the owned files, and the roster accepted it; owned paths are the
    owner's alone). Agents in worktrees each write their own copy."""
    if spec.workspace.is_worktree:
        return None
    owners = [
        other.name
        for other in roster.agents.values()
        if other.name != spec.name and other.owns and not other.workspace.is_worktree
        if any(
            globs.matches(globs.absolute_pattern(p, os.path.realpath(folder_of(other))), real)
            for p in other.owns
        )
    ]
    return prompts.owned_by_others(real, owners) if owners else None


class Policy:
    """The hook for one agent's session."""

    def __init__(
        self,
        agent: str,
        roster: Callable[[], Roster],
        folder: Callable[[], Path],
        decide: Decide,
        *,
        on_subagent_call: Callable[[str, dict[str, Any], str], None] | None = None,
        hold: write_hold.Hold | None = None,
    ) -> None:
        self.agent = agent
        # The team's write hold (its supervisor's: write_hold); a hook alone holds its own.
        self.hold = hold if hold is not None else write_hold.Hold()
        self.roster = roster
        self.folder = folder  # the agent's working folder (its worktree, if it has one)
        self.temp: Path | None = None  # its private temp folder (CLAUDE_CODE_TMPDIR), once built
        self.pids: Path | None = None  # where the launcher writes the team's claudes' pids
        self.decide = decide  # asks the approver; (granted, reason)
        self.on_subagent_call = on_subagent_call
        self.log = log.bind(agent=agent)

    @property
    def spec(self) -> AgentSpec:
        return self.roster().agents[self.agent]

    def hooks(self) -> dict[Any, list[HookMatcher]]:
        timeout = self.spec.approval_timeout_s + HOOK_SLACK_S
        done = HookMatcher(
            matcher="|".join(sorted({*FILE_TOOLS, *COMMAND_TOOLS})), hooks=[self.call_done]
        )
        return {
            # on_failure "block": a callback that fails (raises, times out, answers what the
            # CLI rejects) blocks the call; the CLI's default let it run (measured).
            "PreToolUse": [
                HookMatcher(
                    matcher=None, hooks=[self.pre_tool_use], timeout=timeout, on_failure="block"
                )
            ],
            # A file tool's write done (or failed): the team's commands go on; a command's:
            # no hold needs to look for it any more (write_hold).
            "PostToolUse": [done],
            "PostToolUseFailure": [done],
        }

    async def call_done(
        self, _data: HookInput, tool_use_id: str | None, _context: HookContext
    ) -> HookJSONOutput:
        if tool_use_id:
            self.hold.release(tool_use_id)
            self.hold.launched(tool_use_id)
        return {}

    async def pre_tool_use(
        self, data: HookInput, tool_use_id: str | None, context: HookContext
    ) -> HookJSONOutput:
        try:
            return await self._decide(data, tool_use_id, context)
        except (OrchestratorError, OSError, ValueError) as exc:
            # Fail closed: a check that could not be made must not let the call through.
            self.log.error("policy_failed", tool=dict(data).get("tool_name"), error=str(exc))
            return _deny(
                f"the call was not checked ({exc}), so it was not made; try again "
                "later or ask the user"
            )
        except Exception as exc:  # a bug in the check: fail closed all the same, said
            self.log.exception("policy_crashed", tool=dict(data).get("tool_name"), error=repr(exc))
            return _deny(
                f"the call was not checked (an error in the check: {type(exc).__name__}), so "
                "it was not made; ask the user"
            )

    async def _decide(
        self, data: HookInput, tool_use_id: str | None, _context: HookContext
    ) -> HookJSONOutput:
        started = time.monotonic()
        # The approval wait inside ends in time for this hook to answer (approval_wait)
        HOOK_DEADLINE.set(started + self.spec.approval_timeout_s + HOOK_SLACK_S - HOOK_MARGIN_S)
        raw: dict[str, Any] = dict(data)
        tool = str(raw.get("tool_name", ""))
        if (why := malformed(tool, raw.get("tool_input"))) is not None:
            # Read as text, `{"command": 5}` would be judged as the line `5`: fail closed.
            self.log.warning("call_malformed", tool=tool, why=why)
            return _deny(why)
        tool_input: dict[str, Any] = raw["tool_input"]
        subagent = raw.get("agent_type") if raw.get("agent_id") else None
        # Who makes the call: the agent, or one of its subagents (each its own loop, whose
        # calls run beside the agent's).
        caller = f"{self.agent}/{raw['agent_id']}" if raw.get("agent_id") else self.agent
        if isinstance(subagent, str):
            self.log.info("tool_used", tool=tool, input=tool_input, subagent=subagent)
            if self.on_subagent_call is not None:
                self.on_subagent_call(tool, tool_input, subagent)
        spec = self.spec
        path = written_path(tool, tool_input)
        if path is not None and (why := self._write_refusal(spec, path)) is not None:
            self.log.warning("write_denied", tool=tool, path=path, subagent=subagent)
            return _deny(why)
        why = None
        if spec.approve:  # in a thread: a git line reads git's state with git itself
            why = await anyio.to_thread.run_sync(
                self._asks, spec, tool, tool_input, self.folder(), raw.get("cwd")
            )
        out: HookJSONOutput = {}
        approved = False
        if why is not None:
            granted, reason = await self.decide(tool, tool_input, subagent, why)
            if not granted:
                return _deny(reason)
            approved = True
            out = {
                "hookSpecificOutput": {
                    "hookEventName": "PreToolUse",
                    "permissionDecision": "allow",
                    "permissionDecisionReason": reason,
                }
            }
        if path is not None and tool_use_id:
            # Checked again with the team's commands held still until the CLI has written
            # (write_hold): a folder swapped for a symlink after the check above, by
            # another agent's Bash, would send the write elsewhere.
            await anyio.to_thread.run_sync(self._hold, tool_use_id, path, caller)
            if (why := self._write_refusal(spec, path)) is not None:
                self.hold.release(tool_use_id)
                self.log.warning("write_denied", tool=tool, path=path, subagent=subagent)
                return _deny(why)
        if tool in COMMAND_TOOLS:
            # A command a person approved waits out the writes as long as its hook may
            # still answer (the CLI gives up on the hook after its timeout), no longer:
            # past it the CLI cancels the hook, and the approval, its use recorded, was
            # lost. That may be less than a write may take (an approval given near the
            # hook's end): refused then, the approval kept.
            bound = write_hold.HOLD_MAX_S
            if approved:
                bound = max(0.0, self._hook_left(started))
            if not await self._until_not_held(tool, caller, bound):
                if approved and (taken := TAKEN.get()) is not None and await taken():
                    return _deny(prompts.held_too_long_approved(bound))
                return _deny(prompts.held_too_long(bound))
            if tool_use_id:  # a hold that begins before the CLI starts it still finds it
                self.hold.launch(tool_use_id, self.agent)
        return out

    def _hook_left(self, started: float) -> float:
        """How long the PreToolUse hook begun at ``started`` may still take before the CLI
        stops waiting for it (:meth:`hooks`), less a margin for its answer to arrive."""
        timeout = self.spec.approval_timeout_s + HOOK_SLACK_S
        return timeout - HOOK_MARGIN_S - (time.monotonic() - started)

    async def _until_not_held(self, tool: str, caller: str, bound_s: float) -> bool:
        """Wait while another agent's write holds this one (write_hold): its claude is not
        stopped, so a command it started now would run during that write. Polled, on the
        loop (a write takes milliseconds; a thread each would take the writers' threads);
        False if holds went on for ``bound_s`` (writes back to back). Cancelled with the
        agent's session (a stop, `down`)."""
        if not self.hold.holding(self.agent, caller):
            return True
        self.log.info("command_waits_for_write", tool=tool)
        with anyio.move_on_after(bound_s):
            while self.hold.holding(self.agent, caller):  # noqa: ASYNC110 - set from threads
                await anyio.sleep(HELD_POLL_S)
            return True
        self.log.warning("command_held_too_long", tool=tool, after_s=bound_s)
        return False

    def _asks(
        self, spec: AgentSpec, tool: str, tool_input: dict[str, Any], folder: Path, cwd: Any
    ) -> str | None:
        """Why the call matches one of the agent's ``approve`` rules, or None."""
        # Git's config and hooks where the call runs: read once, and only for git lines.
        git = git_state.Lookup(
            cwd if isinstance(cwd, str) and os.path.isdir(cwd) else folder,
            agent_env.commands_env(spec, os.environ),  # no gateway secret in git's
        )
        for rule in spec.approve:
            why = match_reason(rule, tool, tool_input, folder, spec.tools, git=git)
            if why is not None:
                return why
        return None

    def _write_refusal(self, spec: AgentSpec, path: str) -> str | None:
        roster = self.roster()
        why = confine.refusal(spec, self.folder(), self.temp, roster, path)
        if why is None:
            why = owner_check(spec, self.folder(), roster, _folder_of(roster), path)
        return why

    def _hold(self, key: str, path: str, caller: str | None = None) -> None:
        # Released when the CLI reports the call done, or after HOLD_MAX_S if it never
        # does; recorded beside the pid files for the watchman if this process dies first.
        # Only the agents whose commands could change a folder on the path (hold_scope);
        # worked out again once they stand still, until no other could: an agent not held
        # cannot have moved the path into its reach, but one that ran until held might.
        record = None if self.pids is None else self.pids.parent / write_hold.RECORD
        clis = write_hold.team_agents(self.pids)
        roster = self.roster()
        folders = self.hold.folders

        known: dict[str, list[str] | None] = {}
        seen: dict[str, Any] = {}  # settings files read for this Write

        def areas(name: str, pid: int) -> list[str] | None:
            if name not in known:  # read once a Write: what a claude was started with
                spec = roster.agents.get(name)
                known[name] = hold_scope.areas(spec, pid, folders.get(name), seen)
            return known[name]

        def racers() -> set[int]:
            return hold_scope.racers(path, str(self.folder()), clis, areas)

        def hold(pids: set[int]) -> None:
            agents = {name: pid for name, pid in clis.items() if pid in pids}
            self.hold.hold(key, pids, record, agents=agents, writer=caller or self.agent)

        held = racers()
        hold(held)  # the key is held even if no one is
        while more := racers() - held:
            held |= more
            hold(more)


# The fields of a call's input the hook reads its decisions from, by tool: each must be
# text (a string); the first of each tool must be given, but a search tool's path
# (approve_rules.PATH_FIELDS, the one table of the file tools' paths).
_READ_FIELDS: dict[str, tuple[str, ...]] = {
    "Bash": ("command",),
    **PATH_FIELDS,
    "WebFetch": ("url",),
}


def malformed(tool: str, tool_input: Any) -> str | None:
    """Why a call's input is not of the form the hook reads (``Bash`` with a ``command``
    that is no string, a file tool's path a number…), for the model; None if it is."""
    if not isinstance(tool_input, dict):
        return f"the {tool} call was refused: its input is {_kind(tool_input)}, not an object"
    for i, name in enumerate(_READ_FIELDS.get(tool, ())):
        if name not in tool_input:
            if i == 0 and tool not in SEARCH_TOOLS:
                return f"the {tool} call was refused: it has no {name}"
            continue
        if not isinstance(tool_input[name], str):
            kind = _kind(tool_input[name])
            return f"the {tool} call was refused: its {name} is {kind}, not text"
    return None


def _kind(value: Any) -> str:
    """A JSON value's kind, as said to the model."""
    if isinstance(value, bool):
        return "a boolean"
    kinds = {int: "a number", float: "a number", list: "a list", dict: "an object", str: "text"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _deny(reason: str) -> HookJSONOutput:
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        }
    }


def _folder_of(roster: Roster) -> Callable[[AgentSpec], Path]:
    def folder(spec: AgentSpec) -> Path:
        try:
            tree = workspaces.locate(spec, roster)
        except OrchestratorError:
            return spec.cwd
        return spec.cwd if tree is None else tree.folder

    return folder


def for_agent(
    agent: str,
    mailbox: AsyncMailboxBackend,
    roster: Callable[[], Roster],
    relay: Relay,
    on_event: OnEvent,
    *,
    hold: write_hold.Hold | None = None,
) -> Policy:
    """The policy of one agent's session: its folder found (its worktree made) once;
    ``hold``: its team's write hold (the supervisor's)."""
    folder: list[Path] = []

    def agent_folder() -> Path:
        if not folder:
            folder.append(workspaces.agent_folder(roster().agents[agent], roster()))
        return folder[0]

    def settings() -> tuple[str, float]:
        spec = roster().agents[agent]
        return spec.approver, spec.approval_timeout_s

    approvals = Approvals(agent, mailbox, settings, lambda: relay.turn, on_event)
    return Policy(
        agent,
        roster,
        agent_folder,
        approvals.decide,
        on_subagent_call=relay.note_subagent_call,
        hold=hold,
    )
