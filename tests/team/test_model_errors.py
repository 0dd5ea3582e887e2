"""How failed turns are judged, from what the bundled CLI was recorded emitting (stream-json
lines captured against the scripted model: 400, 401, 403, 404, 529, a closed port, a DNS
failure, max_turns), and the endpoint probe `up` and the runner use."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from claude_agent_sdk import ResultMessage

from orchestrator.batching import BATCH_BYTES, batch_of, encoded_size, fit_reply
from orchestrator.mailbox import MAX_BODY_BYTES, Message
from orchestrator.model_errors import ModelError, classify, no_answer
from orchestrator.preflight import Endpoint, Exchange, rejected_key, unreachable


def result(status: int | None, text: str, **fields: Any) -> ResultMessage:
    values: dict[str, Any] = {
        "subtype": "success",
        "duration_ms": 1,
        "duration_api_ms": 0,
        "is_error": True,
        "num_turns": 1,
        "session_id": "s",
        "api_error_status": status,
        "result": text,
        "terminal_reason": "api_error",
        **fields,
    }
    return ResultMessage(**values)


@pytest.mark.parametrize(
    ("recorded", "kind", "words"),
    [
        (result(401, "Invalid API key · Fix external API key"), "unavailable", "key was rejected"),
        (result(403, "Failed to authenticate. API Error: 403"), "unavailable", "may not use"),
        (result(404, "There's an issue with the selected model"), "unavailable", "not found"),
        (result(400, "API Error: 400 messages.0: bad thing"), "deterministic", "bad thing"),
        (
            result(400, "Prompt is too long", terminal_reason="prompt_too_long"),
            "deterministic",
            "HTTP 400: Prompt is too long",
        ),
        (
            result(None, "", subtype="error_max_turns", num_turns=2, terminal_reason="max_turns"),
            "deterministic",
            "max_turns reached after 2",
        ),
        (result(529, "API Error: 529 Overloaded."), "transient", "529 Overloaded"),
        (result(None, "API Error: Connection refused (ECONNREFUSED)"), "transient", "refused"),
    ],
)
def test_a_failed_turn_is_judged_by_what_the_cli_reported(
    recorded: ResultMessage, kind: str, words: str
) -> None:
    """401/403/404: the model is unavailable; 400, a prompt over the context, max_turns:
    deterministic (fail once); anything else (529, 5xx, no answer): worth retrying. A turn
    with no HTTP answer at all is then told apart by probing the endpoint (below)."""
    failure = classify(recorded, recorded.result or "")
    assert failure.kind == kind
    assert words in failure.reason


def test_no_answer_means_no_http_status_from_an_api_error() -> None:
    assert no_answer(result(None, "API Error: Connection refused"))
    assert not no_answer(result(529, "API Error: 529"))


def test_a_retry_notice_becomes_a_model_error_event() -> None:
    """The CLI's system/api_retry line, as recorded for a 401 and for a closed port."""
    rejected = ModelError.from_retry(
        {
            "type": "system",
            "subtype": "api_retry",
            "attempt": 1,
            "max_retries": 2,
            "retry_delay_ms": 562,
            "error_status": 401,
            "error": "authentication_failed",
        }
    )
    assert rejected.fields() == {
        "status": 401,
        "type": "authentication_failed",
        "attempt": 1,
        "max_retries": 2,
        "retry_in_s": 0.56,
    }
    assert rejected.short() == "HTTP 401 authentication_failed, retry 1/2"
    assert rejected.unavailable_reason() == (
        "the API key was rejected (HTTP 401 authentication_failed)"
    )
    silent = ModelError.from_retry(
        {"attempt": 2, "max_retries": 3, "error_status": None, "error": "unknown"}
    )
    assert silent.short() == "no answer (unknown), retry 2/3"
    assert silent.unavailable_reason() is None  # the probe decides
    overloaded = ModelError.from_retry({"error_status": 529, "error": "overloaded"})
    assert overloaded.unavailable_reason() is None


def test_the_probe_names_a_closed_port_and_a_name_that_does_not_resolve() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert unreachable({"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}"}) == (
        f"connection refused at 127.0.0.1:{port}"
    )
    dns = unreachable({"ANTHROPIC_BASE_URL": "https://nosuch-host.invalid"})
    assert dns is not None
    assert dns.startswith("cannot resolve nosuch-host.invalid")
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        url = f"http://127.0.0.1:{listening.getsockname()[1]}"
        assert unreachable({"ANTHROPIC_BASE_URL": url}) is None
        # Behind a proxy a direct connect proves nothing: the CLI's own errors tell.
        assert unreachable({"ANTHROPIC_BASE_URL": "http://10.9.9.9", "HTTP_PROXY": url}) is None


def test_the_probe_says_a_host_that_is_no_dns_name_cannot_resolve() -> None:
    """getaddrinfo's IDNA encoding raised UnicodeError out of unreachable(): with
    `ANTHROPIC_BASE_URL: http://a..b:8080` and --no-model-check (measured), the runner's
    check crashed the agent's session at each turn, 5 times, then the request was given up
    as "its session died on it 5 times"; `up` said "the check failed (UnicodeError: ...)"."""
    for host in ("a..b", "a" * 64 + ".example", "x\udcff.example"):
        assert unreachable({"ANTHROPIC_BASE_URL": f"http://{host}:8080"}) == (
            f"cannot resolve {host} (not a valid host name)"
        )


def test_no_proxy_names_a_host_and_its_subdomains_not_any_suffix() -> None:
    """NO_PROXY `host.invalid` was taken to bypass the proxy for `nosuch-host.invalid`
    (a bare suffix match; urllib, which sends the check's request, does not): the check
    looked the name up itself, where only the proxy may resolve it, and `up` refused the
    team with "cannot resolve". Behind the proxy the CLI's own errors tell (None)."""
    url = "https://nosuch-host.invalid"
    proxy = {"ANTHROPIC_BASE_URL": url, "HTTPS_PROXY": "http://127.0.0.1:9"}
    for entry in ("host.invalid", "ch-host.invalid", "other.invalid,  "):
        assert unreachable({**proxy, "NO_PROXY": entry}) is None, entry
    for entry in ("nosuch-host.invalid", ".invalid", "*.invalid", "x, *", "NOSUCH-HOST.invalid"):
        said = unreachable({**proxy, "no_proxy": entry})
        assert said is not None, entry
        assert said.startswith("cannot resolve nosuch-host.invalid"), entry


def test_a_port_out_of_range_is_said_not_taken_for_the_default() -> None:
    """`http://127.0.0.1:99999` (or `:0`, `:x`) was checked at port 80 (443 for https):
    a listener there passed the check for a port the CLI never uses."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert unreachable({"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}"}) is None
        for bad in ("99999", "0", "x", str(port + 65536)):
            url = f"http://127.0.0.1:{bad}"
            assert unreachable({"ANTHROPIC_BASE_URL": url}) == (
                f"ANTHROPIC_BASE_URL {url!r} has no valid port (1-65535)"
            )


def test_the_key_is_checked_through_the_proxy_the_agents_env_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An agent's roster `env` naming HTTP_PROXY (the supervisor's environment naming
    none): the TCP probe stood aside (behind a proxy), then urllib, which reads only the
    supervisor's environment, checked the key directly, `no answer to GET /v1/models
    (Connection refused)`, nothing sent to the proxy, and `up` refused the team. Now the
    proxy is asked (here it answers 401 itself)."""
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("ALL_PROXY", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    seen: list[str] = []

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(401)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    url = f"http://127.0.0.1:{closed}"
    env = {
        "ANTHROPIC_BASE_URL": url,
        "HTTP_PROXY": f"http://127.0.0.1:{proxy.server_address[1]}",
        "ANTHROPIC_API_KEY": "test",
    }
    exchange = Exchange(10**9)
    try:
        assert unreachable(env) is None
        assert rejected_key(env, exchange) == "the API key was rejected (HTTP 401: Unauthorized)"
    finally:
        exchange.release()
        proxy.shutdown()
        proxy.server_close()
    assert seen == [f"{url}/v1/models?limit=1"]


def test_endpoint_defaults_to_anthropic() -> None:
    assert Endpoint.of({}) == Endpoint("https://api.anthropic.com", "api.anthropic.com", 443)
    assert Endpoint.of({"ANTHROPIC_BASE_URL": "http://h:8080/"}).port == 8080


def _message(i: int, body: str = "x", attempts: int = 1) -> Message:
    return Message(
        id=f"m{i}",
        kind="request",
        sender="user",
        recipient="a",
        correlation_id=None,
        cause_id=None,
        body=body,
        status="leased",
        attempts=attempts,
        max_attempts=5,
        lease_owner="o",
        lease_expires=None,
        available_at=0.0,
        created_at=0.0,
        expires_at=None,
        claimed_at=None,
        done_at=None,
        error=None,
        error_detail=None,
    )


def test_a_message_delivered_before_goes_alone_and_big_bodies_are_not_batched() -> None:
    """After a failed turn each message is retried alone (issue 16.7); at most BATCH_BYTES of
    body text share a turn, and one big body always goes (alone)."""
    fresh = [_message(i) for i in range(3)]
    assert batch_of(fresh) == fresh
    again = _message(9, attempts=2)
    assert batch_of([fresh[0], again, fresh[1]]) == [again]
    big = "y" * (BATCH_BYTES - 10)
    assert batch_of([_message(1, big), _message(2, big)]) == [_message(1, big)]


def test_a_reply_over_the_queue_limit_is_cut_and_says_so() -> None:
    assert fit_reply("short") == "short"
    cut = fit_reply("é\n" * MAX_BODY_BYTES)
    assert encoded_size(cut) <= MAX_BODY_BYTES
    assert cut.endswith("over the queue's limit]")
