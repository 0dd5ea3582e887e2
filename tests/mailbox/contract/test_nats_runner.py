"""An agent's session on a real nats-server that dies and comes back: the runner (with a
double of the SDK client, tests/runner_bench.py) rides the outage out as one session."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import anyio
import pytest
import yaml
from natsserver import NatsServer
from runner_bench import Bench, said
from structlog.testing import capture_logs

from orchestrator import outage
from orchestrator.lifecycle import EndReason, SessionEnd
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox, faults
from orchestrator.mailbox.nats import records as rec
from orchestrator.roster import load_roster

OUTAGE_S = 2.0  # four of the primitives' retry budgets (0.5 s here): each step fails


async def test_a_session_rides_out_a_server_killed_at_its_reply_and_at_its_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server is SIGKILLed as the turn ends (its reply cannot be written) and stays
    down past the retry budget, then comes back: the reply is written then, once. Killed
    again just before the agent's next claim, it is back after two failed claims: the
    request sent then is answered. One session throughout, one warning per outage."""
    monkeypatch.setattr(faults, "RETRY_S", 0.5)
    monkeypatch.setattr(outage, "RETRY_S", 0.1)
    (tmp_path / "agents.yaml").write_text(
        yaml.safe_dump({"name": "unit", "agents": {n: {"prompt": n} for n in ("a", "b")}}),
        encoding="utf-8",
    )
    roster = load_roster(tmp_path / "agents.yaml")
    server = NatsServer(tmp_path / "s").start()
    try:
        async with NatsMailbox(NatsConfig((server.url,), request_timeout_s=0.5)) as mb:
            for name in ("a", "b"):
                await mb.register(name, name)
            bench = Bench(roster, mb)
            bench.answer = lambda prompt: [] if "slow?" in prompt else said("pong")
            slow = await mb.request("b", "a", "slow?")
            later: list[str] = []
            claims = {"since_kill": -1}

            async def before_claim(agent: str) -> None:
                """The runner's hook before each claim (a budget's pause): the second
                outage is timed on it, so that claims, not the idle wait, meet it."""
                if (
                    claims["since_kill"] < 0
                    and bench.clients
                    and await bench.status(slow) == "done"
                ):
                    server.stop(signal.SIGKILL)
                    claims["since_kill"] = 0
                elif claims["since_kill"] >= 0 and not later:
                    claims["since_kill"] += 1
                    if claims["since_kill"] == 3:  # two claims failed meanwhile
                        server.start()
                        later.append((await mb.request("b", "a", "ping?")).id)

            agent = bench.runner(hold=before_claim)

            async def through_two_outages() -> bool:
                if len(bench.queries) == 1 and not claims.get("killed_at_reply"):  # mid-turn
                    claims["killed_at_reply"] = 1
                    server.stop(signal.SIGKILL)
                    for item in said("slow pong"):
                        await bench.clients[0].say(item)
                    await anyio.sleep(OUTAGE_S)  # the reply fails, and is tried again
                    server.start()
                return bool(later) and await mb.find_reply(later[0]) is not None

            with capture_logs() as logs:
                end = await bench.run_until(through_two_outages, runner_=agent)
            assert end == SessionEnd(EndReason.STOPPED)
            assert len(bench.clients) == 1
            assert [m.body for m in await mb.related(slow.id) if m.kind == "response"] == [
                "slow pong"
            ]
            said_ = ("queue_out_of_reach", "queue_back")
            doing = [(e["event"], e.get("doing")) for e in logs if e["event"] in said_]
            assert doing == [
                ("queue_out_of_reach", "reply"),
                ("queue_back", None),
                ("queue_out_of_reach", "claim"),
                ("queue_back", None),
            ]
    finally:
        server.stop()


async def test_a_request_whose_reply_record_is_garbled_is_dead_lettered_not_a_crash(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """Another program wrote garbage at the reply key ``r.<id>`` of a request (`nats kv
    put`): no answer can be stored there. The session used to end on RecordUnreadable
    with the batch given back uncounted: a crash loop, never dead-lettered. Now the
    request goes to the dead letters naming the key, and the session goes on to the
    next request."""
    (tmp_path / "agents.yaml").write_text(
        yaml.safe_dump({"name": "unit", "agents": {n: {"prompt": n} for n in ("a", "b")}}),
        encoding="utf-8",
    )
    roster = load_roster(tmp_path / "agents.yaml")
    config = NatsConfig((nats_server.url,), namespace=f"g{uuid.uuid4().hex[:8]}")
    async with NatsMailbox(config) as mb:
        for name in ("a", "b"):
            await mb.register(name, name)
        garbled = await mb.request("b", "a", "hello?")
        await mb.kv.put(rec.reply_key(garbled.id), b"garbage")
        fine = await mb.request("b", "a", "second?")
        bench = Bench(roster, mb)
        bench.answer = lambda prompt: said("pong")

        async def answered() -> bool:
            return await mb.find_reply(fine.id) is not None

        with capture_logs() as logs:
            end = await bench.run_until(answered)
        assert end == SessionEnd(EndReason.STOPPED)
        assert len(bench.clients) == 1
        dead = await mb.get(garbled.id)
        assert (dead.status, dead.error) == ("dead", "record_unreadable")
        assert rec.reply_key(garbled.id) in (dead.error_detail or "")
        assert [e["key"] for e in logs if e["event"] == "reply_unreadable"] == [
            rec.reply_key(garbled.id)
        ]
