"""`up`'s model check asks every endpoint at the same time, and ends within
preflight.CHECK_DEADLINE_S however slow they are: `up -d` waits 60 s for its supervisor
to register, which it does after the check. One after the other, an endpoint that takes
the connection and never answers cost 10 s each (3 took 30.0 s, measured; 6 made `up -d`
time out), and one that answers a byte at a time held the check for good.

Pinned by events (every endpoint holding its request at once; a check that returns while
the endpoint still trickles), never by time."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orchestrator import preflight
from orchestrator.roster import Roster, load_roster

SAFETY_S = 60  # a safety net for a wedged thread, not a measurement
GRACE_S = 5  # for a thread told to end to end (it reads a cut socket): not a measurement


@pytest.fixture(autouse=True)
def _key_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def _roster(tmp_path: Path, ports: list[int]) -> Roster:
    """An agent per port, each with its own ANTHROPIC_BASE_URL."""
    text = "agents:\n" + "".join(
        f"  a{i}:\n    prompt: A.\n    env:\n      ANTHROPIC_BASE_URL: http://127.0.0.1:{port}\n"
        for i, port in enumerate(ports)
    )
    (tmp_path / "agents.yaml").write_text(text, encoding="utf-8")
    return load_roster(tmp_path / "agents.yaml")


class _Gate:
    """Holds every `GET /v1/models` until ``wanted`` of them are held at once, then lets
    them all be answered 401 (or, after SAFETY_S, answered anyway)."""

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.held = 0
        self.most_at_once = 0
        self.changed = threading.Condition()

    def hold(self) -> None:
        with self.changed:
            self.held += 1
            self.most_at_once = max(self.most_at_once, self.held)
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.most_at_once >= self.wanted, SAFETY_S)
            self.held -= 1


def _gated_endpoint(gate: _Gate) -> ThreadingHTTPServer:
    class Refuse(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            gate.hold()
            body = b'{"error": {"message": "bad key"}}'
            self.send_response(401)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_every_endpoint_is_asked_at_the_same_time(tmp_path: Path) -> None:
    """Five endpoints, each holding its request until all five hold one: asked one after
    the other, the first gave up (`no answer … (timed out)`) before the second was asked,
    and none saw its 401. Asked at once, each is answered, and each agent is told its key
    was rejected."""
    gate = _Gate(5)
    servers = [_gated_endpoint(gate) for _ in range(5)]
    try:
        problems = preflight.check(_roster(tmp_path, [s.server_address[1] for s in servers]))
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
    assert gate.most_at_once == 5
    assert sorted(p.agents for p in problems) == [(f"a{i}",) for i in range(5)]
    for p in problems:
        assert "the API key was rejected (HTTP 401: bad key)" in p.reason, p


def _trickling_endpoint(
    stop: threading.Event,
    sent: list[int],
    opening: bytes = b"HTTP/1.1 401 Unauthorized\r\nX-Slow: ",
) -> socket.socket:
    """Answers every request with ``opening`` (a status line), then one byte at a time
    until ``stop`` (of a header): each read gets a byte, so no per-read timeout fires."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    def trickle(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(opening)
                while not stop.wait(0.05):
                    conn.sendall(b"z")
                    sent.append(1)
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    return listener


def test_an_endpoint_that_never_finishes_its_answer_is_given_up_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endpoint that sends its answer a byte at a time, for ever: the check read it for
    ever (urllib's timeout is per read) and `up` never started. Now the check ends at its
    deadline, while that endpoint is still sending, and says so for its agent; a quick
    endpoint beside it keeps its own verdict."""
    stop = threading.Event()
    sent: list[int] = []
    slow = _trickling_endpoint(stop, sent)
    quick = _gated_endpoint(_Gate(1))
    ports = [slow.getsockname()[1], quick.server_address[1]]
    monkeypatch.setattr(preflight, "CHECK_DEADLINE_S", 1.0, raising=False)
    result: list[list[preflight.Problem]] = []
    checking = threading.Thread(
        target=lambda: result.append(preflight.check(_roster(tmp_path, ports))),
        daemon=True,
    )
    try:
        checking.start()
        checking.join(SAFETY_S)
        still_sending = not stop.is_set() and len(sent) > 0
    finally:
        stop.set()
        slow.close()
        quick.shutdown()
        quick.server_close()
    assert result, "the check never ended"
    assert still_sending
    by_agent = {p.agents: p.reason for p in result[0]}
    assert by_agent[("a0",)].startswith("no answer within 1s (the model check's limit")
    assert "--no-model-check" in by_agent[("a0",)]
    assert "the API key was rejected (HTTP 401" in by_agent[("a1",)]


# A TLS record header (handshake, TLS 1.2, 16,384 bytes to come): the client's handshake
# waits for the whole record, which comes a byte at a time.
TLS_RECORD_OPENING = b"\x16\x03\x03\x40\x00"


def test_no_check_thread_outlives_the_check_of_a_trickling_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: an endpoint that sends a byte every moment and never finishes kept its
    check's thread reading after the check had given it up, for as long as the endpoint
    kept sending: one thread per such endpoint per `up`, for the supervisor's whole life.
    Now the check cuts its connections when it gives up: once it has returned, every
    thread it began ends while the endpoints are still sending, the one trickling an
    answer over HTTP as the one trickling its TLS handshake."""
    stop = threading.Event()
    sent: list[int] = []
    plain = _trickling_endpoint(stop, sent)
    tls = _trickling_endpoint(stop, sent, TLS_RECORD_OPENING)
    (tmp_path / "agents.yaml").write_text(
        "agents:\n"
        "  a0:\n    prompt: A.\n    env:\n"
        f"      ANTHROPIC_BASE_URL: http://127.0.0.1:{plain.getsockname()[1]}\n"
        "  a1:\n    prompt: A.\n    env:\n"
        f"      ANTHROPIC_BASE_URL: https://127.0.0.1:{tls.getsockname()[1]}\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(preflight, "CHECK_DEADLINE_S", 1.0, raising=False)
    before = set(threading.enumerate())
    try:
        problems = preflight.check(load_roster(tmp_path / "agents.yaml"))
        begun = [t for t in threading.enumerate() if t not in before and "model-check" in t.name]
        for thread in begun:
            thread.join(GRACE_S)
        outlived = [t for t in begun if t.is_alive()]
        still_sending = not stop.is_set() and len(sent) > 0
    finally:
        stop.set()
        plain.close()
        tls.close()
    assert outlived == []
    assert still_sending
    by_agent = {p.agents: p.reason for p in problems}
    assert by_agent[("a0",)].startswith("no answer within 1s (the model check's limit")
    # its own timeout (no longer than the time left) may end the handshake first
    assert by_agent[("a1",)].startswith("no answer"), by_agent


def test_up_d_with_six_silent_endpoints_says_why_instead_of_timing_out(team: Any) -> None:
    """Six agents, each on its own endpoint that takes the connection and never answers
    (a socket that listens and never reads): asked one after the other (10 s each), the
    check outlasted `up -d`'s 60 s wait for registration, and `up -d` said the supervisor
    "did not register within 60 s", not why. Asked at once: exit 1, each agent named with
    its endpoint's reason, nothing started."""
    names = [f"a{i}" for i in range(6)]
    silent = [socket.create_server(("127.0.0.1", 0), backlog=8) for _ in names]
    ports = [s.getsockname()[1] for s in silent]
    try:
        agents = {
            n: {"env": {"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}"}}
            for n, port in zip(names, ports, strict=True)
        }
        t = team([{"text": "ok"}], agents)
        done = t.octy("up", "-d", check=False, env={"ANTHROPIC_API_KEY": "test"})
    finally:
        for s in silent:
            s.close()
    assert done.returncode == 1, done
    assert "did not register" not in done.stderr
    assert "the model cannot be used" in done.stderr
    for n, port in zip(names, ports, strict=True):
        line = f"  {n}: http://127.0.0.1:{port}: no answer to GET /v1/models"
        assert line in done.stderr, done.stderr


def test_silent_endpoints_get_the_checks_own_verdict_at_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (review of the deadline cut): the check's timeouts are no longer than
    the time it has left, so an endpoint that takes the request and never answers timed
    out at the very deadline, and its thread's own `no answer to GET /v1/models (timed
    out)` (or `no answer from HOST:PORT within 0.03s`, a connect begun late) raced the
    check's `no answer within 1s (the model check's limit …; --no-model-check skips the
    check)`, which the README gives: measured, one silent endpoint lost 2 to 3 times in
    12, one begun late by a busy check 10 in 10; before the cut its own timeout came after
    the deadline. A verdict reached because the time ran out is no verdict: the check's
    own reason, for every such endpoint, every time."""
    silent = [socket.create_server(("127.0.0.1", 0), backlog=8) for _ in range(16)]
    monkeypatch.setattr(preflight, "CHECK_DEADLINE_S", 1.0, raising=False)
    try:
        problems = preflight.check(_roster(tmp_path, [s.getsockname()[1] for s in silent]))
    finally:
        for s in silent:
            s.close()  # taken, never read
    assert len(problems) == 16
    for problem in problems:
        assert problem.reason.startswith("no answer within 1s (the model check's limit"), problem
        assert "--no-model-check" in problem.reason
