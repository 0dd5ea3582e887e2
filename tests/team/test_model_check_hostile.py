"""`up`'s model check against endpoints that answer with what no HTTP server should:
more headers than http.client reads, a status line that is not one, a reason phrase and
an error message with terminal escapes. Each is that agent's problem, in words a
terminal shows as they are, never an exception out of the check (real local sockets)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import preflight
from orchestrator.roster import load_roster

SAFETY_S = 30  # a safety net for a wedged socket, not a measurement


@pytest.fixture(autouse=True)
def _key_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("all_proxy", raising=False)


def _answering(answer: bytes) -> Iterator[int]:
    """A socket that answers every connection with ``answer`` (raw bytes), then closes."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(SAFETY_S)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(SAFETY_S)
                try:
                    conn.recv(65536)
                    conn.sendall(answer)
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


BODY = b'{"error":{"message":"bad key\x1b[2J\x1b]0;owned\x07"}}'
ANSWERS = {
    "too_many_headers": b"HTTP/1.1 401 Unauthorized\r\n"
    + b"".join(b"x-h%d: v\r\n" % i for i in range(150))
    + b"content-length: 0\r\n\r\n",
    "not_a_status_line": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    "escapes": b"HTTP/1.1 401 Bad\x1b[31mKey\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY),
}


@pytest.mark.parametrize("case", sorted(ANSWERS))
def test_a_hostile_answer_is_the_agents_problem_in_plain_words(tmp_path: Path, case: str) -> None:
    """Before: more than 100 headers, or a status line that is not HTTP, raised
    http.client's HTTPException (not an OSError) out of the check, and `up` ended with a
    traceback; an endpoint's reason phrase or error message reached the terminal with its
    escapes (`\\x1b[2J` cleared the screen)."""
    for port in _answering(ANSWERS[case]):
        (tmp_path / "agents.yaml").write_text(
            "agents:\n  a:\n    prompt: A.\n    env:\n"
            f"      ANTHROPIC_BASE_URL: http://127.0.0.1:{port}\n",
            encoding="utf-8",
        )
        problems = preflight.check(load_roster(tmp_path / "agents.yaml"))
    (problem,) = problems
    assert problem.agents == ("a",)
    text = str(problem)
    assert text.isprintable(), text
    if case == "escapes":
        assert "HTTP 401" in text
