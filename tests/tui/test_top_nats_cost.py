"""What `ps` and a refresh of `top` ask a NATS server: as much with 60 done messages as
with 6 (a real nats-server, the queue's own client, no team). Each done message used to
be read one request at a time, twice a refresh: 0.8 s of CPU a second at 2,000
(bench/ps_nats.py, docs/benchmarks.md). Counted in requests sent, never in time."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

sys.path.insert(0, str(Path(__file__).parents[1] / "mailbox" / "contract"))

from natsserver import NatsServer

from orchestrator import errors
from orchestrator.cli.team_verbs import ps_rows
from orchestrator.mailbox.opening import open_sync
from orchestrator.roster.queue_setting import QueueSetting
from orchestrator.tui.data import TeamSource


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats")).start()
    yield server
    server.stop()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], Any]], int]:
    """How many messages (requests among them) every NATS client of this process
    publishes while ``call`` runs."""
    count = [0]
    lock = threading.Lock()
    publish = Client.publish

    async def counted(self: Client, *args: Any, **kwargs: Any) -> None:
        with lock:
            count[0] += 1
        await publish(self, *args, **kwargs)

    monkeypatch.setattr(Client, "publish", counted)

    def during(call: Callable[[], Any]) -> int:
        before = count[0]
        call()
        return count[0] - before

    return during


def team_queue(server: NatsServer, done: int) -> QueueSetting:
    """A bucket with three agents, ``done`` finished messages and the same few open ones:
    two waiting for b, one b holds, one dead letter."""
    setting = QueueSetting((server.url,), f"cost{uuid.uuid4().hex[:8]}")
    with open_sync(setting) as mb:
        for name in ("a", "b", "c"):
            mb.register(name, meta={"supervised": True})
        for i in range(done):
            mb.send("a", "c", i)
            mb.ack([m.id for m in mb.claim("c", owner="w")], owner="w")
        mb.send("a", "b", "doomed")
        (m,) = mb.claim("b", owner="w")
        mb.nack(m.id, owner="w", dead_code="bad")
        mb.send("a", "b", "held")
        mb.claim("b", owner="w", lease_s=3600)
        mb.send("a", "b", "one")
        mb.send("c", "b", "two")
    return setting


def test_a_refresh_of_top_asks_as_much_whatever_the_history(
    nats_server: NatsServer, sent: Callable[[Callable[[], Any]], int], tmp_path: Path
) -> None:
    """The second refresh of `top` (the first reads what there is, once) sends as many
    requests with 60 done messages as with 6, and shows the same figures."""
    asked = {}
    for done in (6, 60):
        source = TeamSource(tmp_path / f"{done}.db", tmp_path / "logs")
        source.queue = team_queue(nats_server, done)
        try:
            source.snapshot()
            asked[done] = sent(source.snapshot)
            shot = source.snapshot()
        finally:
            source.close()
        team = shot.team
        assert (team.pending, team.in_flight, team.dead) == (2, 1, 1)
        rows = {a.name: a for a in shot.agents}
        assert (rows["b"].pending, len(rows["b"].in_flight)) == (2, 1)
        assert rows["b"].in_flight_age_s is not None
        assert (rows["c"].pending, rows["c"].in_flight) == (0, ())
    assert asked[60] == asked[6]


def test_ps_asks_as_much_whatever_the_history(
    nats_server: NatsServer, sent: Callable[[Callable[[], Any]], int]
) -> None:
    """`ps` (its rows, on a client of its own) sends as many requests with 60 done
    messages as with 6: it reads the open messages through their hints."""
    asked, rows = {}, {}
    for done in (6, 60):
        setting = team_queue(nats_server, done)
        asked[done] = sent(lambda s=setting, d=done: rows.__setitem__(d, ps_rows(s)))
    for got in rows.values():
        by_name = {r["name"]: r for r in got}
        assert (by_name["b"]["pending"], len(by_name["b"]["in_flight"])) == (2, 1)
        assert (by_name["a"]["pending"], by_name["c"]["pending"]) == (0, 0)
    assert asked[60] == asked[6]


def test_top_follows_changes_made_between_refreshes(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """The client `top` keeps between refreshes sees another client's sends, claims,
    dead letters and a purge (keys removed from the bucket) at the next refresh."""
    setting = team_queue(nats_server, 3)
    source = TeamSource(tmp_path / "team.db", tmp_path / "logs")
    source.queue = setting
    try:
        first = source.snapshot().team
        assert (first.pending, first.in_flight, first.dead) == (2, 1, 1)
        with open_sync(setting) as other:
            other.send("b", "c", "new")
            (m,) = other.claim("b", owner="w2")
            other.nack(m.id, owner="w2", dead_code="bad")
        second = source.snapshot()
        assert (second.team.pending, second.team.in_flight, second.team.dead) == (2, 1, 2)
        assert {a.name: a.pending for a in second.agents}["c"] == 1
        with open_sync(setting) as other:
            assert other.purge(statuses=("dead",)) == 2
        third = source.snapshot().team
        assert (third.pending, third.in_flight, third.dead) == (2, 1, 0)
    finally:
        source.close()


def test_top_says_a_lost_server_at_once_and_reads_again_once_it_is_back(
    tmp_path: Path,
) -> None:
    """`top` keeps its client: with the server gone a refresh fails at once with the
    queue's error (the team line's READ FAILED), not after 15 s of retries per read,
    and the same client reads again once the server is back (it reconnects itself)."""
    server = NatsServer(tmp_path / "nats").start()
    source = TeamSource(tmp_path / "team.db", tmp_path / "logs")
    try:
        source.queue = team_queue(server, 2)
        assert source.snapshot().team.pending == 2
        server.stop()
        deadline = time.monotonic() + 60
        client = source._client
        while client.nc.is_connected:  # type: ignore[union-attr]  # the closed socket seen
            assert time.monotonic() < deadline, "the client never saw the server go"
            time.sleep(0.05)
        with pytest.raises(errors.QueueUnavailable, match="connection to the NATS server is lost"):
            source.snapshot()
        server = NatsServer(tmp_path / "nats", port=server.port).start()
        while True:
            try:
                shot = source.snapshot()
                break
            except errors.QueueUnavailable:
                assert time.monotonic() < deadline, "no read after the server came back"
                time.sleep(0.1)
        assert (shot.team.pending, shot.team.in_flight, shot.team.dead) == (2, 1, 1)
    finally:
        source.close()
        server.stop()
