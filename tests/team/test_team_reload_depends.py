"""``depends_on`` honoured after start-up (as docker compose has it): a reload or an
operator's start of an agent whose dependency is not ready. Real supervisor, real
bundled claude CLI, scripted model; claudes hung before their handshake are SIGSTOPped
as they launch."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from team_harness import Team, agent_rule, stop_claude_as_it_starts

from orchestrator import errors
from orchestrator.mailbox import USER
from orchestrator.prompts import text_of

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]

RULES = [
    {"agent": agent_rule("a"), "text": "a is up"},
    {"agent": agent_rule("b"), "text": "b is up"},
]


def moves(t: Team, agent: str, state: str) -> list[int]:
    """Where in the supervisor's log ``agent`` moved to ``state`` (line indexes)."""
    return [
        i
        for i, e in enumerate(t.log_events("state"))
        if e.get("agent") == agent and e.get("state") == state
    ]


def waits_of(t: Team, agent: str) -> list[dict[str, Any]]:
    return [e for e in t.log_events("waiting_for_dependencies") if e.get("agent") == agent]


def patient(t: Team) -> None:
    """The SDK gives up on a silent handshake after max(this, 60 s): not what is tested."""
    t.env["CLAUDE_CODE_STREAM_CLOSE_TIMEOUT"] = "900000"


def test_an_agent_added_by_a_reload_waits_for_a_dependency_still_connecting(
    team: TeamFactory,
) -> None:
    """a's claude hangs before its handshake; a reload adds b (depends on a). b started
    at once, beside a dependency that was not there; now it waits for a to be ready."""
    t = team(RULES, {"a": {"connect_timeout": "600s"}})
    patient(t)
    t.up()
    stuck = stop_claude_as_it_starts("a", t.env["HOME"])
    try:
        t.write_roster({"a": {"connect_timeout": "600s"}, "b": {"depends_on": ["a"]}})
        # The watcher applies it (a `reload` would answer only once b is ready).
        t.wait_for(
            lambda: waits_of(t, "b") or t.states().get("b") in ("starting", "ready"),
            what="b waiting for a, or started",
        )
        assert waits_of(t, "b")[0]["dependencies"] == ["a"], t.log_events("state")
        assert t.states()["a"] == "starting"
        assert t.states()["b"] == "waiting"
        assert not moves(t, "b", "starting")
    finally:
        os.kill(stuck, signal.SIGCONT)
    t.wait_ready("a", "b")
    assert moves(t, "b", "starting")[0] > moves(t, "a", "ready")[0]
    assert t.ask("b", "up?") == "b is up"


def test_a_reload_restarting_an_agent_waits_for_a_dependency_in_its_backoff(
    team: TeamFactory,
) -> None:
    """a crashed and waits out a long backoff; an edit of b (depends on a) restarts b,
    which waits for a instead of starting blind. `restart a` (not held by the reload)
    ends a's backoff; b starts once a is ready."""
    agents: dict[str, dict[str, Any]] = {
        "a": {"backoff": {"initial": "600s", "max": "600s"}},
        "b": {"depends_on": ["a"]},
    }
    t = team(RULES, agents)
    t.up()
    t.wait_ready("a", "b")
    crashed = t.agent_pid("a")
    assert crashed
    os.kill(crashed, signal.SIGKILL)
    t.wait_for(lambda: t.states()["a"] == "backoff", what="a in its backoff")
    t.write_roster({**agents, "b": {"depends_on": ["a"], "prompt": "You are b. VERSION TWO"}})
    t.wait_for(
        lambda: waits_of(t, "b") or len(moves(t, "b", "starting")) > 1,
        what="b waiting for a, or restarted",
    )
    assert waits_of(t, "b")[0]["dependencies"] == ["a"]
    assert t.states()["b"] == "waiting"
    done = t.octy("restart", "a")
    assert "restarting" in done.stdout, done
    t.wait_ready("a", "b")
    assert moves(t, "b", "starting")[-1] > moves(t, "a", "ready")[-1]
    assert t.ask("b", "up?") == "b is up"


def test_a_reload_starts_the_stopped_and_failed_agents_what_it_starts_depends_on(
    team: TeamFactory,
) -> None:
    """As `docker compose up` does: b depends on a (stopped by `stop`) and c (failed: its
    restart is never). An edit of b restarts it, and starts a and c first, saying so."""
    agents: dict[str, dict[str, Any]] = {
        "a": {},
        "c": {"restart": "never"},
        "b": {"depends_on": ["a", "c"]},
    }
    t = team([*RULES, {"agent": agent_rule("c"), "text": "c is up"}], agents)
    t.up()
    t.wait_ready("a", "b", "c")
    t.octy("stop", "a")
    pid = t.agent_pid("c")
    assert pid
    os.kill(pid, signal.SIGKILL)
    t.wait_for(lambda: t.states()["c"] == "failed", what="c failed")
    t.write_roster({**agents, "b": {"depends_on": ["a", "c"], "prompt": "You are b. V2"}})
    done = t.octy("reload", "--json")
    changes = json.loads(done.stdout)
    if "already_applied" not in changes:  # else the watcher's answer, with the same changes
        assert changes["changes"]["restarted"] == ["b"], changes
    assert sorted(changes["changes"]["started"]) == ["a", "c"], changes
    t.wait_ready("a", "b", "c")
    assert moves(t, "b", "starting")[-1] > max(
        moves(t, "a", "ready")[-1], moves(t, "c", "ready")[-1]
    )
    assert t.ask("c", "up?") == "c is up"


def test_agents_a_reload_adds_start_in_dependency_order(team: TeamFactory) -> None:
    """A reload adds x and y (y depends on x); x's claude hangs: y waits for x."""
    t = team(
        [*RULES, {"agent": agent_rule("y"), "text": "y is up"}],
        {"a": {}},
    )
    patient(t)
    t.up()
    t.wait_ready("a")
    t.write_roster({"a": {}, "y": {"depends_on": ["x"]}, "x": {"connect_timeout": "600s"}})
    stuck = stop_claude_as_it_starts("x", t.env["HOME"])
    try:
        t.wait_for(lambda: t.states().get("x") == "starting", what="x starting")
        assert t.states()["y"] == "waiting"
    finally:
        os.kill(stuck, signal.SIGCONT)
    t.wait_ready("x", "y")
    assert moves(t, "y", "starting")[0] > moves(t, "x", "ready")[0]
    assert t.ask("y", "up?") == "y is up"


def test_start_of_an_agent_whose_dependency_is_stopped_says_so(team: TeamFactory) -> None:
    """`start b` starts b, not a (compose's `restart` starts no dependency either), and
    says that what b depends on is not running, and how to start it."""
    t = team(RULES, {"a": {}, "b": {"depends_on": ["a"]}})
    t.up()
    t.wait_ready("a", "b")
    t.octy("stop", "b", "a")
    done = t.octy("start", "b")
    assert "start: b started, but what it depends on is not running: a (stopped)" in done.stdout
    assert "octy-orchestrate start a" in done.stdout, done
    t.wait_ready("b")
    assert t.states()["a"] == "stopped"
    assert [e["dependencies"] for e in t.log_events("dependency_not_running")] == [{"a": "stopped"}]
    assert t.ask("b", "up?") == "b is up"
    done = t.octy("restart", "b")
    said = "restart: b restarting, but what it depends on is not running: a (stopped)"
    assert said in done.stdout, done
    t.wait_for(lambda: len(t.log_events("dependency_not_running")) == 2, what="said again")
    t.wait_ready("b")
    assert t.states()["a"] == "stopped"


def test_a_dependency_that_crashes_and_restarts_leaves_its_dependents_alone(
    team: TeamFactory,
) -> None:
    """As in compose: a crash of a (restarted by its policy) does not restart b."""
    t = team(RULES, {"a": {}, "b": {"depends_on": ["a"]}})
    t.up()
    t.wait_ready("a", "b")
    b_pid, a_pid = t.agent_pid("b"), t.agent_pid("a")
    assert a_pid
    os.kill(a_pid, signal.SIGKILL)
    t.wait_for(lambda: t.agent_pid("a") not in (None, a_pid), what="a restarted")
    t.wait_ready("a")
    assert t.ask("a", "up?") == "a is up"
    assert t.agent_pid("b") == b_pid
    assert len(moves(t, "b", "starting")) == 1
    assert not waits_of(t, "b")


def test_a_reload_removing_an_agent_others_depend_on_is_refused(team: TeamFactory) -> None:
    """Nothing half-applied: the new file is invalid (b depends on a missing a)."""
    t = team(RULES, {"a": {}, "b": {"depends_on": ["a"]}, "c": {}})
    t.up()
    t.wait_ready("a", "b", "c")
    pids = {n: t.agent_pid(n) for n in "abc"}
    t.write_roster({"b": {"depends_on": ["a"]}})  # a and c removed
    done = t.octy("reload", check=False)
    assert done.returncode == 1, done
    assert "depends_on" in done.stderr, done.stderr
    assert "'a'" in done.stderr, done.stderr
    assert {n: t.agent_pid(n) for n in "abc"} == pids
    assert {n: t.states()[n] for n in "abc"} == dict.fromkeys("abc", "ready")


def test_restart_waits_for_a_dependency_in_its_backoff_and_stop_ends_the_wait(
    team: TeamFactory,
) -> None:
    """`restart b` while a (which b depends on) waits out a long backoff: b's new session
    waits for a; `stop b` ends that wait at once; `start b` waits again, until a is up."""
    agents: dict[str, dict[str, Any]] = {
        "a": {"backoff": {"initial": "600s", "max": "600s"}},
        "b": {"depends_on": ["a"]},
    }
    t = team(RULES, agents)
    t.up()
    t.wait_ready("a", "b")
    crashed = t.agent_pid("a")
    assert crashed
    os.kill(crashed, signal.SIGKILL)
    t.wait_for(lambda: t.states()["a"] == "backoff", what="a in its backoff")
    assert "restarting" in t.octy("restart", "b").stdout
    t.wait_for(
        lambda: waits_of(t, "b") or len(moves(t, "b", "starting")) > 1,
        what="b waiting for a, or restarted",
    )
    assert len(moves(t, "b", "starting")) == 1  # the first session's only
    assert t.octy("stop", "b", "--timeout", "30").stdout.strip() == "stop: b stopped"
    assert t.states()["b"] == "stopped"
    assert "started" in t.octy("start", "b").stdout
    t.wait_for(lambda: len(waits_of(t, "b")) == 2, what="b waiting for a again")
    assert t.states()["b"] == "waiting"
    t.octy("restart", "a")
    t.wait_ready("a", "b")
    assert moves(t, "b", "starting")[-1] > moves(t, "a", "ready")[-1]
    assert len(moves(t, "b", "starting")) == 2


def test_a_failed_agent_a_reload_restarts_is_waited_for_by_what_depends_on_it(
    team: TeamFactory,
) -> None:
    """a failed (its restart is never); an edit changes a and adds b (depends on a). The
    reload starts a again, then b: b's layer took a's `failed` (the state a is started
    from) as settled, and started at once, beside an a still connecting."""
    t = team(RULES, {"a": {"restart": "never"}})
    patient(t)
    t.up()
    t.wait_ready("a")
    pid = t.agent_pid("a")
    assert pid
    os.kill(pid, signal.SIGKILL)
    t.wait_for(lambda: t.states()["a"] == "failed", what="a failed")
    t.write_roster(
        {"a": {"restart": "never", "connect_timeout": "600s"}, "b": {"depends_on": ["a"]}}
    )
    stuck = stop_claude_as_it_starts("a", t.env["HOME"], besides=[pid])
    try:
        t.wait_for(lambda: t.states().get("a") == "starting", what="a starting again")
        t.wait_for(lambda: "b" in t.states(), what="b registered")
    finally:
        os.kill(stuck, signal.SIGCONT)
    t.wait_ready("a", "b")
    assert moves(t, "b", "starting")[0] > moves(t, "a", "ready")[-1]
    assert t.ask("b", "up?") == "b is up"


def test_an_agent_waiting_for_its_dependency_is_asked_not_refused(team: TeamFactory) -> None:
    """A reload adds b (depends on a, whose claude hangs before its handshake): b is
    started and waits for a. x asks b meanwhile: the ask waits for b's answer, as it
    waits for an agent still connecting, instead of reading recipient_stopped ('b would
    answer only once someone starts it': b is started, its session just not launched)."""
    ask = {"to": "b", "message": "b, are you there?", "timeout_s": 300}
    t = team(
        [
            *RULES,
            {"agent": agent_rule("x"), "text": "x got: {1}", "tool_result": r"(?s)^(.*)$"},
            {
                "agent": agent_rule("x"),
                "match": "go",
                "tool_use": {"name": "mcp__octy__ask", "input": ask},
            },
        ],
        {"a": {"connect_timeout": "600s"}, "x": {}},
    )
    patient(t)
    t.up()
    stuck = stop_claude_as_it_starts("a", t.env["HOME"])
    try:
        t.wait_ready("x")
        t.write_roster({"a": {"connect_timeout": "600s"}, "x": {}, "b": {"depends_on": ["a"]}})
        t.wait_for(lambda: waits_of(t, "b"), what="b waiting for a")
        asked = t.request("x", "go")
        t.wait_for(
            lambda: t.messages(sender="x", recipient="b") or t.log_events("ask_refused", "x"),
            what="x's ask of b",
        )
        assert not t.log_events("ask_refused", "x"), t.log_events("ask_refused", "x")
    finally:
        os.kill(stuck, signal.SIGCONT)
    t.wait_ready("a", "b")
    with t.mailbox() as mb:
        assert text_of(mb.wait_for_reply(asked.id, 120).body) == "x got: b is up"


def ps_row(t: Team, agent: str) -> dict[str, Any]:
    """``agent``'s row as `ps --json` shows it."""
    return dict(json.loads(t.octy("ps", "--json", agent).stdout)["agents"][0])


def ps_state(t: Team, agent: str) -> str:
    return str(ps_row(t, agent)["state"])


def cli_ask_queued(t: Team, to: str) -> subprocess.Popen[str]:
    """`octy-orchestrate ask TO up?` started in the background, once its request is in the
    queue; it must not have been refused (it exits at once then, having sent nothing)."""
    cli = t.octy_bg("ask", to, "up?", "--timeout", "600", "--json")
    t.wait_for(
        lambda: t.messages(sender=USER, recipient=to) or cli.poll() is not None,
        what=f"the CLI's request to {to}, or its refusal",
    )
    assert cli.poll() is None, cli.communicate(timeout=10)
    return cli


def answered(cli: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = cli.communicate(timeout=120)
    assert "Traceback" not in err, err
    assert cli.returncode == 0, err
    return dict(json.loads(out))


def test_a_cli_ask_of_an_agent_waiting_for_its_dependency_is_answered_once_it_is_up(
    team: TeamFactory,
) -> None:
    """A reload adds b (depends on a, whose claude hangs before its handshake): b is
    `waiting` in `ps`, and `ask b` from a terminal is queued and answered once a and then
    b are up. It was refused at once (recipient_stopped: 'b is stopped'): the registry
    showed b as it was before its start, `stopped`."""
    t = team(RULES, {"a": {"connect_timeout": "600s"}})
    patient(t)
    t.up()
    stuck = stop_claude_as_it_starts("a", t.env["HOME"])
    try:
        t.write_roster({"a": {"connect_timeout": "600s"}, "b": {"depends_on": ["a"]}})
        t.wait_for(lambda: waits_of(t, "b"), what="b waiting for a")
        cli = cli_ask_queued(t, "b")
        row = ps_row(t, "b")
        assert (row["state"], row["reason"], row["pid"]) == ("waiting", "for a", None), row
        assert "waiting (for a)" in t.octy("ps", "b").stdout
    finally:
        os.kill(stuck, signal.SIGCONT)
    assert text_of(answered(cli)["reply"]["body"]) == "b is up"
    assert moves(t, "b", "waiting")[0] < moves(t, "b", "starting")[0]
    assert ps_row(t, "b")["reason"] is None  # ready: nothing to say


def reload_with_a_hanging(t: Team, others: Mapping[str, Mapping[str, Any]] | None = None) -> int:
    """Edit a and b (b depends on a) so that a reload restarts both, a's new claude stopped
    as it starts: its pid (SIGCONT it when done) once a is starting again and b's layer
    has not begun."""
    old = t.agent_pid("a")
    assert old
    t.write_roster(
        {
            **(others or {}),
            "a": {"connect_timeout": "600s", "prompt": "You are a. V2"},
            "b": {"depends_on": ["a"], "prompt": "You are b. V2"},
        }
    )
    stuck = stop_claude_as_it_starts("a", t.env["HOME"], besides=[old])
    try:
        t.wait_for(lambda: t.states()["a"] == "starting", what="a starting again")
        assert len(moves(t, "b", "starting")) == 1  # its layer has not begun
    except BaseException:
        os.kill(stuck, signal.SIGCONT)
        raise
    return stuck


def test_a_cli_ask_of_an_agent_in_a_later_layer_of_a_reload_is_answered(
    team: TeamFactory,
) -> None:
    """An edit of a and b (b depends on a) restarts both; b's layer starts once a is
    ready, and a's new claude hangs. b is `waiting` meanwhile, not `stopped`: `ask b`
    from a terminal is queued and answered once b is up (it was refused as stopped)."""
    agents: dict[str, dict[str, Any]] = {
        "a": {"connect_timeout": "600s"},
        "b": {"depends_on": ["a"]},
    }
    t = team(RULES, agents)
    patient(t)
    t.up()
    t.wait_ready("a", "b")
    stuck = reload_with_a_hanging(t)
    try:
        cli = cli_ask_queued(t, "b")
        assert ps_state(t, "b") == "waiting"
    finally:
        os.kill(stuck, signal.SIGCONT)
    assert text_of(answered(cli)["reply"]["body"]) == "b is up"
    assert moves(t, "b", "starting")[-1] > moves(t, "a", "ready")[-1]


def test_a_stop_during_the_wait_ends_a_waiting_cli_ask_recipient_stopped(
    team: TeamFactory,
) -> None:
    """b waits for a (hung before its handshake) and a terminal's `ask b` waits on b:
    `stop b` abandons b's start, and the ask reads recipient_stopped at once, as an ask
    of a running agent stopped does; b stays stopped once a is up."""
    t = team(RULES, {"a": {"connect_timeout": "600s"}})
    patient(t)
    t.up()
    stuck = stop_claude_as_it_starts("a", t.env["HOME"])
    try:
        t.write_roster({"a": {"connect_timeout": "600s"}, "b": {"depends_on": ["a"]}})
        t.wait_for(lambda: waits_of(t, "b"), what="b waiting for a")
        cli = cli_ask_queued(t, "b")
        assert t.octy("stop", "b", "--timeout", "30").stdout.strip() == "stop: b stopped"
        out, err = cli.communicate(timeout=60)
        assert cli.returncode == 1, err
        assert json.loads(out)["error"] == errors.RecipientStopped.code
        assert "'b' was stopped by the operator" in json.loads(out)["message"], out
        assert ps_state(t, "b") == "stopped"
    finally:
        os.kill(stuck, signal.SIGCONT)
    t.wait_ready("a")
    assert not moves(t, "b", "starting")
    assert t.states()["b"] == "stopped"


def test_a_stop_of_an_agent_queued_in_a_later_layer_of_up_ends_its_asks(
    team: TeamFactory,
) -> None:
    """`up` starts b (depends on a) once a is ready; a hangs. b is `waiting`, and a
    terminal's `ask b` is queued; `stop b` before b's layer: the ask reads
    recipient_stopped, and b's layer leaves it stopped."""
    t = team(RULES, {"a": {"connect_timeout": "600s"}, "b": {"depends_on": ["a"]}})
    patient(t)
    t.up()
    stuck = stop_claude_as_it_starts("a", t.env["HOME"])
    try:
        t.wait_for(lambda: t.states().get("a") == "starting", what="a starting")
        cli = cli_ask_queued(t, "b")
        assert ps_state(t, "b") == "waiting"
        assert t.octy("stop", "b").stdout.strip() == "stop: b stopped"
        out, err = cli.communicate(timeout=60)
        assert cli.returncode == 1, err
        assert json.loads(out)["error"] == errors.RecipientStopped.code
    finally:
        os.kill(stuck, signal.SIGCONT)
    t.wait_ready("a")
    t.wait_for(lambda: t.log_events("start_up_done"), what="up's layers done")
    assert t.states()["b"] == "stopped"
    assert not moves(t, "b", "starting")


def test_an_agent_in_a_later_layer_of_a_reload_is_asked_not_refused(team: TeamFactory) -> None:
    """An edit of a and b (b depends on a) restarts both, b in the layer after a's, and
    a's new claude hangs. x asks b meanwhile: the ask waits for b's answer. b had no task
    yet, so the relay too read it `stopped` and refused the ask (recipient_stopped)."""
    ask = {"to": "b", "message": "b, are you there?", "timeout_s": 300}
    agents: dict[str, dict[str, Any]] = {
        "a": {"connect_timeout": "600s"},
        "b": {"depends_on": ["a"]},
        "x": {},
    }
    t = team(
        [
            *RULES,
            {"agent": agent_rule("x"), "text": "x got: {1}", "tool_result": r"(?s)^(.*)$"},
            {
                "agent": agent_rule("x"),
                "match": "go",
                "tool_use": {"name": "mcp__octy__ask", "input": ask},
            },
        ],
        agents,
    )
    patient(t)
    t.up()
    t.wait_ready("a", "b", "x")
    stuck = reload_with_a_hanging(t, agents)
    try:
        asked = t.request("x", "go")
        t.wait_for(
            lambda: t.messages(sender="x", recipient="b") or t.log_events("ask_refused", "x"),
            what="x's ask of b",
        )
        assert not t.log_events("ask_refused", "x"), t.log_events("ask_refused", "x")
    finally:
        os.kill(stuck, signal.SIGCONT)
    t.wait_ready("a", "b")
    with t.mailbox() as mb:
        assert text_of(mb.wait_for_reply(asked.id, 120).body) == "x got: b is up"


def test_a_reload_that_changes_what_an_agent_depends_on_shows_what_it_now_waits_for(
    team: TeamFactory,
) -> None:
    """A reload adds c (its claude hangs before its handshake) and makes b, which
    depended on a, depend on c: b restarts and waits for c. `ps` said `waiting (for a)`,
    what b depended on before the edit (b is `waiting` from its stop, written with the
    roster of then), until c was up."""
    t = team(RULES, {"a": {}, "b": {"depends_on": ["a"]}})
    patient(t)
    t.up()
    t.wait_ready("a", "b")
    t.write_roster(
        {
            "a": {},
            "b": {"depends_on": ["c"], "prompt": "You are b. V2"},
            "c": {"connect_timeout": "600s"},
        }
    )
    stuck = stop_claude_as_it_starts("c", t.env["HOME"])
    try:
        t.wait_for(
            lambda: t.states().get("c") == "starting" and t.states().get("b") == "waiting",
            what="c starting, b waiting for it",
        )
        row = ps_row(t, "b")
        assert (row["state"], row["reason"]) == ("waiting", "for c"), row
        assert "waiting (for c)" in t.octy("ps", "b").stdout
    finally:
        os.kill(stuck, signal.SIGCONT)
    t.wait_ready("a", "b", "c")


def test_an_agent_a_reload_adds_is_never_shown_stopped_before_it_starts(
    team: TeamFactory,
) -> None:
    """Every row the supervisor writes for b, which a reload adds, from its first one on,
    is one a terminal's `ask b` takes (queued, answered once b is up): b was registered
    `stopped`, marked supervised, and queued as `waiting` a few writes later; an ask in
    between was refused recipient_stopped. Each write of b's row is recorded (a trigger in
    the team's own database), so the window is seen whatever the timing."""
    t = team(RULES, {"a": {}})
    t.up()
    t.wait_ready("a")
    db = sqlite3.connect(t.db_path, timeout=30)
    try:
        rows_written(db, "b")
        t.write_roster({"a": {}, "b": {"depends_on": ["a"]}})
        t.wait_ready("a", "b")
        rows = [
            (state, bool(json.loads(meta).get("supervised")))
            for state, meta in db.execute("SELECT state, meta FROM test_rows ORDER BY n")
        ]
    finally:
        db.close()
    assert rows, "no row of b was written"
    refused = [r for r in rows if r[0] in ("stopped", "failed") and r[1]]
    assert not refused, rows
    assert rows[0][0] == "waiting", rows
    assert t.ask("b", "up?") == "b is up"


def rows_written(db: sqlite3.Connection, *names: str) -> None:
    """Record every write of ``names``' registry rows in the team's own database (table
    test_rows: name, state, meta), whatever the timing of the writes."""
    which = ", ".join(f"'{n}'" for n in names)
    db.executescript(
        f"""
        CREATE TABLE test_rows (n INTEGER PRIMARY KEY, name TEXT, state TEXT, meta TEXT);
        CREATE TRIGGER test_inserted AFTER INSERT ON agents WHEN new.name IN ({which})
        BEGIN INSERT INTO test_rows (name, state, meta)
            VALUES (new.name, new.state, new.meta); END;
        CREATE TRIGGER test_updated AFTER UPDATE ON agents WHEN new.name IN ({which})
        BEGIN INSERT INTO test_rows (name, state, meta)
            VALUES (new.name, new.state, new.meta); END;
        """
    )


def test_a_waiting_agent_shows_what_it_waits_for_now(team: TeamFactory) -> None:
    """`up` starts a and x (x's claude hangs before its handshake), then b (depends on a)
    and c (depends on a and x). Once a is ready, b waits for its layer's turn after x and
    c for x only: `ps` said `waiting (for a)` and `waiting (for a, x)`, what they depend
    on as of their move into `waiting`, a long ready. And once an agent's session starts
    its row no longer says it waits for anything (it said `a` in its meta)."""
    rules = [
        *RULES,
        {"agent": agent_rule("c"), "text": "c is up"},
        {"agent": agent_rule("x"), "text": "x is up"},
    ]
    agents = {
        "a": {},
        "x": {"connect_timeout": "600s"},
        "b": {"depends_on": ["a"]},
        "c": {"depends_on": ["a", "x"]},
    }
    t = team(rules, agents)
    patient(t)
    with t.mailbox():  # the team's database, made as `up` makes it, to hold the triggers
        pass
    db = sqlite3.connect(t.db_path, timeout=30)
    try:
        rows_written(db, "b", "c")
        t.up()
        stuck = stop_claude_as_it_starts("x", t.env["HOME"])
        try:
            t.wait_ready("a")
            t.wait_for(lambda: t.states().get("x") == "starting", what="x starting")
            b, c = ps_row(t, "b"), ps_row(t, "c")
            assert (b["state"], b["reason"]) == ("waiting", "for its turn after x"), b
            assert (c["state"], c["reason"]) == ("waiting", "for x"), c
            assert "waiting (for x)" in t.octy("ps", "c").stdout
        finally:
            os.kill(stuck, signal.SIGCONT)
        t.wait_ready("a", "x", "b", "c")
        written = list(db.execute("SELECT name, state, meta FROM test_rows ORDER BY n"))
    finally:
        db.close()
    said = [(n, s, json.loads(m).get("waiting_for")) for n, s, m in written]
    assert ("b", "waiting", "a") in said, said  # while a was on its way
    assert not [r for r in said if r[1] != "waiting" and r[2] is not None], said
    assert ps_row(t, "b")["reason"] is None


def test_an_agent_a_reload_adds_is_known_while_the_changed_agents_stop(
    team: TeamFactory,
) -> None:
    """An edit changes a (busy in a long turn: its stop waits out the grace period) and
    adds b. b was registered only once a had stopped: for up to the grace period a
    terminal's `ask b` (and any send to it) was refused as unknown. b is known, `waiting`,
    before a's stop begins; the ask is queued and answered once b is up. An operator's
    stop and start of b meanwhile start it once its roster entry is there (not before:
    its session would have no settings)."""
    rules = [
        {"agent": agent_rule("a"), "match": "LONG-TURN", "text": "done", "delay": 600},
        *RULES,
    ]
    t = team(rules, {"a": {}})
    t.up(extra=["--grace", "600"])
    t.wait_ready("a")
    t.request("a", "LONG-TURN")
    t.wait_for(lambda: t.states().get("a") == "busy", what="a busy in its long turn")
    t.write_roster({"a": {"prompt": "You are a, edited."}, "b": {}})
    t.wait_for(lambda: t.states().get("a") == "stopping", what="a stopping for the reload")
    assert t.states().get("b") == "waiting", t.states()
    assert ps_row(t, "b")["reason"] == "for the reload that adds it"
    # An operator's stop and start of b meanwhile: its start waits for its roster entry.
    assert t.octy("stop", "b").stdout.strip() == "stop: b stopped"
    assert t.octy("start", "b").stdout.strip() == "start: b started"
    cli = cli_ask_queued(t, "b")
    pid = t.agent_pid("a")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # its turn ends: the reload goes on without the grace
    assert text_of(answered(cli)["reply"]["body"]) == "b is up"
    assert moves(t, "b", "starting")[0] > moves(t, "a", "stopped")[0]
    assert not t.log_events("session_crashed")
    t.octy("down", "--timeout", "0")  # a took its long turn again: not waited for


def _reload_adding_b_while_a_stops(t: Team) -> None:
    """a busy in a long turn (its stop waits out the 600 s grace); an edit changes a and
    adds b: the reload has registered b `waiting` and waits for a's stop."""
    t.up(extra=["--grace", "600"])
    t.wait_ready("a")
    t.request("a", "LONG-TURN")
    t.wait_for(lambda: t.states().get("a") == "busy", what="a busy in its long turn")
    t.write_roster({"a": {"prompt": "You are a, edited."}, "b": {}})
    t.wait_for(lambda: t.states().get("a") == "stopping", what="a stopping for the reload")
    assert t.states().get("b") == "waiting", t.states()


LONG_TURN = [
    {"agent": agent_rule("a"), "match": "LONG-TURN", "text": "done", "delay": 600},
    *RULES,
]


def test_an_operator_stop_of_an_agent_a_reload_adds_is_kept(team: TeamFactory) -> None:
    """`stop b` while the reload that adds b waits for a's stop answered `b stopped`;
    the reload then started b all the same (its start queued b again): the operator's
    stop was undone without a word. b stays stopped; a restarts."""
    t = team(LONG_TURN, {"a": {}})
    _reload_adding_b_while_a_stops(t)
    assert t.octy("stop", "b").stdout.strip() == "stop: b stopped"
    pid = t.agent_pid("a")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # its turn ends: the reload goes on without the grace
    (done,) = t.wait_for(lambda: t.log_events("reload"), what="the reload's end")
    assert done["added"] == ["b"], done
    assert done["restarted"] == ["a"], done
    assert t.states().get("b") == "stopped", t.states()
    assert not moves(t, "b", "starting"), t.log_events("state")
    assert not t.log_events("session_crashed")
    t.octy("down", "--timeout", "0")


def test_down_during_a_reload_leaves_no_added_agent_waiting(team: TeamFactory) -> None:
    """`down` while the reload that adds b waits for a's stop: the reload ends before
    its start in layers (which gives up what it queued). b, registered `waiting` before
    a's stop, stayed `waiting` in the registry after the team was down: asks of it were
    queued for an agent no one would start, and `ps` said it was on its way."""
    t = team(LONG_TURN, {"a": {}})
    _reload_adding_b_while_a_stops(t)
    t.octy("down", "--timeout", "0")
    t.wait_exit()
    assert t.states().get("b") != "waiting", t.states()
