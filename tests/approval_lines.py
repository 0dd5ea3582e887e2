"""The approval hook's answer to one Bash line, and whether bash really runs the line's
code: shared by the tests of what the hook reads in a line (wrappers, runners, options,
code in options, make and ssh files)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio

from orchestrator.policy import Policy
from orchestrator.roster import parse_roster

RULE = "Bash(git push:*)"
"""The agent's one auto-approve rule: git state the hook reads is in play."""


def answer(
    folder: Path,
    line: str,
    tools: list[str],
    *,
    rule: str = RULE,
    home: Path | None = None,
    variables: dict[str, str] | None = None,
) -> tuple[list[str], Any]:
    """Why the real hook asks for ``line`` (agent ``a`` with ``tools``, ``rule`` and, if
    given, ``home`` as its HOME and ``variables`` in its roster ``env``, working in
    ``folder``): one reason per ask, none when it lets the line run; and the hook's own
    answer."""
    given = {**({} if home is None else {"HOME": str(home)}), **(variables or {})}
    env = f", env: {json.dumps(given)}" if given else ""
    roster = parse_roster(
        f"agents:\n  a: {{prompt: p, tools: {json.dumps(tools)}, "
        f"approve: [{json.dumps(rule)}]{env}}}\n",
        folder / "agents.yaml",
        {},
    )
    asked: list[str] = []

    async def ask(
        tool: str, tool_input: dict[str, Any], subagent: str | None, why: str = ""
    ) -> tuple[bool, str]:
        asked.append(why)
        return False, "denied by user: no"

    policy = Policy("a", lambda: roster, lambda: folder, ask)
    data: Any = {"tool_name": "Bash", "tool_input": {"command": line}, "cwd": str(folder)}
    return asked, anyio.run(policy.pre_tool_use, data, None, {"signal": None})


def decide(folder: Path, line: str, tools: list[str]) -> list[str]:
    """Why the real hook asks for ``line`` (agent ``a`` with ``tools`` and RULE, working
    in ``folder``): one reason per ask, none when it lets the line run."""
    return answer(folder, line, tools)[0]


def runs(line: str, folder: Path) -> bool:
    """Whether bash, with no terminal (as the CLI's Bash), leaves `ran-it` behind.

    SHELL and TERM are set as a user's login sets them, whatever the test runner has:
    make runs the shells of `X!=CMD` and of MAKEFLAGS' `--eval` as `$(SHELL)` before its
    own default applies, and watch and vim stop at once with no terminal type, so with
    either unset (CI's machine had no SHELL; measured under `env -i`: `make -f /dev/null
    'X!=touch ran-it'`, `watch -g …`, `VIMINIT=… vim` ran nothing) the code the hook asks
    about would not run here."""
    marker = folder / "ran-it"
    marker.unlink(missing_ok=True)
    env = {**os.environ, "HOME": str(folder), "SHELL": "/bin/bash", "TERM": "xterm"}
    null = subprocess.DEVNULL
    proc = subprocess.Popen(
        ["bash", "-c", line],
        cwd=folder,
        env=env,
        stdin=null,
        stdout=null,
        stderr=null,
        start_new_session=True,
    )
    # Done once the code ran, whatever the program does after: a tmux client whose
    # server ran `run 'touch ran-it'`, then ended with its session's failed shell, hung
    # for good under load (the full suite at load 5-7: `new -d \;\; run …`).
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline and not marker.exists():
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return marker.exists()


def asks_unread(folder: Path, line: str, ran: bool | None, why: str, tools: list[str]) -> None:
    """``line`` run by bash runs its code when ``ran`` says so (None: not run here), and the
    hook, the agent holding ``tools`` and RULE, asks once: ``why``, cannot be read."""
    if ran is not None:
        assert runs(line, folder) is ran
    assert decide(folder, line, tools) == [f"matches {RULE}: {why}: cannot be read"]


def git(folder: Path, *args: str) -> str:
    """Run git in ``folder`` as a fresh user would (its own HOME, a fixed identity)."""
    env = {"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "a"}
    env |= {"GIT_COMMITTER_EMAIL": "a@x", "PATH": "/usr/bin:/bin", "HOME": str(folder)}
    done = subprocess.run(
        ["git", *args], cwd=folder, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def pushable(tmp_path: Path) -> tuple[Path, Path]:
    """A bare remote and a repository with one commit whose `origin` it is: a `git push`
    that really runs shows as the two heads being equal."""
    remote, repo = tmp_path / "remote.git", tmp_path / "repo"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    git(repo, "commit", "-q", "--allow-empty", "-m", "x")
    git(repo, "remote", "add", "origin", str(remote))
    return remote, repo
