"""The sandbox setting: read from agents.yaml, turned into CLI settings, refused clearly
when the machine cannot provide it (issue 16 point 10)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest
from cli_runner import octy

from orchestrator.errors import RosterErrors
from orchestrator.roster import load_roster
from orchestrator.sandbox import (
    CLI_RUNTIME_FOLDERS,
    missing_programs,
    prepare_cli_folders,
    problems,
    settings,
)

ROSTER = """\
name: t
agents:
  shell:
    prompt_file: prompts/shell.md
    tools: [Bash]
  open:
    prompt: p
    sandbox: false
"""


def roster_in(folder: Path, text: str = ROSTER) -> Path:
    (folder / "prompts").mkdir(exist_ok=True)
    (folder / "prompts" / "shell.md").write_text("You are shell.", encoding="utf-8")
    path = folder / "agents.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_sandbox_is_on_unless_an_agent_opts_out(tmp_path: Path) -> None:
    """Every agent is sandboxed by default; ``sandbox: false`` opts one out; a value that
    is not a boolean is a roster error naming the key."""
    roster = load_roster(roster_in(tmp_path), {})
    assert roster.agents["shell"].sandbox is True
    assert roster.agents["open"].sandbox is False
    path = roster_in(tmp_path, ROSTER.replace("sandbox: false", "sandbox: maybe"))
    with pytest.raises(RosterErrors) as info:
        load_roster(path, {})
    assert [str(e) for e in info.value.errors] == [
        f"{path}:8: key 'agents.open.sandbox': expected true or false, got a string ('maybe')"
    ]


def test_settings_hide_the_database_and_logs_and_freeze_the_roster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI settings deny the team's private folders to Bash (sandbox) and to the file
    tools (permission rules), and make agents.yaml and prompt files read-only. The user's
    state folder is private too: its team records and roster cache name the database the
    operator's verbs use (an agent writing there sent `down` to a decoy: review H)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    roster = load_roster(roster_in(tmp_path), {})
    queue, logs = str(tmp_path / "queue"), str(tmp_path / "logs")
    state = str(tmp_path / "state" / "octy-orchestrate")
    frozen = [str(tmp_path / "agents.yaml"), str(tmp_path / "prompts" / "shell.md")]
    got = settings(roster.agents["shell"], roster)
    box = got["sandbox"]
    assert box["enabled"] is True
    assert box["failIfUnavailable"] is True
    assert box["allowUnsandboxedCommands"] is False
    assert box["filesystem"]["denyRead"] == ["/" + queue, "/" + logs, "/" + state]
    assert box["filesystem"]["denyWrite"] == ["/" + p for p in (queue, logs, state, *frozen)]
    assert f"Read(/{queue}/**)" in got["permissions"]["deny"]
    assert f"Edit(/{state}/**)" in got["permissions"]["deny"]
    assert f"Edit(/{logs}/**)" in got["permissions"]["deny"]
    assert f"Edit(/{frozen[0]})" in got["permissions"]["deny"]
    opted_out = settings(roster.agents["open"], roster)
    assert "sandbox" not in opted_out
    assert opted_out["permissions"] == got["permissions"]


def _up(folder: Path, path_env: str) -> subprocess.CompletedProcess[str]:
    """`up --json` with ``path_env`` as PATH (what it finds of bwrap and socat)."""
    env = {**os.environ, "PATH": path_env, "ANTHROPIC_API_KEY": "sk-ant-fake"}
    return octy("up", "--json", cwd=folder, env=env)


def test_up_refuses_sandboxed_agents_without_bubblewrap_and_says_how_to_fix_it(
    tmp_path: Path,
) -> None:
    """On a machine without bwrap/socat, ``up`` does not run agents unsandboxed: it exits 1
    naming the agents, the packages and the ``sandbox: false`` opt-out, before starting."""
    roster_in(tmp_path)
    empty = tmp_path / "bin"
    empty.mkdir()
    done = _up(tmp_path, str(empty))
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["error"] == "sandbox_unavailable"
    assert "agents shell run their tools in the claude CLI's sandbox" in report["message"]
    assert "apt-get install bubblewrap socat" in report["message"]
    assert "`sandbox: false`" in report["message"]
    assert not (tmp_path / "queue").exists()  # refused before anything started


def test_up_refuses_an_agent_whose_cwd_the_sandbox_would_hide(tmp_path: Path) -> None:
    """An agent working inside the database folder could not see its own work folder."""
    (tmp_path / "queue").mkdir()
    text = ROSTER.replace("    tools: [Bash]\n", "    tools: [Bash]\n    cwd: queue\n")
    roster_in(tmp_path, text)
    done = _up(tmp_path, os.environ["PATH"])
    assert done.returncode == 1, done.stdout + done.stderr
    message = json.loads(done.stdout)["message"]
    assert f"agent shell: its cwd {tmp_path / 'queue'} is inside {tmp_path / 'queue'}" in message


def test_an_agent_that_cannot_run_bash_needs_no_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bash in ``disallowed_tools`` (the starter, the demo): no sandbox block, so no
    bubblewrap needed; the permission rules still hold the file tools."""
    text = ROSTER.replace("    tools: [Bash]\n", "    disallowed_tools: [Bash]\n")
    roster = load_roster(roster_in(tmp_path, text), {})
    got = settings(roster.agents["shell"], roster)
    assert "sandbox" not in got
    assert got["permissions"]["deny"]
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap, no socat here
    assert missing_programs() == ["bubblewrap", "socat"]
    assert problems(roster) == []


def test_each_agent_gets_a_private_cli_temp_folder_removed_with_the_launcher() -> None:
    """The CLI writes its --settings to <tmpdir>/claude-settings-<content hash>.json and the
    sandbox reads it from there: agents with the same settings shared one file in
    /tmp/claude-<uid> and broke each other's Bash. Each agent's CLAUDE_CODE_TMPDIR is its
    own 0700 folder in the supervisor's private launcher folder, gone with it."""
    from orchestrator.launcher import (
        LAUNCHER_PREFIX,
        launcher_folder,
        make_launcher,
        private_tmpdir,
        remove_launcher,
    )

    launcher = make_launcher()
    assert launcher is not None
    folder = launcher_folder(launcher)
    assert folder is not None
    assert folder.name.startswith(LAUNCHER_PREFIX)
    a, b = private_tmpdir(folder, "alpha"), private_tmpdir(folder, "beta")
    assert a != b
    for path in (a, b, a.parent):
        assert path.is_dir()
        assert path.stat().st_mode & 0o777 == 0o700
    (a / "claude-settings-x.json").write_text("{}")
    remove_launcher(launcher)
    assert not folder.exists()


def test_tmpdir_joins_the_private_folder_only_where_a_socket_path_fits(tmp_path: Path) -> None:
    """TMPDIR (where the sandbox binds its proxies' sockets) is the agent's private folder,
    unless a socket's path there would pass the 107 bytes a Unix socket may have (the
    sandbox would fail, Bash with it) or the roster's `env` sets it."""
    from orchestrator.launcher import LAUNCHER_PREFIX, private_temp_env

    short = Path(tempfile.mkdtemp(prefix=LAUNCHER_PREFIX))  # as make_launcher's, in /tmp
    env = private_temp_env(short, "a", {})
    assert env["TMPDIR"] == env["CLAUDE_CODE_TMPDIR"] == str(short / "tmp" / "a")
    assert private_temp_env(short, "a", {"TMPDIR": "/mine"}) == {
        "CLAUDE_CODE_TMPDIR": str(short / "tmp" / "a")
    }
    deep = tmp_path / ("d" * 60) / f"{LAUNCHER_PREFIX}x"
    env = private_temp_env(deep, "a" * 40, {})
    assert "TMPDIR" not in env
    assert env["CLAUDE_CODE_TMPDIR"] == str(deep / "tmp" / ("a" * 40))
    shutil.rmtree(short)


def test_only_the_sockets_nobody_listens_on_are_removed(tmp_path: Path) -> None:
    """As an agent's next claude starts, the sandbox sockets its killed claude left go; a
    socket still listened on, and anything that is not a socket, stay."""
    import socket

    from orchestrator.launcher import remove_dead_sockets

    live, dead = socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)
    try:
        live.bind(str(tmp_path / "claude-http-live.sock"))
        live.listen()
        dead.bind(str(tmp_path / "claude-socks-dead.sock"))
        dead.close()  # the file stays, as a killed socat's does
        (tmp_path / "srt-mux-1-0.sock").write_text("not a socket")
        (tmp_path / "other.sock").write_text("")
        assert remove_dead_sockets(tmp_path) == ["claude-socks-dead.sock"]
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "claude-http-live.sock",
            "other.sock",
            "srt-mux-1-0.sock",
        ]
    finally:
        live.close()
        dead.close()


def test_the_clis_runtime_folders_are_made_before_a_sandboxed_agent_starts(
    tmp_path: Path,
) -> None:
    """The CLI's folders its sandbox protects and it makes during the first turn (the
    transcripts' ``projects`` first) are made, 0700, in the config folder the agent's CLI
    uses (CLAUDE_CONFIG_DIR, else HOME's .claude): a missing one raced the first command's
    bubblewrap ("Can't create file at ~/.claude/projects: Is a directory"). A link at a
    name is left alone; an agent without the sandbox gets nothing."""
    roster = load_roster(roster_in(tmp_path), {})
    home = tmp_path / "home"
    prepare_cli_folders(roster.agents["open"], {"HOME": str(home)})
    assert not home.exists()
    prepare_cli_folders(roster.agents["shell"], {"HOME": str(home)})
    for name in CLI_RUNTIME_FOLDERS:
        made = home / ".claude" / name
        assert made.is_dir()
        assert not made.is_symlink()
        assert made.stat().st_mode & 0o777 == 0o700
    config = tmp_path / "config"
    config.mkdir()
    (config / "projects").symlink_to(tmp_path / "elsewhere")
    prepare_cli_folders(
        roster.agents["shell"], {"HOME": str(home), "CLAUDE_CONFIG_DIR": str(config)}
    )
    assert (config / "projects").is_symlink()
    assert not (tmp_path / "elsewhere").exists()
    assert (config / "session-env").is_dir()
