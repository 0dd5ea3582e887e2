"""Each claude runs with TMPDIR in its own 0700 folder of the supervisor's launcher folder.

The bundled CLI's sandbox makes its proxies' sockets (`claude-http-*.sock`,
`claude-socks-*.sock`) in TMPDIR and never removes them when the claude is killed: /tmp
held hundreds. In the launcher folder they go with it. Real `up`, the real CLI in its
sandbox, real signals."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from polling import until
from team_harness import Team, agent_rule

from orchestrator import procid

pytestmark = [
    pytest.mark.cli,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("socat") is None, reason="the CLI's sandbox needs socat"),
]

TeamFactory = Callable[..., Team]
# What the shell sees of its temp folder, that it can write there, and that the sandbox's
# network proxy answers (a refusal from the proxy: no internet is needed).
PROBE = (
    'echo "TMPDIR=$TMPDIR"; f=$(mktemp) && echo written > "$f" && echo "MKTEMP=$f"; '
    "curl -s -o /dev/null -w 'HTTP=%{http_code}' http://example.invalid/ ; echo"
)


def probe_rules(agent: str) -> list[dict[str, object]]:
    return [
        {"agent": agent_rule(agent), "tool_result": r"(?s)^(.+)$", "text": "RESULT {1}"},
        {
            "agent": agent_rule(agent),
            "match": r"probe",
            "tool_use": {"name": "Bash", "input": {"command": PROBE}},
        },
    ]


@pytest.fixture
def boxed(team: TeamFactory) -> Iterator[Team]:
    t = team(probe_rules("a"), {"a": {"tools": ["Bash"]}})
    tmp = tempfile.mkdtemp(prefix="tmpdir-test-")  # short: a socket's path is <= 107 bytes
    t.env["TMPDIR"] = tmp
    yield t
    t.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def environ_of(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(os.fsdecode(p).partition("=")[::2] for p in pairs if b"=" in p)


def sandbox_sockets(folder: Path) -> set[Path]:
    """The sandbox's proxy sockets anywhere under ``folder``."""
    return {
        p
        for p in folder.rglob("*.sock")
        if p.name.startswith(("claude-http-", "claude-socks-", "srt-mux-")) and p.is_socket()
    }


def test_the_shell_and_the_sandbox_work_in_the_agents_own_temp_folder(boxed: Team) -> None:
    """Bash's TMPDIR, its mktemp files and the sandbox's sockets are in the agent's private
    folder (inside the launcher folder), never in the TMPDIR `up` was given; the sandbox's
    network proxy still answers through its socket (a refusal: the host is not allowed)."""
    boxed.up()
    boxed.wait_ready("a")
    pid = boxed.agent_pid("a")
    assert pid
    private = Path(environ_of(pid)["TMPDIR"])
    assert private == Path(environ_of(pid)["CLAUDE_CODE_TMPDIR"])
    assert private.parent.parent.name.startswith("octy-")  # <launcher folder>/tmp/a
    assert private.stat().st_mode & 0o777 == 0o700
    # Made before the CLI started: its first command's sandbox never races the CLI to
    # make the transcripts' folder (CI: "bwrap: Can't create file at ~/.claude/projects").
    projects = Path(boxed.env["HOME"]) / ".claude" / "projects"
    assert projects.is_dir()
    answer = boxed.ask("a", "probe", timeout=120)
    assert f"TMPDIR={private}/" in answer
    [written] = [w.partition("=")[2] for w in answer.split() if w.startswith("MKTEMP=")]
    assert Path(written).read_text() == "written\n"
    assert "HTTP=403" in answer  # the proxy's answer: its socket works
    root = Path(boxed.env["TMPDIR"])
    assert sandbox_sockets(private)
    assert not {p for p in sandbox_sockets(root) if private not in p.parents}
    assert [p.name for p in root.iterdir()] == [private.parent.parent.name]
    assert projects.is_dir()
    assert any(projects.rglob("*.jsonl"))


def test_a_killed_claudes_sockets_go_at_its_restart_and_with_the_folder(boxed: Team) -> None:
    """A claude SIGKILLed leaves its sandbox's sockets; the agent's next claude starts after
    they are removed, and what the running one made goes with the launcher folder when its
    supervisor is SIGKILLed too (its watchman removes it). Nothing is left in TMPDIR."""
    boxed.up()
    boxed.wait_ready("a")
    first = boxed.agent_pid("a")
    assert first
    private = Path(environ_of(first)["TMPDIR"])
    assert "HTTP=403" in boxed.ask("a", "probe", timeout=120)
    left = sandbox_sockets(private)
    assert left
    os.kill(first, signal.SIGKILL)
    second = boxed.wait_for(
        lambda: (p := boxed.agent_pid("a")) != first and boxed.states().get("a") == "ready" and p,
        90,
        "a restarted",
    )
    assert "HTTP=403" in boxed.ask("a", "probe", timeout=120)
    now = sandbox_sockets(private)
    assert now
    assert not now & left
    assert boxed.proc is not None
    os.kill(boxed.proc.pid, signal.SIGKILL)
    boxed.proc.wait(30)
    # The launcher folder itself, not `private` inside it: rmtree removes the deepest first,
    # and a scan of TMPDIR while it is still removing the rest met a folder gone mid-scan
    # (FileNotFoundError, 1 run in 4 beside two busy loops).
    launcher = private.parent.parent
    until(lambda: not launcher.exists(), "the watchman to remove the launcher folder")
    until(lambda: not procid.running(second), "the claude to die with its supervisor")
    assert not sandbox_sockets(Path(boxed.env["TMPDIR"]))
