"""`up` checks the model while it imports the SDK, not after (issue 14.5): the check waits on
the network, the import keeps the CPU busy for half a second or more, and both come before
any agent can start. What the check reports, and where, is unchanged.

Pinned by what the up process had loaded when the endpoint saw its first connection (its
memory map), never by time."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cli_runner import octy_bg

SDK_LIBRARY = "pydantic_core"  # mapped early in `import claude_agent_sdk` (mcp.types)


class _Endpoint(ThreadingHTTPServer):
    """Refuses every key (401), and notes, at its first connection, whether the process
    that connected had the SDK's native library loaded yet."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Refuse)
        self.client_pid: int | None = None
        self.sdk_loaded_at_first_connection: bool | None = None
        self.requests: list[str] = []

    def verify_request(self, request: Any, client_address: Any) -> bool:
        if self.sdk_loaded_at_first_connection is None and self.client_pid is not None:
            maps = Path(f"/proc/{self.client_pid}/maps").read_text()
            self.sdk_loaded_at_first_connection = SDK_LIBRARY in maps
        return True


class _Refuse(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        assert isinstance(self.server, _Endpoint)
        self.server.requests.append(self.path)
        body = b'{"type":"error","error":{"type":"authentication_error","message":"bad key"}}'
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Any:
    server = _Endpoint()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_up_checks_the_model_while_it_imports_the_sdk(tmp_path: Path, endpoint: _Endpoint) -> None:
    (tmp_path / "agents.yaml").write_text(
        "name: t\nagents:\n  a:\n    prompt: You are a.\n    sandbox: false\n"
    )
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "ANTHROPIC_API_KEY": "sk-ant-test-not-a-key",
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{endpoint.server_address[1]}",
    }
    env.pop("OCTY_DB", None)
    env.pop("OCTY_AGENT", None)
    proc = octy_bg("up", "--no-color", cwd=tmp_path, env=env)
    endpoint.client_pid = proc.pid
    out, err = proc.communicate(timeout=120)
    # Unchanged: the key is refused, `up` says so and starts nothing.
    assert proc.returncode == 1, (out, err)
    assert "the API key was rejected (HTTP 401" in err
    assert "--no-model-check" in err
    assert endpoint.requests == ["/v1/models?limit=1"]
    # The check reached the endpoint before the SDK's import had got far.
    assert endpoint.sdk_loaded_at_first_connection is False
