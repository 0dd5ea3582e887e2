"""The CLI verbs on a team whose roster says ``queue: nats://...``: register, send, ask,
inbox, queue ls/show/dead/retry, trace and ps read and write the JetStream queue."""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from cli_runner import octy
from contract_openers import cli_roster
from natsserver import NatsServer, free_port

from orchestrator import errors
from orchestrator.cli import main
from orchestrator.mailbox import USER
from orchestrator.mailbox.nats import NatsConfig
from orchestrator.mailbox.nats.blocking import BlockingNatsMailbox


@pytest.fixture
def team(tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch) -> NatsConfig:
    return cli_roster(tmp_path, nats_server.url, monkeypatch, "cli")


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def test_queue_verbs_work_on_jetstream(
    team: NatsConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_json(capsys, "register", "bob")[0] == 0
    code, sent = run_json(capsys, "send", "bob", "hello over nats")
    assert code == 0
    with BlockingNatsMailbox(team) as mb:  # what the CLI wrote is in the bucket
        assert [m.body for m in mb.list(recipient="bob")] == ["hello over nats"]
        assert mb.get(sent["message"]["id"]).sender == USER
    code, listed = run_json(capsys, "queue", "ls")
    assert sent["message"]["id"] in json.dumps(listed)
    code, shown = run_json(capsys, "queue", "show", sent["message"]["id"])
    assert code == 0
    assert "hello over nats" in json.dumps(shown)
    code, inbox = run_json(capsys, "inbox", "bob", "--ack")
    assert code == 0
    assert "hello over nats" in json.dumps(inbox)
    code, unknown = run_json(capsys, "send", "bobb", "typo")
    assert code != 0
    assert unknown["error"] == "recipient_unknown"


def test_ask_is_answered_through_jetstream(
    team: NatsConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    with BlockingNatsMailbox(team) as mb:
        mb.register("bob")

        def answer() -> None:
            assert mb.wait_for_messages("bob", 60)
            (req,) = mb.claim("bob", owner="bob-1")
            mb.reply(req.id, "bob", "42")
            mb.ack([req.id], owner="bob-1")

        helper = threading.Thread(target=answer)
        helper.start()
        code, reply = run_json(capsys, "ask", "bob", "6*7?", "--timeout", "60")
        helper.join(60)
    assert code == 0
    assert "42" in json.dumps(reply)


def test_dead_letters_retry_trace_and_ps(
    team: NatsConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    with BlockingNatsMailbox(team) as mb:
        mb.register("bob")
        m = mb.send(USER, "bob", "poison", max_attempts=1)
        mb.claim("bob", owner="w")
        mb.nack(m.id, owner="w", error="boom")
    code, dead = run_json(capsys, "queue", "dead")
    assert m.id in json.dumps(dead)
    assert run_json(capsys, "queue", "retry", m.id)[0] == 0
    with BlockingNatsMailbox(team) as mb:
        assert mb.get(m.id).status == "pending"
    code, traced = run_json(capsys, "trace", m.id)
    assert code == 0
    assert traced["id"] == m.id
    code, ps = run_json(capsys, "ps")
    assert code == 0
    assert [(a["name"], a["pending"]) for a in ps["agents"]] == [("bob", 1)]


def test_up_says_when_the_server_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "agents.yaml").write_text(
        f"name: t\nqueue: nats://127.0.0.1:{free_port()}\nagents:\n  bob:\n    prompt: hi\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-used")
    code = main(["up"])
    err = capsys.readouterr().err
    assert code != 0
    assert "no server answered" in err
    assert "nats-server -js" in err
    assert "Traceback" not in err


def test_a_roster_named_with_f_gives_its_nats_queue_to_every_verb(
    team: NatsConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`-f other.yaml` names the team for the queue verbs too: with no ./agents.yaml, `send`
    and `queue ls` reach other.yaml's JetStream queue, not a SQLite file beside it."""
    (tmp_path / "agents.yaml").rename(tmp_path / "other.yaml")
    assert run_json(capsys, "-f", "other.yaml", "register", "bob")[0] == 0
    code, sent = run_json(capsys, "-f", "other.yaml", "send", "bob", "via -f")
    assert code == 0
    with BlockingNatsMailbox(team) as mb:
        assert [m.body for m in mb.list(recipient="bob")] == ["via -f"]
    code, listed = run_json(capsys, "-f", "other.yaml", "queue", "ls")
    assert code == 0
    assert sent["message"]["id"] in json.dumps(listed)
    assert not list(tmp_path.rglob("*.db"))


def _approval(mb: Any, timeout_s: float) -> Any:
    """An approval request as an agent's hook makes it (approval_wait.py): bob asks user."""
    fields = {"key": "k", "agent": "bob", "tool": "Bash", "input": {"command": "touch x"}}
    body = {"approval": {**fields, "timeout_s": timeout_s}, "text": "'bob' asks to run Bash"}
    return mb.request("bob", USER, body)


def test_approvals_approve_and_deny_answer_on_the_nats_queue(
    team: NatsConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`approvals`, `approve ID` and `deny ID` read and answer the team's JetStream queue.
    Before, they read only the SQLite file: "no team database at queue/team.db", or, with
    a stray local database there, no such request (`reply ID approve` was the only way)."""
    from orchestrator.mailbox import Mailbox

    (tmp_path / "queue").mkdir()
    with Mailbox(tmp_path / "queue" / "team.db"):  # a stray local database: not the team's
        pass
    with BlockingNatsMailbox(team) as mb:
        mb.register("bob")
        first, second = _approval(mb, 600), _approval(mb, 600)
    code, listed = run_json(capsys, "approvals")
    assert code == 0, listed
    assert sorted((a["id"], a["agent"], a["tool"]) for a in listed["approvals"]) == sorted(
        [(first.id, "bob", "Bash"), (second.id, "bob", "Bash")]
    )
    code, said = run_json(capsys, "approve", first.id)
    assert (code, said["answer"]) == (0, "approved"), said
    code, said = run_json(capsys, "deny", second.id, "--reason", "not today")
    assert (code, said["answer"]) == (0, "denied"), said
    with BlockingNatsMailbox(team) as mb:
        granted, denied = mb.find_reply(first.id), mb.find_reply(second.id)
    assert granted is not None
    assert granted.body == {"approval": "granted"}
    assert denied is not None
    assert denied.body == {"approval": "denied", "reason": "not today"}
    assert run_json(capsys, "approvals")[1]["approvals"] == []
    code, again = run_json(capsys, "approve", first.id)
    assert (code, again["error"]) == (3, "not_found"), again
    assert "already answered" in again["message"]
    code, nosuch = run_json(capsys, "deny", "nosuchid0")
    assert (code, nosuch["error"]) == (3, "not_found"), nosuch
    code, malformed = run_json(capsys, "deny", "no such id")
    assert (code, malformed["error"]) == (2, "usage"), malformed


def test_an_approve_on_nats_after_the_time_ran_out_says_it_came_too_late(
    team: NatsConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    """The approval_timeout holds on NATS as on SQLite: past it, `approvals` leaves the
    request out and `approve` refuses, saying it came too late, and ends the request."""
    with BlockingNatsMailbox(team) as mb:
        mb.register("bob")
        asked = _approval(mb, 0.001)  # its time has run out by the time the verbs look
    assert run_json(capsys, "approvals")[1]["approvals"] == []
    assert main(["approve", asked.id]) == 3
    err = capsys.readouterr().err
    assert "came too late" in err, err
    assert "no answer from the approver within 0.001s: denied" in err
    with BlockingNatsMailbox(team) as mb:
        reply = mb.find_reply(asked.id)
    assert reply is not None
    assert reply.error == errors.RequestTimeout.code
    assert main(["approve", asked.id]) == 3
    assert "came too late" in capsys.readouterr().err


def test_a_bucket_in_other_copies_is_shown_by_ps_not_said_by_every_verb(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """The bucket made with one copy, the roster edited to `replicas: 3` since. Measured
    before: `queue ls`, `send`, `inbox` each printed the `queue_replicas_differ` warning
    on stderr, and `ps` twice (it opens the queue twice), into every script's output for
    as long as the two disagreed. As `docker compose ps` or k9s show what differs in
    their listing, not in every command: `ps` shows it (a `queue:` line, and
    `queue_replicas_differ` in --json) while it lasts, the supervisor says it as it
    starts, and the other verbs say nothing of it."""
    namespace = f"cli{uuid.uuid4().hex[:8]}"
    roster = tmp_path / "agents.yaml"
    text = (
        f"name: t\nqueue:\n  servers: {nats_server.url}\n  namespace: {namespace}\n"
        "agents:\n  bob:\n    prompt: answers\n"
    )
    roster.write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "OCTY_DB"}
    registered = octy("register", "bob", cwd=tmp_path, env=env, check=True)
    assert "replicas" not in registered.stderr  # the bucket made: said, not its copies
    three = f"namespace: {namespace}\n  replicas: 3\n"
    roster.write_text(text.replace(f"namespace: {namespace}\n", three))
    for argv in (("queue", "ls"), ("send", "bob", "hi"), ("inbox", "bob")):
        done = octy(*argv, cwd=tmp_path, env=env, check=True)
        assert "replicas" not in done.stderr + done.stdout, (argv, done.stderr)
    shown = octy("ps", cwd=tmp_path, env=env, check=True)
    assert "replicas" not in shown.stderr
    lines = [line for line in shown.stdout.splitlines() if "replicas" in line]
    assert lines == [
        f"queue: bucket {namespace} kept in 1 copy, agents.yaml says replicas: 3 "
        f"(fix: nats stream edit KV_{namespace} --replicas 3, or set replicas: 1 in "
        "agents.yaml)"
    ]
    as_json = json.loads(octy("ps", "--json", cwd=tmp_path, env=env, check=True).stdout)
    assert as_json["queue_replicas_differ"]["replicas"] == 1
    assert as_json["queue_replicas_differ"]["roster_replicas"] == 3
    roster.write_text(text)  # agreeing again: nothing to show
    shown = octy("ps", cwd=tmp_path, env=env, check=True)
    assert "replicas" not in shown.stdout + shown.stderr


def test_ps_shows_a_lost_bucket_from_the_supervisor_row_and_escapes_it(
    team: NatsConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    """The supervisor's row says when the server lost the bucket (chores.check_store):
    `ps` shows it; the row is anyone's to write (the team's account), so a terminal
    escape in it is shown escaped, and a row saying something else there shows nothing."""
    with BlockingNatsMailbox(team) as mb:
        mb.register_supervisor(1, {"queue_lost": {"at": 1e9, "how": "gone\x1b[2J"}})
    assert main(["ps"]) == 0
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.startswith("queue: LOST at ")]
    assert "\x1b" not in line
    assert "gone" in line
    assert main(["ps", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["supervisor"]["queue_lost"]["at"] == 1e9
    for odd in ("yesterday", {"at": "1e9", "how": "x"}, {"at": True, "how": "x"}):
        with BlockingNatsMailbox(team) as mb:
            mb.register_supervisor(1, {"queue_lost": odd})
        assert main(["ps"]) == 0
        assert "queue: LOST" not in capsys.readouterr().out


def test_ps_shows_a_lost_bucket_at_a_time_no_clock_can_show_without_a_traceback(
    team: NatsConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    """The row's `at` is anyone's to write: a finite number past what the platform's
    time_t holds (1e20: OverflowError; 1e17: OSError EOVERFLOW) made `ps` end in a
    traceback. Such a time is no time: nothing is shown, as for any other odd value,
    and `ps --json` does not show it either."""
    for odd in (1e20, -1e20, 1e17):
        with BlockingNatsMailbox(team) as mb:
            mb.register_supervisor(1, {"queue_lost": {"at": odd, "how": "x"}})
        assert main(["ps"]) == 0
        assert "queue: LOST" not in capsys.readouterr().out
        assert main(["ps", "--json"]) == 0
        assert "queue_lost" not in json.loads(capsys.readouterr().out)["supervisor"]


def test_a_verb_that_makes_the_bucket_says_so_once_on_stderr(
    team: NatsConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    """No bucket on the server (a new team, a server restarted without its store, a
    `namespace:` naming no team): the verb makes it, empty, as before, and says so in
    one line. It used to say nothing: `queue ls` showed an empty queue as if the team's
    were empty. The next verb finds the bucket and says nothing."""
    assert main(["queue", "ls"]) == 0
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 1, said
    assert f"no bucket '{team.namespace}'" in said[0]
    assert "made it, empty" in said[0]
    assert "restarted without its store" in said[0]
    assert main(["register", "bob"]) == 0
    assert main(["queue", "ls"]) == 0
    assert capsys.readouterr().err == ""
