"""`top` on a team whose queue is NATS JetStream (`queue: nats://...`): a real
nats-server, a real team (claude CLI, scripted model), `top` in a real terminal (tmux).
Before, `top` read the local queue/team.db, which such a team does not use for its
messages, and showed an empty team."""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The NATS helpers of the queue's conformance suite (a real server on a free port, the
# harness's team on JetStream): one server process and one team helper for the project.
sys.path.insert(0, str(Path(__file__).parents[1] / "mailbox" / "contract"))

from natsserver import NatsServer
from natsteam import NatsTeam
from team_harness import agent_rule
from tmux_screen import Terminal, row_of

from orchestrator.mailbox.nats import NatsConfig

pytestmark = [
    pytest.mark.cli,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("tmux") is None and not os.environ.get("CI"), reason="tmux is not installed"
    ),
]


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats")).start()
    yield server
    server.stop()


@pytest.fixture
def nats_team(
    tmp_path: Path, nats_server: NatsServer, scripted_model: Any, claude_env: Any
) -> Iterator[Callable[..., NatsTeam]]:
    made: list[NatsTeam] = []

    def make(rules: list[dict[str, Any]], agents: dict[str, dict[str, Any]]) -> NatsTeam:
        namespace = f"top{uuid.uuid4().hex[:8]}"
        model = scripted_model({"rules": rules})
        config = NatsConfig((nats_server.url,), namespace=namespace)
        queue = {"servers": nats_server.url, "namespace": namespace}
        made.append(
            NatsTeam(tmp_path, claude_env(model), agents, model=model, queue=queue, nats=config)
        )
        return made[-1]

    yield make
    for t in made:
        t.stop()


def test_top_shows_a_nats_team_and_restarts_through_its_queue(
    nats_team: Callable[..., NatsTeam],
) -> None:
    """The rows (pids of this machine's supervisor's agents), the team line naming the
    NATS queue with its counts, a message in the queue counted, and `r` restarting an
    agent through the NATS queue (a new pid)."""
    t = nats_team([{"agent": agent_rule("a"), "match": "ping", "text": "pong"}], {"a": {}, "b": {}})
    t.up()
    t.wait_ready("a", "b", timeout=120)
    assert t.ask("a", "ping", timeout=120) == "pong"
    with t.mailbox() as mb:  # waits in the queue: nobody runs `c`
        mb.register("c")
        mb.send("user", "c", "for later")
    term = Terminal(t.folder, {**t.env, "TERM": "xterm-256color"}, width=140, height=30)
    try:
        screen = term.wait(
            lambda s: row_of(s, "a")[1:2] == ["ready"] and row_of(s, "b")[1:2] == ["ready"],
            "a and b ready on screen",
        )
        team_line = screen.splitlines()[0]
        assert f"supervisor {t.proc.pid if t.proc else '?'} up" in team_line
        assert "NATS nats://127.0.0.1:" in team_line
        assert "│ queue 1 │" in team_line
        old_pid = row_of(screen, "a")[2]
        assert old_pid == str(t.agent_pid("a"))
        assert row_of(screen, "a")[7] == "1"  # one turn, from the registry on NATS

        term.keys("t")  # the trace of a's newest request, read from the NATS queue
        term.wait(lambda s: "trace of" in s and "ping" in s, "a's trace")
        term.keys("q")
        term.wait(lambda s: row_of(s, "a") and "trace of" not in s, "back to the table")

        term.keys("r")  # the cursor starts on the first row: a
        term.wait(lambda s: "Restart agent 'a'?" in s, "the confirmation")
        term.keys("y")
        term.wait(
            lambda s: (r := row_of(s, "a"))[1:2] == ["ready"] and r[2] not in (old_pid, "-"),
            "a restarted with a new pid",
        )
        term.keys("q")
        deadline = time.monotonic() + 60
        while not term.dead() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert term.dead(), "top did not quit on q"
    finally:
        term.close()

    # Another machine: the same roster, no supervisor and no database there.
    other = t.folder / "elsewhere"
    other.mkdir()
    shutil.copy(t.roster_path, other / "agents.yaml")
    term = Terminal(other, {**t.env, "TERM": "xterm-256color"}, width=200, height=30)
    try:
        screen = term.wait(
            lambda s: row_of(s, "a")[1:2] == ["ready"] and row_of(s, "b")[1:2] == ["ready"],
            "the team seen from a machine with no supervisor",
        )
        team_line = screen.splitlines()[0]
        assert "no supervisor on this machine" in team_line
        assert "│ queue 1 │" in team_line
        assert row_of(screen, "a")[2] == "-"  # its pid is another machine's
        assert not (other / "queue").exists()  # nothing created here
    finally:
        term.close()
