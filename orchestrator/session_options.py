"""Turn an agent's roster entry into ``ClaudeAgentOptions`` for its claude process.

Decisions made here, documented in the README ("How agents run"):
- The relay tools (``mcp__octy__*``) are always allowed and offered directly:
  ``ENABLE_TOOL_SEARCH=false`` stops the CLI deferring SDK MCP tools behind its
  ToolSearch step (seen on CLI 2.1.331).
- The CLI's own ``SendMessage``/``ListAgents`` (best-effort, not durable) are
  disallowed unless the roster allows them by name: every message goes
  through the durable queue.
- The CLI's tools that start turns on their own (:data:`SELF_STARTING`: cron jobs,
  wake-ups, monitors, background workflows) are disallowed unless named in ``tools``,
  and background tasks are off: a turn no message caused is answered to nobody, runs
  while the agent is paused for its budget, and its result could be taken for the
  next message's.
- ``setting_sources=["project"]``: an agent loads its working folder's
  ``.claude/`` settings and CLAUDE.md, never the operator's personal
  ``~/.claude/settings.json`` (hooks and permissions there were not written
  for unattended agents).
- The CLI runs in its own session (``setsid``) so a Ctrl-C at the terminal
  reaches only the supervisor, which then stops agents gracefully, and so
  its process group can be killed as a whole after it exits. It also gets a
  parent-death signal (``setpriv --pdeathsig KILL``): a CLI whose supervisor
  was SIGKILLed does not run on mid-turn, spending tokens on work nobody
  will ack (seen: an orphaned CLI finishes its turn before noticing stdin
  closed). The next ``up`` requeues its message and resumes its session.
- The system prompt goes through a private file (``--system-prompt-file``), never argv;
  ``--settings`` carries the sandbox and permission rules of :mod:`orchestrator.sandbox`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from claude_agent_sdk import (
    CanUseToolShadowedWarning,
    ClaudeAgentOptions,
    PermissionResultAllow,
    PermissionResultDeny,
)

from orchestrator import agent_env, launcher, sandbox
from orchestrator.policy import Policy
from orchestrator.prompts import CLI_OWN_MESSAGING, SERVER, TOOL_NAMES, team_prompt
from orchestrator.relay import Relay
from orchestrator.roster import AgentSpec, Roster
from orchestrator.subagents import agent_definitions

# The launcher's helpers lived here; the runner and tests still import them from here.
LAUNCHER_PREFIX = launcher.LAUNCHER_PREFIX
PID_FILE_ENV = launcher.PID_FILE_ENV
bundled_cli = launcher.bundled_cli
cli_pid_file = launcher.cli_pid_file
make_launcher = launcher.make_launcher
private_tmpdir = launcher.private_tmpdir
read_cli_pid = launcher.read_cli_pid

# The SDK reads each stream-json line into a 1 MiB buffer by default, and a longer line ends
# the session: an answer or a tool call carrying a body near the queue's 1 MiB limit did,
# five times over (issue 16.8). Any body the queue accepts fits many times in this.
MAX_LINE_BYTES = 32 * 1024 * 1024
CLI_ENV_DEFAULTS = {
    "ENABLE_TOOL_SEARCH": "false",
    # A background task (Bash run_in_background, an Agent or Skill launched in the
    # background) reports back later as a turn of its own (seen on 2.1.332: "Async agent
    # launched"); in the foreground it is part of the turn that started it.
    "CLAUDE_CODE_DISABLE_BACKGROUND_TASKS": "1",
}
# Offered by the bundled CLI (2.1.332) to every agent, even one with `tools: []`, and
# run without a permission prompt. Each makes the CLI start a turn later by itself: a
# recurring CronCreate job fires every minute for up to 30 days. RemoteTrigger is not
# offered by 2.1.332; named so a newer CLI does not bring it in unnoticed.
SELF_STARTING = (
    "CronCreate",
    "CronDelete",
    "CronList",
    "ScheduleWakeup",
    "Monitor",
    "Workflow",
    "RemoteTrigger",
)
SETTING_SOURCES: list[Any] = ["project"]

# The relay tools are allowed outright on purpose, so can_use_tool is not consulted for them;
# the SDK warns about exactly that at every options build and connect.
warnings.filterwarnings("ignore", category=CanUseToolShadowedWarning)

Permission = PermissionResultAllow | PermissionResultDeny
CanUseTool = Callable[[str, dict[str, Any], Any], Awaitable[Permission]]


def build_options(
    spec: AgentSpec,
    roster: Roster,
    relay: Relay,
    can_use_tool: CanUseTool,
    *,
    resume: str | None,
    cli_path: str | None,
    stderr: Callable[[str], None],
    policy: Policy | None = None,
) -> ClaudeAgentOptions:
    disallowed = list(spec.disallowed_tools)
    disallowed += [
        t
        for t in (*CLI_OWN_MESSAGING, *SELF_STARTING)
        if t not in spec.tools and t not in disallowed
    ]
    blanks, model_blanks = agent_env.cli_env(spec, os.environ)
    env = {
        **CLI_ENV_DEFAULTS,
        # Bounds a persistent 529/5xx per turn (the CLI's default of 10 is ~175 s); an
        # agent's own `env` may still set it.
        "CLAUDE_CODE_MAX_RETRIES": str(spec.model_retries),
        # The supervisor's secrets go empty, so the agent's commands never see them; the
        # model's key reaches the CLI through its key helper instead (agent_env).
        **blanks,
        **dict(spec.env),
        **model_blanks,
        # What `octy-orchestrate` run by this agent's tools needs: who it is, where the queue is.
        "OCTY_AGENT": spec.name,
        "OCTY_DB": str(roster.database),
    }
    # The CLI's own folders its sandbox protects, made before it can race to make them.
    sandbox.prepare_cli_folders(spec, {**os.environ, **env})
    # Only in our own private launcher folder (make_launcher's), never beside a CLI binary
    # we were pointed at.
    launcher_folder = launcher.launcher_folder(cli_path)
    if launcher_folder is not None:
        env.update(launcher.private_temp_env(launcher_folder, spec.name, spec.env))
    # Before every start of a CLI through it (orchestrator/launcher.py says why).
    launcher.restore_launcher(cli_path)
    pid_file = cli_pid_file(cli_path, spec.name)
    if pid_file is not None:
        env[PID_FILE_ENV] = str(pid_file)
    options = _options(
        spec,
        roster=roster,
        relay=relay,
        can_use_tool=can_use_tool,
        disallowed=disallowed,
        env=env,
        resume=resume,
        cli_path=cli_path,
        stderr=stderr,
    )
    helper = agent_env.key_helper(spec, roster, os.environ)
    if helper is not None:
        options.settings = json.dumps({**json.loads(str(options.settings)), "apiKeyHelper": helper})
    options = with_policy(options, spec, policy)
    # What the CLI keeps for itself (a gateway's headers...) is unset in each of its
    # commands by a shell prefix (agent_env), decided in the folder it will run in.
    options.env.update(
        agent_env.prefix_env(
            spec, os.environ, Path(options.cwd or spec.cwd), sandboxed=sandbox.sandboxed(spec)
        )
    )
    # And the CLI's sandbox unsets them for sandboxed commands, MCP servers or not.
    denied = agent_env.sandbox_denied(spec, os.environ) if sandbox.sandboxed(spec) else []
    if denied:
        settings = json.loads(str(options.settings))
        settings["sandbox"]["credentials"] = {"envVars": denied}
        options.settings = json.dumps(settings)
    return options


def with_policy(
    options: ClaudeAgentOptions, spec: AgentSpec, policy: Policy | None
) -> ClaudeAgentOptions:
    """Issue 11: the agent's folder (its worktree), its PreToolUse hook (owned paths,
    approvals, subagent attribution) and its subagents."""
    if policy is None:
        return options
    options.cwd = str(policy.folder())
    policy.hold.folders[spec.name] = Path(options.cwd)  # its commands may write there
    tmp = options.env.get("CLAUDE_CODE_TMPDIR")
    policy.temp = Path(tmp) if tmp else None  # the file tools may write there too
    pid_file = options.env.get(PID_FILE_ENV)
    policy.pids = Path(pid_file).parent if pid_file else None  # the team's claudes
    options.hooks = policy.hooks()
    if spec.workspace.is_worktree:
        # The CLI's own worktree tools would move the session out of the worktree it was
        # given (EnterWorktree) or offer to remove it (ExitWorktree).
        options.disallowed_tools += [
            t for t in ("EnterWorktree", "ExitWorktree") if t not in options.disallowed_tools
        ]
    if spec.subagents:
        options.agents = agent_definitions(spec)
        if "Agent" not in options.allowed_tools:
            options.allowed_tools.append("Agent")  # the tool that starts a subagent
    return options


def _options(
    spec: AgentSpec,
    *,
    roster: Roster,
    relay: Relay,
    can_use_tool: CanUseTool,
    disallowed: list[str],
    env: dict[str, str],
    resume: str | None,
    cli_path: str | None,
    stderr: Callable[[str], None],
) -> ClaudeAgentOptions:
    return ClaudeAgentOptions(
        # From a private file, not argv: a command line is readable by every user in
        # /proc/PID/cmdline, and a role prompt may hold ${VAR}-interpolated secrets.
        system_prompt={
            "type": "file",
            "path": str(write_prompt_file(spec, roster, system_prompt(spec, roster))),
        },
        # Snapshot off: a resumed session would otherwise keep the prompt recorded on its
        # first request (CLI >= 2.1.257), so an edited prompt or a changed team would not
        # reach an agent restarted by hot reload (seen in test_hot_reload_...). The SDK sends
        # its own snapshot switch only for inline prompts, so the CLI flag says it here.
        extra_args={"system-prompt-snapshot": "off"},
        settings=json.dumps(sandbox.settings(spec, roster)),
        model=spec.model,
        fallback_model=spec.fallback_model,
        allowed_tools=[*spec.tools, *TOOL_NAMES],
        disallowed_tools=disallowed,
        permission_mode=spec.permission_mode,  # type: ignore[arg-type]  # validated by the roster
        can_use_tool=can_use_tool,
        mcp_servers={SERVER: relay.server()},
        cwd=str(spec.cwd),
        env=env,
        cli_path=cli_path,
        stderr=stderr,
        max_turns=spec.max_turns,
        max_budget_usd=spec.max_budget_usd,
        resume=resume,
        setting_sources=SETTING_SOURCES,
        max_buffer_size=MAX_LINE_BYTES,
    )


PROMPT_FILE_MARK = ".prompt-"


def system_prompt(spec: AgentSpec, roster: Roster) -> str:
    """The agent's role prompt plus the "your team" section."""
    return spec.prompt + team_prompt(spec.name, roster)


def write_prompt_file(spec: AgentSpec, roster: Roster, text: str) -> Path:
    """The system prompt in a fresh 0600 file beside the database: a folder private to the
    team's user (0700) and hidden from agents' tools by the sandbox. The CLI reads it once
    at start-up (measured on 2.1.332: deleting it after connect changes nothing, a resumed
    session reads the new one), so the runner deletes it once connected."""
    folder = roster.database.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    # "." cannot be in an agent name: agent a's prefix never matches agent a-b's files.
    prefix = f".{roster.database.name}{PROMPT_FILE_MARK}{spec.name}."
    # One left by a supervisor killed mid-connect: only one session per agent connects at a
    # time (one supervisor per database), so any earlier file of this agent's is stale.
    for stale in folder.glob(prefix + "*"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    # mkstemp: O_EXCL and 0600, so a planted file or link is never written through.
    fd, name = tempfile.mkstemp(prefix=prefix, dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(name)


def discard_prompt_file(options: ClaudeAgentOptions) -> None:
    """Delete the prompt file :func:`build_options` wrote (once the CLI has read it)."""
    prompt = options.system_prompt
    if isinstance(prompt, dict) and prompt.get("type") == "file":
        path = Path(str(prompt.get("path")))
        if PROMPT_FILE_MARK in path.name:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
