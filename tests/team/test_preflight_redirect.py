"""`up`'s model check sends the API key to the endpoint it names and nowhere else
(orchestrator/preflight.py, review M3): urllib's redirect handler copied ``x-api-key`` and
``authorization`` to whatever host a 3xx named. Two real local HTTP servers."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from orchestrator import preflight

KEY = "sk-ant-api03-REAL-KEY-xyz"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, status: int, location: str = "") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = status
        self.location = location
        self.seen: list[tuple[str, str]] = []  # (path, every header as sent)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        assert isinstance(self.server, _Server)
        self.server.seen.append((self.path, str(self.headers)))
        body = b'{"type":"error","error":{"type":"authentication_error","message":"no"}}'
        self.send_response(self.server.status)
        if self.server.location:
            self.send_header("location", self.server.location)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(server: _Server) -> _Server:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def elsewhere() -> Iterator[_Server]:
    """The host a redirect names: it refuses every key (so following the redirect would
    also have turned into a false "key rejected")."""
    server = _serve(_Server(401))
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("key_var", ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"])
def test_a_redirect_is_not_followed_with_the_key(
    elsewhere: _Server, status: int, key_var: str
) -> None:
    # localhost, not 127.0.0.1: another host name for the same machine, as a gateway's
    # SSO page would be another host.
    target = elsewhere.url.replace("127.0.0.1", "localhost") + "/steal"
    endpoint = _serve(_Server(status, target))
    try:
        reason = preflight.rejected_key({"ANTHROPIC_BASE_URL": endpoint.url, key_var: KEY})
    finally:
        endpoint.shutdown()
        endpoint.server_close()
    assert reason is None  # a 3xx says nothing about the key
    assert [path for path, _ in endpoint.seen] == ["/v1/models?limit=1"]
    assert KEY in endpoint.seen[0][1]  # the endpoint itself did get the key
    assert elsewhere.seen == []


def test_a_user_part_in_the_base_url_goes_as_the_cli_sends_it() -> None:
    """A gateway's credential in ANTHROPIC_BASE_URL (`http://gw:pw@host`, README: kept for
    the CLI): urllib took `gw:pw@127.0.0.1` for the host, so `up` refused to start ("no
    answer to GET /v1/models ([Errno -2] Name or service not known)", found measuring the
    gateway gap). The bundled CLI 2.1.332 sends it as `Authorization: Basic` beside its
    key (measured against a recording server); the check now does the same."""
    endpoint = _serve(_Server(200))
    user_url = endpoint.url.replace("://", "://gw%40team:p%3Ass@", 1)
    try:
        env = {"ANTHROPIC_BASE_URL": user_url, "ANTHROPIC_API_KEY": KEY}
        assert preflight.unreachable(env) is None
        reason = preflight.rejected_key(env)
    finally:
        endpoint.shutdown()
        endpoint.server_close()
    assert reason is None
    [(path, headers)] = endpoint.seen
    assert path == "/v1/models?limit=1"
    basic = base64.b64encode(b"gw@team:p:ss").decode()
    assert f"Authorization: Basic {basic}" in headers
    assert KEY in headers  # its key too
