"""`octy-orchestrate trace`, on a real queue database and log files from the real logconfig.

Each scene plays what the runner and relay do (claim, log ``received``, ask with a
``cause_id``, reply, ack, log ``turn``) and reads the result back through
``main(["trace", ...])``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog

from orchestrator import logconfig, logview, trace
from orchestrator.cli import main
from orchestrator.mailbox import USER, Mailbox, Message
from orchestrator.tracelines import Relevant

log = structlog.get_logger()


@dataclass
class Team:
    root: Path
    mailbox: Mailbox

    @property
    def roster(self) -> Path:
        return self.root / "agents.yaml"

    def claim(self, agent: str) -> Message:
        """Claim the next message as the runner does, and log its ``received``."""
        [m] = self.mailbox.claim(agent, owner=f"{agent}:1")
        log.info(
            "received",
            agent=agent,
            message_id=m.id,
            kind=m.kind,
            sender=m.sender,
            body=trace.text_of(m.body),
            attempt=m.attempts,
        )
        return m

    def finish(self, agent: str, m: Message, answer: str, *, ms: int, tokens: int) -> Message:
        """The runner's end of a turn: reply, ack, log ``turn``."""
        reply = self.mailbox.reply(m.id, agent, {"text": answer})
        log.info("replied", agent=agent, request_id=m.id, to=m.sender, body=answer)
        self.mailbox.ack([m.id], owner=f"{agent}:1")
        log.info(
            "turn",
            agent=agent,
            session_id="s",
            duration_ms=ms,
            input_tokens=tokens,
            output_tokens=tokens // 10,
            cost_usd=0.001,
            took_s=0.1,
        )
        return reply


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Team]:
    (tmp_path / "agents.yaml").write_text(
        "logs: logs\nagents:\n  a:\n    prompt: A.\n  b:\n    prompt: B.\n", encoding="utf-8"
    )
    logconfig.configure(tmp_path / "logs", max_bytes=4000, backups=20)
    with Mailbox(tmp_path / "queue" / "team.db") as mailbox:
        for name in ("a", "b", "code-reviewer"):
            mailbox.register(name)
        yield Team(tmp_path, mailbox)
    logconfig.shutdown()
    structlog.reset_defaults()  # later tests see structlog as if never configured


@dataclass
class Scene:
    request: Message
    ask: Message
    ask_reply: Message
    reply: Message
    noise: Message


@pytest.fixture
def scene(team: Team) -> Scene:
    """user asks a; a (after reading a file) asks b; b answers; a answers the user.
    Meanwhile the user sends b an unrelated notice, which is no part of the trace."""
    mb = team.mailbox
    request = mb.request(USER, "a", {"text": "What is 6x7?"})
    m = team.claim("a")
    log.info("tool_used", agent="a", tool="Read", input={"file_path": "notes.md"})
    log.info("tool_used", agent="a", tool="mcp__octy__ask", input={"to": "b"})
    ask = mb.request("a", "b", {"text": "multiply 6; by #7"}, cause_id=m.id, wait_s=60)
    log.info("asked", agent="a", to="b", request_id=ask.id, body="multiply 6; by #7")
    asked = team.claim("b")
    ask_reply = team.finish("b", asked, "42", ms=12, tokens=10)
    log.info("answered", agent="a", by="b", request_id=ask.id, body="42")
    reply = team.finish("a", m, "6x7 is 42", ms=40, tokens=100)
    noise = mb.send(USER, "b", {"text": "unrelated"})
    return Scene(request, ask, ask_reply, reply, noise)


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(team: Team, capsys: pytest.CaptureFixture[str]) -> Run:
    def call(*argv: str) -> tuple[int, str, str]:
        code = main(["trace", *argv, "--file", str(team.roster)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


def steps(run: Run, message_id: str) -> list[dict[str, Any]]:
    code, out, _ = run(message_id, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["ok"] is True
    return list(doc["steps"])


def test_timeline_follows_a_request_through_the_ask_it_caused(run: Run, scene: Scene) -> None:
    """The steps come in the order they happened, from the queue and the logs: the request,
    its claim and turn, the ask it caused (one level deeper) with b's turn and reply, a
    receiving the answer, the final reply, then a's turn ending. Relay tool uses are left to
    the messages they made; times run from 0 and never go back."""
    got = steps(run, scene.request.id)
    assert [(s["kind"], s["actor"], s["target"], s["depth"]) for s in got] == [
        ("request", "user", "a", 0),
        ("claimed", "a", None, 0),
        ("turn_started", "a", None, 0),
        ("tool", "a", None, 0),
        ("request", "a", "b", 1),
        ("claimed", "b", None, 1),
        ("turn_started", "b", None, 1),
        ("reply", "b", "a", 1),
        ("done", "b", None, 1),
        ("turn", "b", None, 1),
        ("answered", "a", "b", 1),
        ("reply", "a", "user", 0),
        ("done", "a", None, 0),
        ("turn", "a", None, 0),
    ]
    ms = [s["ms"] for s in got]
    assert ms[0] == 0
    assert ms == sorted(ms)
    assert got[3]["text"] == 'Read {"file_path": "notes.md"}'
    assert got[9]["text"] == "12 ms, 10+1 tokens, $0.0010"
    assert got[9]["message_id"] == scene.ask.id
    assert [s["message_id"] for s in got if s["kind"] == "reply"] == [
        scene.ask_reply.id,
        scene.reply.id,
    ]
    assert scene.noise.id not in json.dumps(got)


def test_text_timeline_reads_as_who_did_what(run: Run, scene: Scene) -> None:
    """The human timeline: a header with the outcome, one line per step with its time,
    arrows between agents, message texts quoted, a count at the end."""
    code, out, _ = run(scene.request.id)
    assert code == 0
    lines = out.splitlines()
    assert re.fullmatch(
        rf"request {scene.request.id}: user → a, done, answered after \d+ ms", lines[0]
    )
    assert re.fullmatch(
        rf" +0 ms  user → a  request {scene.request.id}  \"What is 6x7\?\"", lines[1]
    )
    assert any(
        re.search(rf"ms    a → b  request {scene.ask.id}  \"multiply 6; by #7\"", x) for x in lines
    )
    assert any(re.search(r"ms    a ← b  answered .*\"42\"", x) for x in lines)
    assert lines[-1] == "4 message(s), 2 turn(s)"
    assert "\x1b[" not in out


def test_mermaid_draws_requests_replies_and_turns(run: Run, scene: Scene) -> None:
    """`--mermaid` prints a sequenceDiagram: participants in order of appearance, requests
    ->>, replies -->>, turns as notes, ';' and '#' written as mermaid entities."""
    code, out, _ = run(scene.request.id, "--mermaid")
    assert code == 0
    assert re.sub(r"\+\d+ ms", "+N ms", out) == (
        "sequenceDiagram\n"
        "    participant user\n"
        "    participant a\n"
        "    participant b\n"
        "    user->>a: +N ms · request · What is 6x7?\n"
        "    Note over a: +N ms · turn started\n"
        "    a->>b: +N ms · request · multiply 6#59; by #35;7\n"
        "    Note over b: +N ms · turn started\n"
        "    b-->>a: +N ms · reply · 42\n"
        "    Note over b: +N ms · turn done · 12 ms, 10+1 tokens, $0.0010\n"
        "    a-->>user: +N ms · reply · 6x7 is 42\n"
        "    Note over a: +N ms · turn done · 40 ms, 100+10 tokens, $0.0010\n"
    )


def test_a_response_id_traces_its_request(run: Run, scene: Scene) -> None:
    """Given the final reply's id, trace shows the whole life of the request it answers."""
    assert steps(run, scene.reply.id) == steps(run, scene.request.id)


def test_an_ask_id_traces_only_what_followed_it(run: Run, scene: Scene) -> None:
    """Tracing the inner ask shows b's side and a getting the answer, not the user's request."""
    got = steps(run, scene.ask.id)
    assert [(s["kind"], s["actor"], s["depth"]) for s in got] == [
        ("request", "a", 0),
        ("claimed", "b", 0),
        ("turn_started", "b", 0),
        ("reply", "b", 0),
        ("done", "b", 0),
        ("turn", "b", 0),
        ("answered", "a", 0),
    ]


def test_unknown_id_exits_3(run: Run, scene: Scene) -> None:
    """An id the queue does not have: exit 3 naming the id and the database; --json says
    not_found."""
    code, out, err = run("0000000000000000")
    assert code == 3
    assert out == ""
    assert "no message with id '0000000000000000'" in err
    assert "team.db" in err
    code, out, _ = run("0000000000000000", "--json")
    assert code == 3
    doc = json.loads(out)
    assert (doc["ok"], doc["error"]) == (False, "not_found")
    assert "0000000000000000" in doc["message"]


def test_without_logs_the_queue_alone_gives_the_skeleton(
    run: Run, scene: Scene, team: Team, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no logs folder, trace still shows what the queue knows: messages, claims, acks."""
    empty = team.root / "no-logs"
    code = main(
        ["trace", scene.request.id, "--json", "--file", str(team.roster), "--logs", str(empty)]
    )
    assert code == 0
    got = json.loads(capsys.readouterr().out)["steps"]
    assert [s["kind"] for s in got] == [
        "request",
        "claimed",
        "request",
        "claimed",
        "reply",
        "done",
        "reply",
        "done",
    ]


def test_a_redelivered_request_shows_both_turns(run: Run, team: Team) -> None:
    """A turn that was interrupted and requeued, then delivered again: two turn starts, the
    requeue ending the first, the queue's (last) claim, then the finished turn."""
    mb = team.mailbox
    request = mb.request(USER, "a", {"text": "again"})
    m = team.claim("a")
    mb.nack(m.id, owner="a:1", error="session died")
    log.info("requeued", agent="a", messages=[m.id], counted_attempt=True)
    m = team.claim("a")
    team.finish("a", m, "done now", ms=5, tokens=10)
    got = steps(run, request.id)
    assert [(s["kind"], s["text"]) for s in got] == [
        ("request", "again"),
        ("turn_started", "attempt 1"),
        ("requeued", "counted_attempt=true"),
        ("claimed", "attempt 2"),
        ("turn_started", "attempt 2"),
        ("reply", "done now"),
        ("done", ""),
        ("turn", "5 ms, 10+1 tokens, $0.0010"),
    ]


def test_a_failed_ask_is_a_crossed_arrow_and_odd_names_get_aliases(run: Run, team: Team) -> None:
    """An ask answered with an error shows as an error step and a mermaid --x arrow; a name
    mermaid cannot take as is (code-reviewer) is declared with an alias."""
    mb = team.mailbox
    request = mb.request(USER, "a", {"text": "review this"})
    m = team.claim("a")
    ask = mb.request("a", "code-reviewer", {"text": "look"}, cause_id=m.id)
    log.info("asked", agent="a", to="code-reviewer", request_id=ask.id, body="look")
    mb.fail_request(ask.id, "recipient_failed", "code-reviewer failed")
    log.warning(
        "ask_failed", agent="a", to="code-reviewer", request_id=ask.id, code="recipient_failed"
    )
    team.finish("a", m, "could not review", ms=7, tokens=10)
    got = steps(run, request.id)
    error = next(s for s in got if s["kind"] == "error")
    assert (error["actor"], error["target"]) == ("code-reviewer", "a")
    assert error["text"] == "recipient_failed: code-reviewer failed"
    assert any(s["kind"] == "dead" and s["message_id"] == ask.id for s in got)
    assert any(s["kind"] == "ask_failed" and s["actor"] == "a" for s in got)
    code, out, _ = run(request.id, "--mermaid")
    assert code == 0
    assert "    participant p2 as code-reviewer\n" in out
    assert "    a->>p2: " in out
    assert re.search(r"\n    p2--xa: \+\d+ ms · error · recipient_failed: code-reviewer", out)


def test_reading_only_the_lines_a_trace_needs_changes_nothing(team: Team, scene: Scene) -> None:
    """trace decodes only the log lines naming a family message, and an agent's lines
    from one of those to its turn's end: the timeline is the one every event gives, here
    with the same agents busy with other messages before its turns end and after."""
    for i in range(40):  # others' work: a's later turns, b's tools, the noise's delivery
        agent = "ab"[i % 2]
        log.info("received", agent=agent, message_id=f"other{i}", body="x" * 50)
        log.info("tool_used", agent=agent, tool="Read", input={"file_path": f"f{i}"})
        log.info("turn", agent=agent, session_id="s", duration_ms=i, input_tokens=i)
    family = team.mailbox.related(scene.request.id)
    logs = team.root / "logs"
    everything = logview.read_events(logs)
    picked = logview.read_events(logs, keep=Relevant(m.id for m in family))
    assert len(picked) < len(everything) / 4
    whole = trace.build_trace(scene.request.id, family, everything)
    read = trace.load_trace(team.root / "queue" / "team.db", scene.request.id, logs)
    assert read.to_dict() == whole.to_dict()
    assert any(s.kind == "tool" for s in read.steps)


def test_a_shared_turn_that_failed_lends_its_hops_to_both_not_the_retry_after(
    run: Run, team: Team
) -> None:
    """x and y delivered in one turn: its notice to b carries x's id as cause (the first
    message's). The turn fails; x comes back alone and sends another. y's trace shows the
    shared turn's notice one level down, and the turn marked shared; not x's later one,
    which is x's alone (reviewer G, finding 2)."""
    mb = team.mailbox
    x = mb.request(USER, "a", {"text": "x?"})
    y = mb.request(USER, "a", {"text": "y?"})
    batch = mb.claim("a", owner="a:1", limit=2)
    for m in batch:
        log.info("received", agent="a", message_id=m.id, kind=m.kind, attempt=m.attempts)
    shared = mb.send("a", "b", {"text": "for x and y"}, cause_id=x.id)
    log.info("sent", agent="a", to="b", message_id=shared.id, body="for x and y")
    log.warning("turn_failed", agent="a", messages=[x.id, y.id], failure="overloaded")
    for m in batch:
        mb.nack(m.id, owner="a:1")
    again = team.claim("a")
    assert again.id == x.id
    later = mb.send("a", "b", {"text": "for x alone"}, cause_id=x.id)
    team.finish("a", again, "x done", ms=5, tokens=10)

    got = steps(run, y.id)
    assert [(s["kind"], s["message_id"], s["depth"]) for s in got if s["actor"] == "a"] == [
        ("claimed", y.id, 0),
        ("turn_started", y.id, 0),
        ("notice", shared.id, 1),
        ("turn_failed", y.id, 0),
    ]
    (failed,) = [s for s in got if s["kind"] == "turn_failed"]
    assert failed["text"] == f"failure=overloaded (shared: handled in one turn with {x.id})"
    assert later.id not in {s["message_id"] for s in got}
    assert {s["message_id"] for s in steps(run, x.id)} >= {shared.id, later.id}
