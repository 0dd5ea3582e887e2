"""Several supervisors, one team on one NATS server: each folder is a "machine" with
the same agents.yaml, `up alpha` on one, `up beta` on another. Real supervisors, real
claude CLIs against the scripted model, one real nats-server."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from natsserver import NatsServer
from natsteam import ASK_BETA_RULES, MachineTeam
from team_harness import agent_rule, stop_claude_as_it_starts

from orchestrator import procid
from orchestrator.mailbox import SUPERVISOR, USER
from orchestrator.mailbox.nats import NatsConfig
from orchestrator.relay import text_of

pytestmark = [pytest.mark.cli]

RULES: list[dict[str, Any]] = [
    *ASK_BETA_RULES,
    {"agent": agent_rule("gamma"), "text": "GAMMA-ok"},
]
AGENTS: dict[str, dict[str, Any]] = {"alpha": {}, "beta": {}, "gamma": {}}


@pytest.fixture
def machines(
    tmp_path: Path, nats_server: NatsServer, scripted_model: Any, claude_env: Any
) -> Iterator[Callable[[int], list[MachineTeam]]]:
    """``machines(n)``: n folders sharing one team on the server (agent leases of 2 s,
    or ``lease``)."""
    made: list[MachineTeam] = []

    def make(
        n: int,
        agents: dict[str, dict[str, Any]] = AGENTS,
        rules: list[dict[str, Any]] | None = None,
        lease: str = "2s",
    ) -> list[MachineTeam]:
        namespace = f"team{uuid.uuid4().hex[:8]}"
        model = scripted_model({"rules": [*(rules or []), *RULES]})
        config = NatsConfig((nats_server.url,), namespace=namespace)
        queue = {"servers": nats_server.url, "namespace": namespace, "agent_lease": lease}
        for i in range(n):
            folder = tmp_path / f"machine{i + 1}"
            folder.mkdir()
            env = claude_env(model, home=folder / "home")
            made.append(MachineTeam(folder, env, agents, model=model, queue=queue, nats=config))
        return made

    yield make
    for t in reversed(made):
        t.stop()


def _ask(t: MachineTeam, to: str, text: str) -> tuple[str, str]:
    """(request id, reply text) of a question from the user."""
    with t.mailbox() as mb:
        request = mb.request(USER, to, text)
        return request.id, text_of(mb.wait_for_reply(request.id, 120).body)


def test_two_supervisors_run_one_team_and_a_third_is_refused_a_held_agent(
    machines: Callable[[int], list[MachineTeam]],
) -> None:
    """alpha runs on machine 1, beta on machine 2: alpha asks beta across them exactly as
    on one, and `trace` on machine 2 follows the request through both. A third
    supervisor asked for alpha and gamma refuses alpha, naming machine 1's host and pid,
    and runs gamma; stopped cleanly, it frees gamma's lease and leaves alpha alone."""
    m1, m2, m3 = machines(3)
    m1.up("alpha")
    m1.wait_ready("alpha", timeout=120)
    m2.up("beta")
    m2.wait_ready("beta", timeout=120)
    assert m1.proc is not None
    assert m2.proc is not None
    assert (m1.holder("alpha") or {}).get("pid") == m1.proc.pid
    assert (m1.holder("beta") or {}).get("pid") == m2.proc.pid
    assert m1.states()["gamma"] == "stopped"  # nobody runs it; it still gets messages

    request_id, answer = _ask(m2, "alpha", "what is the capital of France")
    assert answer == "alpha heard: BETA-France"
    done = m2.cli("trace", request_id, "--json")
    assert done.returncode == 0, done.stderr
    steps = {(s["kind"], s["actor"], s["target"]) for s in json.loads(done.stdout)["steps"]}
    assert {
        ("request", USER, "alpha"),
        ("claimed", "alpha", None),
        ("request", "alpha", "beta"),
        ("claimed", "beta", None),
        ("reply", "beta", "alpha"),
        ("reply", "alpha", USER),
    } <= steps

    m3.up("alpha", "gamma")
    m3.wait_ready("gamma", timeout=120)
    m3.wait_for(
        lambda: "agent_held_elsewhere" in m3.output() and f"pid {m1.proc.pid}" in m3.output(),
        what="alpha refused, naming its holder",
    )
    assert m3.proc is not None
    assert (m3.holder("alpha") or {}).get("pid") == m1.proc.pid
    assert (m3.holder("gamma") or {}).get("pid") == m3.proc.pid
    assert m3.states()["alpha"] == "ready"  # machine 3 left alpha's row alone
    assert _ask(m3, "gamma", "hello")[1] == "GAMMA-ok"
    m3.signal(signal.SIGTERM)
    assert m3.wait_exit(60) == 0
    assert m1.holder("gamma") is None
    assert (m1.holder("alpha") or {}).get("pid") == m1.proc.pid
    assert m1.states()["alpha"] == "ready"
    assert m1.states()["gamma"] == "stopped"


def _alpha_on_1_beta_on_2(
    machines: Callable[[int], list[MachineTeam]],
) -> tuple[MachineTeam, MachineTeam]:
    """Two machines: alpha runs on the first, beta on the second, both ready."""
    m1, m2 = machines(2)
    m1.up("alpha")
    m1.wait_ready("alpha", timeout=120)
    m2.up("beta")
    m2.wait_ready("beta", timeout=120)
    assert m1.proc is not None
    assert m2.proc is not None
    return m1, m2


def test_a_killed_supervisors_agent_runs_elsewhere_and_gets_its_messages(
    machines: Callable[[int], list[MachineTeam]],
) -> None:
    """Machine 1 (supervisor and its claude) is SIGKILLed: a request sent to its alpha
    waits; once alpha's lease has run out, `start alpha` on machine 2 takes it over
    and the request is answered there. Nothing is left leased."""
    m1, m2 = _alpha_on_1_beta_on_2(machines)
    refused = m2.cli("start", "alpha")  # held by machine 1: machine 2 may not run it
    assert refused.returncode == 1
    assert "agent 'alpha' already runs under the supervisor on" in refused.stderr
    assert f"(pid {m1.proc.pid})" in refused.stderr
    # Nor stop it; it said 'stop: alpha already stopped' while alpha ran on machine 1.
    stop = m2.cli("stop", "alpha")
    assert stop.returncode == 1, stop.stdout
    assert "agent 'alpha' already runs under the supervisor on" in stop.stderr
    assert f"(pid {m1.proc.pid})" in stop.stderr
    assert m2.states()["alpha"] == "ready"
    # Every agent (no name): alpha is machine 1's, left alone, not a failure (exit 1).
    every = m2.cli("start")
    assert every.returncode == 0, every.stderr
    assert "start: alpha left alone: agent 'alpha' already runs under" in every.stdout

    os.killpg(m1.proc.pid, signal.SIGKILL)  # the machine is gone, its claude with it
    m1.proc.wait(30)
    with m2.mailbox() as mb:
        request = mb.request(USER, "alpha", "what is the capital of Peru")
    m2.wait_for(lambda: m2.holder("alpha") is None, what="alpha's lease runs out")
    started = m2.cli("start", "alpha")
    assert started.returncode == 0, started.stderr
    with m2.mailbox() as mb:
        assert text_of(mb.wait_for_reply(request.id, 120).body) == "alpha heard: BETA-Peru"
    assert (m2.holder("alpha") or {}).get("pid") == m2.proc.pid
    m2.wait_for(lambda: not m2.messages(status="leased"), what="every delivery acked")
    assert [m.status for m in m2.messages(status="pending")] == []


def test_a_supervisor_killed_and_run_again_on_its_machine_runs_its_agents_at_once(
    machines: Callable[..., list[MachineTeam]],
) -> None:
    """`up`, SIGKILL (supervisor and claudes), `up` again at once: the dead supervisor's
    leases (60 s here, 15 s by default) named a process gone from this machine, yet the
    new one was refused every agent (`agent_held_elsewhere`), left them stopped for good
    and `ps` showed the dead one's `ready` (measured: no agent held 30 s after, with the
    default lease). Now each is taken over at once and runs again."""
    (m1,) = machines(1, lease="60s")
    m1.up()
    m1.wait_ready("alpha", "beta", "gamma", timeout=120)
    assert m1.proc is not None
    dead = {name: m1.agent_pid(name) for name in AGENTS}
    os.killpg(m1.proc.pid, signal.SIGKILL)
    m1.proc.wait(30)
    m1.up()
    new = m1.proc.pid

    def running_again() -> bool:
        states = m1.states()
        return all(
            (m1.holder(n) or {}).get("pid") == new
            and states.get(n) == "ready"
            and m1.agent_pid(n) not in (None, dead[n])
            for n in AGENTS
        )

    m1.wait_for(running_again, timeout=120, what="every agent run again")
    assert m1.log_events("agent_held_elsewhere") == []
    over = m1.log_events("agent_taken_over")
    assert sorted(e["agent"] for e in over) == sorted(AGENTS)
    assert {e["reason"] for e in over} == {"its process is gone"}
    assert _ask(m1, "gamma", "hello")[1] == "GAMMA-ok"


def test_a_supervisor_that_lost_its_lease_leaves_the_new_holders_row_alone(
    machines: Callable[[int], list[MachineTeam]],
) -> None:
    """Machine 1's supervisor is frozen (SIGSTOP) past alpha's lease; machine 2 starts
    alpha. When machine 1 wakes it finds the lease taken and stops its own alpha, but
    writes nothing more on alpha's row (its "stopped" and pid: None would make `ps` and
    every asker believe an agent running on machine 2 had stopped), does not start it
    again, and leaves machine 2's lease alone. The request sent meanwhile is answered
    by machine 2's alpha."""
    m1, m2 = _alpha_on_1_beta_on_2(machines)
    ours = m1.agent_pid("alpha")
    assert ours is not None
    os.kill(m1.proc.pid, signal.SIGSTOP)  # the supervisor only: its claude stays
    try:
        m2.wait_for(lambda: m2.holder("alpha") is None, what="alpha's lease runs out")
        started = m2.cli("start", "alpha")
        assert started.returncode == 0, started.stderr
        m2.wait_for(
            lambda: (
                (m2.holder("alpha") or {}).get("pid") == m2.proc.pid
                and m2.states()["alpha"] == "ready"
            ),
            timeout=120,
            what="alpha ready under machine 2",
        )
        new_pid = m2.agent_pid("alpha")
    finally:
        os.kill(m1.proc.pid, signal.SIGCONT)
    m1.wait_for(
        lambda: "agent_taken_elsewhere" in m1.output() and not procid.running(ours),
        timeout=60,
        what="machine 1 stops its alpha",
    )
    # Its moves written nowhere (the row is machine 2's): none said as a `state`.
    after = m1.output().split("agent_taken_elsewhere", 1)[1]
    assert not re.search(r"alpha +\| state ", after), after
    assert m2.states()["alpha"] == "ready"
    assert m2.agent_pid("alpha") == new_pid
    with m1.mailbox() as mb:
        request = mb.request(USER, "alpha", "what is the capital of Chile")
    with m2.mailbox() as mb:
        assert text_of(mb.wait_for_reply(request.id, 120).body) == "alpha heard: BETA-Chile"
    m2.wait_for(lambda: m2.states()["alpha"] == "ready", what="alpha's turn ends")
    assert m2.agent_pid("alpha") == new_pid
    assert (m2.holder("alpha") or {}).get("pid") == m2.proc.pid
    assert m1.proc.poll() is None  # machine 1's supervisor runs on


def test_a_command_for_a_killed_supervisor_is_answered_by_a_live_one(
    machines: Callable[[int], list[MachineTeam]],
) -> None:
    """Machine 1's supervisor is SIGKILLed with commands meant for it in the inbox (sent
    as it died). Machine 2's supervisor knows it gone (a pid that runs nothing on this
    host; its presence would run out on another) and answers each at once, never
    handing one back: `restart beta` is run, beta being machine 2's now; `down` and
    `restart alpha` (alpha run by nobody) are refused as supervisor_gone naming machine
    1's host and pid, with what to do. Machine 2 runs on."""
    m1, m2 = _alpha_on_1_beta_on_2(machines)
    dead = m1.proc.pid
    os.killpg(dead, signal.SIGKILL)
    m1.proc.wait(30)
    target = {"host": socket.gethostname(), "pid": dead}
    with m2.mailbox() as mb:
        sent = {
            what: mb.request(USER, SUPERVISOR, {**body, "for": target}, ttl_s=60).id
            for what, body in {
                "restart beta": {"command": "restart", "agent": "beta"},
                "down": {"command": "down"},
                "restart alpha": {"command": "restart", "agent": "alpha"},
            }.items()
        }
        answers = {what: mb.wait_for_reply(i, 60).body for what, i in sent.items()}
    assert answers["restart beta"]["ok"] is True, answers
    for what in ("down", "restart alpha"):
        assert answers[what]["error"] == "supervisor_gone", answers
        assert answers[what]["message"].startswith(
            f"the supervisor on {socket.gethostname()} (pid {dead}) is gone: no process {dead}"
        )
        assert "run `up` on that machine again" in answers[what]["message"]
    assert "command_handed_back" not in m2.output()
    m2.wait_for(lambda: m2.states()["beta"] == "ready", timeout=120, what="beta restarted")
    assert m2.proc.poll() is None
    assert (m2.holder("beta") or {}).get("pid") == m2.proc.pid


def _beta_queued_on_2_and_run_on_1(
    machines: Callable[..., list[MachineTeam]],
) -> tuple[MachineTeam, MachineTeam, int]:
    """Machine 2's `up beta` starts alpha (its claude hangs: the pid returned, stopped) and
    queues beta (depends on alpha): `waiting`. Machine 1's `up beta` is refused alpha
    (machine 2 holds it) and runs beta, ready. (A shared team's agent queued on one
    machine may be taken by another before its layer begins.)"""
    agents: dict[str, dict[str, Any]] = {
        "alpha": {"connect_timeout": "600s"},
        "beta": {"depends_on": ["alpha"]},
    }
    m1, m2 = machines(2, agents)
    m2.up("beta")
    stuck = stop_claude_as_it_starts("alpha", m2.env["HOME"])
    try:
        m2.wait_for(lambda: m2.states().get("beta") == "waiting", what="beta queued on 2")
        m1.up("beta")
        m1.wait_ready("beta", timeout=120)
        assert m1.proc is not None
        assert (m1.holder("beta") or {}).get("pid") == m1.proc.pid
    except BaseException:
        os.kill(stuck, signal.SIGCONT)
        raise
    return m1, m2, stuck


def test_a_stop_of_an_agent_queued_here_and_run_elsewhere_leaves_its_row_alone(
    machines: Callable[..., list[MachineTeam]],
) -> None:
    """Beta queued on machine 2 and run by machine 1 (above): `stop beta` on machine 2
    must not touch beta's row. Its queued beta wrote `stopped` (pid None) over the row
    machine 1 keeps, answered `stop: beta stopped`, and every asker and `ps` took the
    running beta for stopped."""
    m1, m2, stuck = _beta_queued_on_2_and_run_on_1(machines)
    assert m1.proc is not None
    try:
        stopped = m2.cli("stop", "beta")
        assert "Traceback" not in stopped.stderr, stopped.stderr
        assert (m1.states()["beta"], bool(m1.agent_pid("beta"))) == ("ready", True)
        # Refused, naming the supervisor that runs it, as `start` and `restart` are.
        assert stopped.returncode == 1, stopped
        assert f"(pid {m1.proc.pid})" in stopped.stderr, stopped
        m2.signal(signal.SIGTERM)
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed with machine 2's stop
            os.kill(stuck, signal.SIGCONT)
    assert m2.wait_exit(60) == 0
    assert m1.states()["beta"] == "ready"
    assert (m1.holder("beta") or {}).get("pid") == m1.proc.pid


def test_a_supervisor_stopping_with_an_agent_queued_here_and_run_elsewhere_leaves_its_row(
    machines: Callable[..., list[MachineTeam]],
) -> None:
    """As above, machine 2 stops (SIGTERM) while its beta is still queued behind the
    hung alpha: its `up` ending its queued starts wrote `stopped` (pid None) over beta's
    row, which machine 1 keeps."""
    m1, m2, stuck = _beta_queued_on_2_and_run_on_1(machines)
    assert m1.proc is not None
    try:
        m2.signal(signal.SIGTERM)
        assert m2.wait_exit(60) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed with machine 2's stop
            os.kill(stuck, signal.SIGCONT)
    assert (m1.states()["beta"], bool(m1.agent_pid("beta"))) == ("ready", True)
    assert (m1.holder("beta") or {}).get("pid") == m1.proc.pid


def test_an_agent_queued_here_that_failed_where_it_runs_is_refused_to_this_machines_asks(
    machines: Callable[..., list[MachineTeam]],
) -> None:
    """Machine 2's `up beta gamma` runs gamma, starts alpha (its claude hangs) and queues
    beta behind it (`waiting`); machine 1 runs beta, which fails there (restart: never).
    gamma (on machine 2) asks beta: refused at once, recipient_failed, as an ask from
    machine 1 is. Machine 2's relay took its own `waiting` for the truth and never read
    the registry that machine 1 keeps: the ask was queued for an agent nobody restarts."""
    ask = {"to": "beta", "message": "beta, are you there?", "timeout_s": 600}
    rules: list[dict[str, Any]] = [
        {"agent": agent_rule("gamma"), "text": "gamma got: {1}", "tool_result": r"(?s)^(.*)$"},
        {
            "agent": agent_rule("gamma"),
            "match": "go",
            "tool_use": {"name": "mcp__octy__ask", "input": ask},
        },
    ]
    agents: dict[str, dict[str, Any]] = {
        "alpha": {"connect_timeout": "600s"},
        "beta": {"depends_on": ["alpha"], "restart": "never"},
        "gamma": {},
    }
    m1, m2 = machines(2, agents, rules)
    m2.env["CLAUDE_CODE_STREAM_CLOSE_TIMEOUT"] = "900000"  # alpha hangs, not its SDK's wait
    m2.up("beta", "gamma")
    stuck = stop_claude_as_it_starts("alpha", m2.env["HOME"])
    try:
        m2.wait_for(lambda: m2.states().get("beta") == "waiting", what="beta queued on 2")
        m2.wait_ready("gamma", timeout=120)
        m1.up("beta")
        m1.wait_ready("beta", timeout=120)
        pid = m1.agent_pid("beta")
        assert pid
        os.kill(pid, signal.SIGKILL)
        m1.wait_for(lambda: m1.states()["beta"] == "failed", what="beta failed on machine 1")
        assert m2.states()["beta"] == "failed"  # the registry both machines read
        with m2.mailbox() as mb:
            asked = mb.request(USER, "gamma", "go")
            reply = text_of(mb.wait_for_reply(asked.id, 90).body)
        assert reply.startswith("gamma got: "), reply
        assert "recipient_failed" in reply, reply
        assert "'beta' has failed" in reply, reply
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stuck, signal.SIGCONT)
