"""A real team on a JetStream queue: `up` with `queue: nats://...`, real claude CLIs
against the scripted model, agents asking each other through the NATS server."""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from natsserver import NatsServer
from natsteam import ASK_BETA_RULES, NatsTeam
from team_harness import agent_rule

from orchestrator.mailbox import SUPERVISOR, Mailbox
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox
from orchestrator.mailbox.nats.records import agent_key

pytestmark = [pytest.mark.cli]


@pytest.fixture
def nats_team(
    tmp_path: Path, nats_server: NatsServer, scripted_model: Any, claude_env: Any
) -> Iterator[Callable[..., NatsTeam]]:
    made: list[NatsTeam] = []

    def make(rules: list[dict[str, Any]], agents: dict[str, dict[str, Any]]) -> NatsTeam:
        namespace = f"team{uuid.uuid4().hex[:8]}"
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


def test_agents_ask_each_other_through_jetstream(nats_team: Callable[..., NatsTeam]) -> None:
    """alpha asks beta with the ask tool; the request, beta's reply and alpha's answer to
    the user all travel through the NATS server, and nothing stays open."""
    t = nats_team(
        ASK_BETA_RULES,
        {"alpha": {}, "beta": {}},
    )
    t.up()
    t.wait_ready("alpha", "beta", timeout=120)
    assert t.ask("alpha", "what is the capital of France", timeout=120) == (
        "alpha heard: BETA-France"
    )
    asks = [m for m in t.messages(sender="alpha") if m.kind == "request"]
    assert [(m.recipient, m.status) for m in asks] == [("beta", "done")]
    t.wait_for(lambda: not t.messages(status="leased"), what="every delivery acked")
    with Mailbox(t.folder / "queue" / "team.db") as local:  # only the spend ledger is local
        assert local.list() == []
    assert t.proc is not None
    for agent in ("alpha", "beta"):  # the running supervisor holds its agents' leases
        holder = t.holder(agent)
        assert holder is not None
        assert holder["pid"] == t.proc.pid
    t.stop()
    assert t.proc.returncode == 0
    assert t.holder("alpha") is None
    assert t.holder("beta") is None


def test_a_terminal_ask_of_a_stopped_or_failed_agent_is_refused_at_once_on_nats(
    nats_team: Callable[..., NatsTeam],
) -> None:
    """As on SQLite: `ask` of an agent the running team reports stopped or failed is
    refused before anything is sent (recipient_stopped, recipient_failed, exit 1); it
    waited out its --timeout (exit 4, the request left queued). With the team down, the
    ask is queued for its next `up`, as on SQLite."""
    t = nats_team(
        [{"agent": agent_rule("alpha"), "text": "alpha here"}],
        {"alpha": {}, "beta": {}, "gamma": {"restart": "never"}},
    )
    t.up()
    t.wait_ready("alpha", "beta", "gamma", timeout=120)
    assert t.cli("stop", "beta").returncode == 0
    gamma = t.agent_pid("gamma")
    assert gamma is not None
    os.kill(gamma, signal.SIGKILL)
    t.wait_for(lambda: t.states().get("gamma") == "failed", what="gamma failed")
    for name, code in (("beta", "recipient_stopped"), ("gamma", "recipient_failed")):
        done = t.cli("ask", name, "there?", "--timeout", "60", "--json")
        assert done.returncode == 1, done.stdout + done.stderr
        assert json.loads(done.stdout)["error"] == code
        assert t.messages(recipient=name) == []  # nothing was sent
    assert t.cli("ask", "alpha", "there?", "--timeout", "60").stdout.strip() == "alpha here"
    assert t.cli("down").returncode == 0
    done = t.cli("ask", "beta", "for later", "--timeout", "0.5", "--json")
    assert done.returncode == 4, done.stdout + done.stderr  # queued: answered after `up`
    assert [m.body for m in t.messages(recipient="beta")] == ["for later"]


def test_a_garbled_supervisor_row_does_not_end_a_terminal_ask_on_nats(
    nats_team: Callable[..., NatsTeam],
) -> None:
    """The `supervisor` row garbled in the bucket (`nats kv put` by hand, a script, any
    participant with the bucket's credentials): `ask` read it to tell whether the team
    runs, and every ask of a supervised agent failed (the record unreadable) where it was
    queued before. Unreadable says nothing of a running team: the ask is queued."""
    t = nats_team([{"agent": agent_rule("alpha"), "text": "alpha here"}], {"alpha": {}})

    async def garble() -> None:
        async with NatsMailbox(t.nats) as mb:
            await mb.register_supervisor(1, {})
            await mb.register("alpha", "", state="stopped")
            await mb.update_agent("alpha", meta={"supervised": True}, heartbeat=False)
            await mb.kv.put(agent_key(SUPERVISOR), b"not a row")

    anyio.run(garble)
    done = t.cli("ask", "alpha", "for later", "--timeout", "0.5", "--json")
    assert done.returncode == 4, done.stdout + done.stderr  # queued: answered after `up`
    assert [m.body for m in t.messages(recipient="alpha")] == ["for later"]
