"""What a team needs from HOME: the claude CLI's folder and the team record's, found or
refused clearly when HOME is unset, empty, relative or unusable (never a traceback)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.cli import team_record, user_folders


def test_the_record_folder_follows_xdg_state_home_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert team_record.record_dir() == tmp_path / "state" / "octy-orchestrate" / "teams"
    # Relative: ignored, as the XDG specification says (it would follow the working folder).
    monkeypatch.setenv("XDG_STATE_HOME", "state")
    expected = tmp_path / "h" / ".local" / "state" / "octy-orchestrate" / "teams"
    assert team_record.record_dir() == expected
    monkeypatch.delenv("XDG_STATE_HOME")
    assert team_record.record_dir() == expected
    monkeypatch.setenv("HOME", "h")  # was used as is: the record went to the working folder
    assert team_record.record_dir() is None
    assert team_record.record_path(tmp_path / "agents.yaml") is None
    assert team_record.read(tmp_path / "agents.yaml") is None
    # Empty (Python read it as "/"): the password database's home, as for an unset HOME.
    monkeypatch.setenv("HOME", "")
    own = Path(pwd.getpwuid(os.getuid()).pw_dir)
    assert team_record.record_dir() == own / ".local" / "state" / "octy-orchestrate" / "teams"


def test_write_says_why_it_cannot_record_the_team(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", "relative")
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    team_record.write(tmp_path / "agents.yaml", tmp_path / "q.db", tmp_path / "logs", ("a",))
    err = capsys.readouterr().err
    assert err.startswith("octy-orchestrate: warning: could not record the team (no folder")
    assert "set HOME or XDG_STATE_HOME" in err
    assert list(tmp_path.iterdir()) == []  # nothing written in the working folder


def test_the_claude_folder_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert user_folders.claude_folder_problem({"CLAUDE_CONFIG_DIR": str(tmp_path / "c")}) is None
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_folders.claude_folder_problem({}) is None
    problem = user_folders.claude_folder_problem({"CLAUDE_CONFIG_DIR": "/dev/null/.claude"})
    assert problem is not None
    assert problem.startswith(
        "the claude CLI's folder /dev/null/.claude cannot be made (/dev/null is no folder)"
    )
    assert "a restarted agent starts afresh" in problem
    monkeypatch.setenv("HOME", "relative")
    problem = user_folders.claude_folder_problem({})
    assert problem is not None
    assert problem.startswith("HOME is unset, empty or relative and this user has no home")


def _uid_without_home() -> int:
    for uid in range(54321, 54421):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
    pytest.skip("no free uid")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_up_for_a_user_without_home_and_no_home_set_says_so(tmp_path: Path) -> None:
    """A container's arbitrary uid, HOME unset: `up` ended in a RuntimeError traceback
    (Path.home()); now a warning says what it costs and what to set, and `up` goes on to
    its next check (no credentials here: exit 1, said in one line)."""
    uid = _uid_without_home()
    folder = tmp_path / "team"
    folder.mkdir()
    (folder / "agents.yaml").write_text(
        textwrap.dedent(
            """\
            name: t
            agents:
              a:
                prompt: hi
                disallowed_tools: [Bash]
            """
        ),
        encoding="utf-8",
    )
    os.chown(folder, uid, uid)
    os.chown(folder / "agents.yaml", uid, uid)
    tmp_path.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOME", "XDG_", "ANTHROPIC"))}
    env.pop("CLAUDE_CONFIG_DIR", None)
    env.pop("CLAUDE_CODE_OAUTH_TOKEN", None)
    setpriv = [shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}"]
    done = subprocess.run(
        [*setpriv, "--clear-groups", sys.executable, "-m", "orchestrator.cli", "up"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0].startswith("octy-orchestrate: warning: HOME is unset, empty or relative")
    assert lines[1].startswith("octy-orchestrate: no Claude credentials found")


def test_up_gives_its_claudes_the_home_it_records_the_team_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HOME unset or empty (a systemd unit, `env -i`): set from the password database for
    the supervisor and the claudes it starts, so both use one folder; a HOME set stays."""
    own = pwd.getpwuid(os.getuid()).pw_dir
    for unset in ("", None):
        if unset is None:
            monkeypatch.delenv("HOME")
        else:
            monkeypatch.setenv("HOME", unset)
        user_folders.settle_home()
        assert os.environ["HOME"] == own
    monkeypatch.setenv("HOME", "/somewhere/else")
    user_folders.settle_home()
    assert os.environ["HOME"] == "/somewhere/else"


def test_up_gives_its_claudes_the_standard_path_when_none_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PATH unset or empty: the system's standard one (CS_PATH), as a shell uses; a PATH
    set stays."""
    for unset in ("", None):
        if unset is None:
            monkeypatch.delenv("PATH")
        else:
            monkeypatch.setenv("PATH", unset)
        user_folders.settle_path()
        assert os.environ["PATH"] == os.confstr("CS_PATH")
        assert shutil.which("sh") is not None
    monkeypatch.setenv("PATH", "/somewhere/else")
    user_folders.settle_path()
    assert os.environ["PATH"] == "/somewhere/else"
