"""`inbox AGENT --ack` on a NATS team: refused for an agent of the running team (as on
SQLite), and only then. "Running" is the supervisor's row saying so with a recent
heartbeat, as `ask` reads it: a supervisor killed -9 leaves its row `running` for ever,
and the refusal ("stop the team first") then had no way out (`down`: no supervisor runs)
until the next `up`; a row garbled in the bucket made every `inbox --ack` of a roster
agent fail (record_unreadable)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import pytest
from contract_openers import cli_roster
from natsserver import NatsServer

from orchestrator.cli import main
from orchestrator.held_wait import SUPERVISOR_SILENT_AFTER_S
from orchestrator.mailbox import SUPERVISOR
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox
from orchestrator.mailbox.nats.records import agent_key


@pytest.fixture
def team(tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch) -> NatsConfig:
    return cli_roster(tmp_path, nats_server.url, monkeypatch, "ack")


def rows(config: NatsConfig, *, beat_ago: float, garble: bool = False) -> None:
    """What a supervisor leaves in the bucket: its own row (`running`, its heartbeat
    ``beat_ago`` seconds old) and a roster agent's (supervised, stopped), with a notice
    for that agent."""

    async def write() -> None:
        async with NatsMailbox(config, clock=lambda: time.time() - beat_ago) as mb:
            await mb.register_supervisor(4_000_000, {})
        async with NatsMailbox(config) as mb:
            await mb.register("bob", "", state="stopped")
            await mb.update_agent("bob", meta={"supervised": True}, heartbeat=False)
            await mb.send("user", "bob", "for bob")
            if garble:
                await mb.kv.put(agent_key(SUPERVISOR), b"not a row")

    anyio.run(write)


def ack(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(["inbox", "bob", "--ack", "--json"])
    out = capsys.readouterr().out  # (a warning about a garbled row may come first)
    return code, json.loads(out.strip().splitlines()[-1])


def test_inbox_ack_of_a_running_nats_teams_agent_is_refused(
    team: NatsConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    rows(team, beat_ago=0)
    code, out = ack(capsys)
    assert code == 1, out
    assert out["error"] == "supervised"  # as `unregister` refuses it
    assert "4000000" in str(out["message"])


def test_inbox_ack_after_the_nats_supervisor_was_killed_is_not_refused(
    team: NatsConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    rows(team, beat_ago=SUPERVISOR_SILENT_AFTER_S + 40)  # killed -9: `running`, silent
    code, out = ack(capsys)
    assert code == 0, out
    assert "for bob" in json.dumps(out)


def test_a_garbled_supervisor_row_does_not_fail_inbox_ack(
    team: NatsConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    rows(team, beat_ago=0, garble=True)
    code, out = ack(capsys)
    assert code == 0, out
    assert "for bob" in json.dumps(out)


def test_unregister_after_the_nats_supervisor_was_killed_is_not_refused(
    team: NatsConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same row read by `unregister` (the backend's refusal): refused for ever after a
    kill -9 of the supervisor, where SQLite's lock file lets it through."""
    rows(team, beat_ago=SUPERVISOR_SILENT_AFTER_S + 40)
    assert main(["unregister", "bob"]) == 0, capsys.readouterr()
    rows(team, beat_ago=0)  # a supervisor that runs: refused still
    assert main(["unregister", "bob", "--json"]) == 1
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["error"] == "supervised"
