"""Where an agent's file tools (Write, Edit, MultiEdit, NotebookEdit) may write.

The CLI runs its file tools outside the sandbox, as the supervisor's user: without a check
they reach every file that user can write, and several of those run code outside the
sandbox or speak for the team (found by review): the supervisor's private folder (its pid
files, the other agents' temp folders; the launcher it held is now a sealed memory file,
orchestrator/launcher.py), another agent's worktree, a repository's ``.git/hooks`` (run by
``workspaces merge``), the installed packages (``*.pth`` in site-packages, the editable
sources), the team record. So the policy hook (:mod:`orchestrator.policy`) asks
:func:`refusal` before every file tool call, resolving the path as the tool would reach it
(relative to the agent's folder, ``..`` and symlinks followed):

- always refused: the hidden folders, secret files and read-only files of the roster
  running now (the CLI's own deny rules are fixed at connect; this list is read live, so a
  prompt file added by hot reload is refused at once), any ``.git`` folder or file, other
  agents' worktrees (``.octy/worktrees/…`` outside the agent's own folder), the Python
  install and the packages the team runs, the team record folder, and the supervisor's
  launcher folder except the agent's own temp folder inside it;
- with ``owns`` unset: everything outside the agent's folder (its ``cwd`` or worktree) and
  its private temp folder. With ``owns`` set, its globs decide (:func:`policy.owner_check`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from orchestrator import globs, sandbox, workspaces
from orchestrator.cli.team_record import state_dir
from orchestrator.launcher import LAUNCHER_PREFIX, SDK_PACKAGE
from orchestrator.roster import AgentSpec, Roster

CLI_SETTINGS_PREFIX = "claude-settings-"  # the CLI's copy of --settings in its temp folder
WHAT_TO_DO = "ask the user (or an agent whose folder it is) to make the change"


def _real(path: Path | str) -> str:
    return os.path.realpath(path)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def install_folders() -> list[str]:
    """The Python install and the packages the team's code is loaded from (an editable
    install's sources are outside ``sys.prefix``)."""
    folders = [sys.prefix, sys.base_prefix, str(Path(__file__).parent)]
    spec = importlib.util.find_spec(SDK_PACKAGE)
    folders += list(spec.submodule_search_locations or []) if spec is not None else []
    return [_real(f) for f in dict.fromkeys(folders)]


def launcher_folder(temp: Path | None) -> str | None:
    """The supervisor's launcher folder that holds ``temp`` (``octy-*/tmp/AGENT``), if any."""
    if temp is None:
        return None
    root = Path(_real(temp)).parent.parent
    return str(root) if root.name.startswith(LAUNCHER_PREFIX) else None


def refusal(
    spec: AgentSpec, folder: Path, temp: Path | None, roster: Roster, path: str
) -> str | None:
    """None if the file tools may write ``path`` as far as confinement goes (``owns``, when
    set, is checked after); else why not, for the model."""
    if not path:
        return f"a file tool call without a path was refused; {WHAT_TO_DO}."
    anchor = _real(folder)
    real = globs.resolve(path, anchor)
    own_temp = _real(temp) if temp is not None else None

    def no(what: str) -> str:
        return f"{real} is {what}: this agent's file tools may not write it; {WHAT_TO_DO}."

    for hidden in sandbox.hidden_folders(roster):
        if _under(real, _real(hidden)):
            return no("in the team's private folder (database, logs)")
    if real in {_real(f) for f in sandbox.secret_files(roster)}:
        return no("the queue's credentials (creds or TLS key file)")
    if real in {_real(f) for f in sandbox.read_only_files(roster)}:
        return no("agents.yaml or a prompt file, which define the team")
    if ".git" in real.split("/"):
        return no("in a git repository's own files (.git: hooks, config, refs)")
    trees = f"/{workspaces.FOLDER}/"
    if trees in real + "/" and not (trees in anchor + "/" and _under(real, anchor)):
        return no("in the agents' worktrees, not this agent's own")
    launcher = launcher_folder(temp)
    in_own_temp = own_temp is not None and _under(real, own_temp)
    if launcher is not None and _under(real, launcher) and not in_own_temp:
        return no("in the supervisor's private launcher folder")
    if in_own_temp and os.path.basename(real).startswith(CLI_SETTINGS_PREFIX):
        # The CLI writes its --settings there and its sandbox reads them back.
        return no("the claude CLI's own settings (they hold this agent's sandbox rules)")
    for install in install_folders():
        if _under(real, install):
            return no("in the Python install or the packages the team runs")
    state = state_dir()
    if state is not None and _under(real, _real(state)):
        return no("in the folder where octy-orchestrate records which database each team uses")
    if spec.owns is not None:
        return None
    if _under(real, anchor) or in_own_temp:
        return None
    where = anchor + (f" and its temp folder {own_temp}" if own_temp else "")
    return (
        f"{real} is outside this agent's folder: its file tools may write only in {where}; "
        f"{WHAT_TO_DO}."
    )
