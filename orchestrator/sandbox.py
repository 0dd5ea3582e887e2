"""What an agent's tools may touch: the CLI's own bubblewrap sandbox, and permission rules.

Identity is not an environment variable (issue 16 point 10). An agent that may run Bash
runs as the supervisor's user, so ``OCTY_AGENT=coordinator octy-orchestrate send …`` or a
plain ``sqlite3 queue/team.db`` from its shell would speak for anyone, read any inbox and
command the supervisor through the database. So the team's private files are kept out of
the agent's reach and the relay tools (which stamp the sender in the supervisor) are its only
way to the team:

- Bash runs inside the CLI's sandbox (``sandbox`` settings; bubblewrap and socat on Linux).
  Measured on CLI 2.1.332: each command runs in its own pid namespace (no other process is
  visible, ``/proc/1/root`` is refused) and network namespace (no 127.0.0.1, no Unix
  sockets: seccomp), the filesystem is read-only but for the working folder and a private
  temp folder, a ``denyRead`` folder is replaced by an empty tmpfs, a ``denyWrite`` file is
  bound read-only. ``failIfUnavailable`` makes a missing bwrap/socat a start-up error
  instead of a silent unsandboxed shell; ``allowUnsandboxedCommands: false`` removes the
  model's ``dangerouslyDisableSandbox`` escape; ``autoAllowBashIfSandboxed: false`` keeps
  "tools not in ``tools`` are refused" true for Bash.
- The CLI's own file tools (Read, Edit, Write, Grep…) are not sandboxed: permission deny
  rules keep them out of the same folders. Deny rules win over allow rules and over
  ``bypassPermissions``.

Hidden (no read, no write): the database's folder (the queue, its WAL, bells, the supervisor
lock, the prompt files below), the logs folder, and the queue's secret files (NATS ``creds``
and TLS client ``key``, each by its real path: measured on 2.1.332, a ``denyRead`` file is
bound over by ``/dev/null`` that ``cat`` is refused, a ``denyWrite`` one cannot be written,
removed or moved, and a ``Read(//file)`` rule refuses the Read tool, also through a
symlink, and a plain ``cat`` naming it). Read-only: ``agents.yaml`` and every
``prompt_file`` (an agent that could edit them would rewrite a peer's role or its own tools,
applied by hot reload).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator import git_guard, workspaces
from orchestrator.cli.team_record import state_dir
from orchestrator.cli.user_folders import claude_config_dir
from orchestrator.errors import OrchestratorError
from orchestrator.roster import AgentSpec, Roster

# Folders of the CLI's own (``~/.claude`` or $CLAUDE_CONFIG_DIR) that its sandbox keeps
# read-only and that the CLI makes itself during an agent's first turn, at the moment its
# first command is being sandboxed: the transcripts (``projects``), the shell snapshot, the
# session's env, plugins, backups. A protected path that does not exist yet gets a
# placeholder file (bubblewrap mounts /dev/null there, making the file on the host) to block
# its creation; when the CLI makes the folder between the sandbox's look and bubblewrap's
# mount, the command fails with "bwrap: Can't create file at ~/.claude/projects: Is a
# directory" (seen under load in CI: the agent's first Bash never ran), and when bubblewrap
# wins, the transcript's folder is a file. Made before the CLI starts, they are bound
# read-only as folders and there is nothing to race.
CLI_RUNTIME_FOLDERS = ("projects", "shell-snapshots", "session-env", "plugins", "backups")

# What the CLI's sandbox needs on Linux (its error names them the same way).
REQUIRED_PROGRAMS = {"bwrap": "bubblewrap", "socat": "socat"}


def hidden_folders(roster: Roster) -> list[Path]:
    """Folders no agent tool may read or write."""
    folders = [roster.database.parent, roster.logs]
    return [f.resolve() for f in dict.fromkeys(folders)]


def private_folders(roster: Roster) -> list[Path]:
    """What agents' tools may neither read nor write: :func:`hidden_folders` and the user's
    octy-orchestrate state folder (team records, roster cache), which name the database
    the operator's verbs use."""
    state = state_dir()
    return hidden_folders(roster) + ([state.absolute()] if state is not None else [])


def secret_files(roster: Roster) -> list[Path]:
    """Files no agent tool may read or write: the queue's secrets by file (NATS ``creds``,
    the TLS client ``key``), by their real paths. README tells users to prefer a ``creds:``
    file where agents must not see the queue's secret; these rules keep that promise (the
    real CLI's Read and a sandboxed ``cat`` returned both files before). The TLS ``ca`` and
    ``cert`` are public and stay readable."""
    queue = roster.queue
    files = [] if queue is None else [f for f in (queue.creds, queue.tls_key) if f is not None]
    return [f.resolve() for f in dict.fromkeys(files)]


def read_only_files(roster: Roster) -> list[Path]:
    """Files agents may read but not change: what defines the team."""
    files = [roster.path, *(s.prompt_file for s in roster.agents.values() if s.prompt_file)]
    return [f.resolve() for f in dict.fromkeys(files)]


def sandboxed(spec: AgentSpec) -> bool:
    """Whether this agent's commands run in the sandbox. Only Bash runs commands (the other
    tools run inside the CLI, held by the permission rules), so an agent with Bash in
    ``disallowed_tools`` (the starter team, the demo) needs no sandbox, and no bubblewrap.
    Bash merely left out of ``tools`` still counts: a permission mode may let it run."""
    return spec.sandbox and "Bash" not in spec.disallowed_tools


def _absolute(path: Path) -> str:
    # Settings paths: "//x" is the absolute path /x ("/x" is relative to the settings file).
    return "/" + str(path)


def _rule(path: Path) -> str:
    """``path`` as a permission rule names it: the rule is a glob, so a ``[``, ``]`` or
    ``*`` in a folder's name is escaped (measured on 2.1.332: with a creds file in a
    ``n[a]ts`` folder, and a team in a ``t[1]`` folder, ``Read(//…/n[a]ts/octy.creds)`` let
    the Read tool return the file, and ``Read(//…/t[1]/…/**)`` a file of the database's
    folder; escaped, both were refused, and an escaped ``*`` still refused its own path).
    A ``?`` is not escaped: ``n\\?ts`` let the Read tool return the file in ``n?ts``, which
    ``n?ts`` refuses. ``{a,b}``, ``+(a)`` and ``!(x)`` need nothing (refused as they are).
    A backslash cannot be named at all: cli/common.undecodable_paths refuses it."""
    return re.sub(r"([*\[\]])", r"\\\1", _absolute(path))


def settings(spec: AgentSpec, roster: Roster) -> dict[str, Any]:
    """The ``--settings`` object for one agent's CLI: permission deny rules always, the
    sandbox unless the roster opts the agent out (``sandbox: false``)."""
    hidden = [_absolute(p) for p in private_folders(roster)]
    secrets = [_absolute(p) for p in secret_files(roster)]
    frozen = [_absolute(p) for p in read_only_files(roster)]
    rules = ("Read", "Edit")
    deny = [f"{tool}({_rule(p)}/**)" for p in private_folders(roster) for tool in rules]
    deny += [f"{tool}({_rule(p)})" for p in secret_files(roster) for tool in rules]
    deny += [f"Edit({_rule(p)})" for p in read_only_files(roster)]
    out: dict[str, Any] = {"permissions": {"deny": deny}}
    if sandboxed(spec):
        out["sandbox"] = {
            "enabled": True,
            "failIfUnavailable": True,
            "allowUnsandboxedCommands": False,
            "autoAllowBashIfSandboxed": False,
            "excludedCommands": [],
            "filesystem": {
                "denyRead": hidden + secrets,
                "denyWrite": hidden + secrets + frozen,
            },
        }
        if (tree := _worktree(spec, roster)) is not None:
            # The shared refs and info files (git_guard), and the placeholders the agent's
            # git must ignore (git_exclude). The CLI appends its own GIT_CONFIG_* entries.
            mates = [n for n, s in roster.agents.items() if s.workspace.is_worktree]
            denied = git_guard.denied(tree.repo, tree.branch, mates)
            if tree.offset != Path("."):
                allow, more = git_guard.below_top(tree.repo, tree.path, tree.branch)
                out["sandbox"]["filesystem"]["allowWrite"] = [_absolute(p) for p in allow]
                denied += more
            out["sandbox"]["filesystem"]["denyWrite"] += [_absolute(p) for p in denied]
            if "GIT_CONFIG_COUNT" not in spec.env:
                out["env"] = {
                    "GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": "core.excludesFile",
                    "GIT_CONFIG_VALUE_0": str(workspaces.exclude_file(tree)),
                }
    return out


def _worktree(spec: AgentSpec, roster: Roster) -> workspaces.Worktree | None:
    """The agent's worktree; None for a shared workspace, or when it cannot be found (the
    agent's start fails with the reason)."""
    try:
        return workspaces.locate(spec, roster)
    except OrchestratorError:
        return None


def prepare_cli_folders(spec: AgentSpec, environ: Mapping[str, str]) -> None:
    """Make the CLI's runtime folders (:data:`CLI_RUNTIME_FOLDERS`, 0700) in the config
    folder of a sandboxed agent's CLI started with ``environ``, before it starts. Best
    effort: a config folder that cannot be made is `up`'s warning already, and the CLI
    says what it cannot write."""
    if not sandboxed(spec):
        return
    with contextlib.suppress(OSError):
        # Hidden from the agent (private_folders): a protected folder that does not exist
        # yet gets a placeholder file from the sandbox, and the team record could no longer
        # be written.
        if (state := state_dir()) is not None:
            state.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (config := claude_config_dir(environ)) is None:
        return
    try:
        config.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name in CLI_RUNTIME_FOLDERS:
            # mkdir never follows a link at the name: a link or a file there stays as it is.
            with contextlib.suppress(FileExistsError):
                os.mkdir(config / name, 0o700)
    except OSError:
        return


def missing_programs() -> list[str]:
    """Debian packages the sandbox needs that are not installed here."""
    return [pkg for prog, pkg in REQUIRED_PROGRAMS.items() if shutil.which(prog) is None]


def problems(roster: Roster) -> list[str]:
    """Why sandboxed agents of this roster cannot start, each with the fix (empty if none)."""
    boxed = [name for name, spec in roster.agents.items() if sandboxed(spec)]
    found: list[str] = []
    missing = missing_programs()
    if boxed and missing:
        found.append(
            f"agents {', '.join(boxed)} run their tools in the claude CLI's sandbox, which "
            f"needs {' and '.join(missing)} (not found on PATH): install "
            f"{'them' if len(missing) > 1 else 'it'} (apt-get install {' '.join(missing)}), "
            "or set `sandbox: false` for those agents in agents.yaml to run their tools "
            "unsandboxed (then a shell tool can reach the team's database: see README, Security)"
        )
    for name in boxed:
        cwd = roster.agents[name].cwd.resolve()
        for folder in hidden_folders(roster):
            if cwd == folder or folder in cwd.parents:
                found.append(
                    f"agent {name}: its cwd {cwd} is inside {folder}, which the sandbox hides "
                    "from agents (it holds the team's database or logs); give the agent "
                    "another cwd, or move `database`/`logs` elsewhere"
                )
    return found
