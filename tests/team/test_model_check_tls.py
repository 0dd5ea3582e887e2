"""The model check connects to the address its own lookup gave (preflight.connect, so the
lookup has a deadline), yet TLS still checks the certificate against the host NAME of
ANTHROPIC_BASE_URL: a real TLS endpoint whose certificate is for `localhost` only (no IP
in it), trusted through SSL_CERT_FILE. Reached as `https://localhost:PORT` the handshake
passes and the key's 401 is read; reached as `https://127.0.0.1:PORT`, the same server and
the same address, it is refused for the name. A check that verified the address it
connected to, or nothing, would pass one of the two wrongly."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orchestrator import preflight

SAFETY_S = 60  # a safety net for a wedged process, not a measurement


class _Refuses(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"error": {"message": "bad key from the TLS endpoint"}}'
        self.send_response(401)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def tls_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A TLS endpoint on 127.0.0.1 answering 401, its certificate for `localhost` only."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate with")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost"),
        ],
        capture_output=True,
        check=True,
        timeout=SAFETY_S,
    )
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the only certificate trusted
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuses)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _verdict(url: str) -> str | None:
    env = {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "test"}
    exchange = preflight.Exchange(10**9)
    try:
        return preflight.unreachable(env) or preflight.rejected_key(env, exchange)
    finally:
        exchange.release()


def test_the_certificate_is_checked_for_the_host_name_not_the_address(tls_port: int) -> None:
    assert _verdict(f"https://localhost:{tls_port}") == (
        "the API key was rejected (HTTP 401: bad key from the TLS endpoint)"
    )
    refused = _verdict(f"https://127.0.0.1:{tls_port}") or ""
    assert refused.startswith("no answer to GET /v1/models ("), refused
    assert "CERTIFICATE_VERIFY_FAILED" in refused, refused
    assert "127.0.0.1" in refused, refused
