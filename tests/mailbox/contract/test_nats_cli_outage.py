"""The CLI's send and ask on a NATS queue that loses a write's answer and stays out of
reach past the queue's own retries: the verb tries the write again under the id it
drew once, says so on stderr, and the message is stored once.

The proxy (natsproxy.AckCutter) runs on an event loop of its own in a thread: the
verbs are blocking calls on the test's thread."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from natsproxy import AckCutter
from natsserver import NatsServer

from orchestrator import outage
from orchestrator.cli import main
from orchestrator.mailbox.nats import NatsConfig, faults
from orchestrator.mailbox.nats.blocking import BlockingNatsMailbox


class ProxyThread:
    """An AckCutter served by an event loop in a daemon thread."""

    def __init__(self, target_port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.cutter = self.call(AckCutter(target_port).start())

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self.call(self.cutter.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


class Stderr(io.StringIO):
    """sys.stderr that says when a line it waits for was written."""

    def __init__(self, waited: str) -> None:
        super().__init__()
        self.waited = waited
        self.seen = threading.Event()

    def write(self, text: str) -> int:
        if self.waited in text:
            self.seen.set()
        return super().write(text)


@pytest.fixture
def proxy(nats_server: NatsServer) -> Iterator[ProxyThread]:
    p = ProxyThread(nats_server.port)
    yield p
    p.close()


@pytest.fixture
def team(
    tmp_path: Path, nats_server: NatsServer, proxy: ProxyThread, monkeypatch: pytest.MonkeyPatch
) -> NatsConfig:
    namespace = f"cli{uuid.uuid4().hex[:8]}"
    (tmp_path / "agents.yaml").write_text(
        f"name: t\nqueue:\n  servers: {proxy.cutter.url}\n  namespace: {namespace}\n"
        "agents:\n  bob:\n    prompt: answers\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OCTY_DB", raising=False)
    monkeypatch.setattr(faults, "RETRY_S", 1.0)  # a primitive gives up after 1 s
    monkeypatch.setattr(outage, "RETRY_S", 0.2)  # the verb tries again 0.2 s later
    return NatsConfig((nats_server.url,), namespace=namespace)


@pytest.mark.parametrize("verb", ["send", "ask"])
def test_a_cli_write_whose_answer_was_lost_is_tried_again_and_stored_once(
    verb: str,
    team: NatsConfig,
    proxy: ProxyThread,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``send`` (and ``ask``'s request) reached the bucket, the verb never heard so and
    the queue stayed out of reach past its own retries: one line on stderr, the write
    tried again once the queue is back, exit 0, the message stored once. It used to
    exit with queue_unavailable, leaving a script unable to tell whether to send again."""
    assert main(["register", "bob"]) == 0
    stderr = Stderr("the queue is out of reach")
    monkeypatch.setattr("sys.stderr", stderr)
    proxy.cutter.cut_after_publish_to(f"$KV.{team.namespace}.m.")
    codes: list[int] = []
    argv = [verb, "bob", "hello", "--json"] + (["--timeout", "1"] if verb == "ask" else [])
    worker = threading.Thread(target=lambda: codes.append(main(argv)), daemon=True)
    worker.start()
    assert stderr.seen.wait(60), stderr.getvalue()
    proxy.call(proxy.cutter.release())
    worker.join(60)
    assert not worker.is_alive()
    with BlockingNatsMailbox(team) as mb:
        stored = mb.list(recipient="bob")
    assert [m.body for m in stored] == ["hello"]
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])  # after register's line
    if verb == "send":  # stored, and said so
        assert codes == [0]
        assert printed["message"]["id"] == stored[0].id
    else:  # asked once; nobody answers bob's inbox here, so the ask times out
        assert printed["error"] == "timeout"
        assert stored[0].id in printed["message"]


def test_an_approve_whose_answer_was_lost_is_tried_again_and_is_its_own_success(
    team: NatsConfig,
    proxy: ProxyThread,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`approve ID` wrote the answer, the confirmation was lost and the queue stayed out
    of reach past its own retries. Measured before: exit queue_unavailable at once, and
    `approve ID` run again once the queue was back said "already answered (approved by
    user)", exit 3: the operator could not tell whether the call would run. Now the
    verb tries again (one line on stderr), finds its own answer: exit 0, answered once.
    Another run of `approve` or `deny` by hand still says it was answered already."""
    assert main(["register", "bob"]) == 0
    with BlockingNatsMailbox(team) as mb:
        asked = mb.request(
            "bob", "user", {"approval": {"key": "k1", "tool": "Bash", "timeout_s": 600}}
        )
    capsys.readouterr()
    stderr = Stderr("the queue is out of reach")
    monkeypatch.setattr("sys.stderr", stderr)
    proxy.cutter.cut_after_publish_to(f"$KV.{team.namespace}.r.")
    codes: list[int] = []
    worker = threading.Thread(
        target=lambda: codes.append(main(["approve", asked.id, "--json"])), daemon=True
    )
    worker.start()
    while not stderr.seen.is_set() and worker.is_alive():
        stderr.seen.wait(0.05)
    proxy.call(proxy.cutter.release())
    worker.join(60)
    assert not worker.is_alive()
    assert codes == [0], stderr.getvalue()
    assert stderr.seen.is_set()
    printed = json.loads(capsys.readouterr().out)
    with BlockingNatsMailbox(team) as mb:
        reply = mb.find_reply(asked.id)
        answers = [m for m in mb.list(recipient="bob") if m.kind == "response"]
    assert reply is not None
    assert (reply.sender, reply.body) == ("user", {"approval": "granted"})
    assert [m.id for m in answers] == [reply.id] == [printed["reply_id"]]

    for verb in ("approve", "deny"):  # run again by hand: answered already, as before
        stderr.seek(0)
        stderr.truncate()
        assert main([verb, asked.id]) == 3
        assert "already answered (approved by user)" in stderr.getvalue()
    with BlockingNatsMailbox(team) as mb:
        assert [m.id for m in mb.list(recipient="bob") if m.kind == "response"] == [reply.id]
