"""The HTTP server: a background thread answering the Messages API from a script."""

from __future__ import annotations

import gzip
import json
import os
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from orchestrator.scripted import reading, wire
from orchestrator.scripted.client_env import cli_env
from orchestrator.scripted.recording import (
    MESSAGES_PATH,
    RecordedRequest,
    Recorder,
    clean_headers,
    matcher,
)
from orchestrator.scripted.script import Answer, Playbook, Script

COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
MODELS_PATH = "/v1/models"
_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class ScriptedModel:
    """A local stand-in for Anthropic's Messages API, answering from a :class:`Script`.

    ``script`` is a Script, a path to a YAML file, or a dict of the same shape.
    Use as a context manager (``with ScriptedModel(s) as model: model.base_url``)
    or call :meth:`start` / :meth:`stop`. ``port=0`` picks a free port.
    """

    def __init__(
        self,
        script: Script | str | os.PathLike[str] | Mapping[str, Any],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        record: str | os.PathLike[str] | None = None,
        on_request: Callable[[RecordedRequest], None] | None = None,
    ) -> None:
        if isinstance(script, Script):
            self.script = script
        elif isinstance(script, Mapping):
            self.script = Script.from_dict(script)
        else:
            self.script = Script.load(Path(script))
        self.playbook = Playbook(self.script)
        self._host = host
        self._port = port
        self._record_path = record
        self._on_request = on_request
        self._recorder: Recorder | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()

    # --- lifecycle ------------------------------------------------------

    def start(self) -> ScriptedModel:
        if self._server is not None:
            return self
        server = _Server((self._host, self._port), self)  # binds: may raise OSError
        try:
            self._recorder = Recorder(self._record_path)  # may raise OSError too
        except OSError:
            server.server_close()
            raise
        if self._on_request is not None:
            self._recorder.listeners.append(self._on_request)
        self._server = server
        self.stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="scripted-model",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests waiting out a ``delay`` are cut short."""
        if self._server is None:
            return
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._recorder is not None:
            self._recorder.close()
        self._server = None
        self._thread = None

    def __enter__(self) -> ScriptedModel:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the scripted model is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """What ANTHROPIC_BASE_URL should be set to."""
        return f"http://{self._host}:{self.port}"

    def cli_env(self) -> dict[str, str]:
        """Environment variables that point a claude CLI here and keep it offline."""
        return cli_env(self.base_url)

    # --- what was received ----------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order (a copy)."""
        return self.recorder().all()

    def requests_matching(
        self,
        text: str | None = None,
        *,
        tool_result: str | None = None,
        agent: str | None = None,
        tool: str | None = None,
        side: bool = False,
    ) -> list[RecordedRequest]:
        """Messages requests whose latest user text / tool results / system prompt / tools
        match these regexes (searched). Side requests only when ``side`` is true."""
        check = matcher(text, tool_result=tool_result, agent=agent, tool=tool, side=side)
        return [r for r in self.requests if check(r)]

    def wait_for_request(
        self,
        text: str | None = None,
        *,
        tool_result: str | None = None,
        agent: str | None = None,
        tool: str | None = None,
        side: bool = False,
        timeout: float = 30.0,
    ) -> RecordedRequest:
        """Block until a matching messages request has arrived (TimeoutError after ``timeout``)."""
        check = matcher(text, tool_result=tool_result, agent=agent, tool=tool, side=side)
        return self.recorder().wait_for(check, timeout)

    def recorder(self) -> Recorder:
        if self._recorder is None:
            raise RuntimeError("the scripted model was never started")
        return self._recorder


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler stuck on a hung-up client never blocks stop()

    def __init__(self, address: tuple[str, int], model: ScriptedModel) -> None:
        super().__init__(address, _Handler)
        self.model = model


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "scripted-model"
    sys_version = ""

    server: _Server

    @property
    def model(self) -> ScriptedModel:
        return self.server.model

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: every request is in the recording instead."""

    def do_POST(self) -> None:
        self._serve("POST")

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        try:
            self._dispatch(method)
        except _GONE:  # the client hung up (an interrupt, a timeout): nothing to answer
            self.close_connection = True

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        raw = self._read_body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record: dict[str, Any] = {
            "method": method,
            "path": url.path,
            "query": url.query,
            "headers": clean_headers(dict(self.headers.items())),
            "body": body,
            "side": False,
            "answered_by": "-",
        }
        known = method == "POST" and url.path in (MESSAGES_PATH, COUNT_TOKENS_PATH)
        wanted_key = self.model.script.api_key
        if wanted_key is not None and self._key() != wanted_key:
            # As the real service: a wrong key is refused on every endpoint.
            self._record(record, 401)
            self._send_json(401, wire.error_body("authentication_error", "invalid x-api-key"))
        elif method == "GET" and url.path == MODELS_PATH:
            self._record(record, 200)
            self._send_json(200, wire.models_list())
        elif not known:
            self._record(record, 404)
            self._send_json(
                404, wire.error_body("not_found_error", f"Not found: {method} {url.path}")
            )
        elif not isinstance(body, Mapping):
            self._record(record, 400)
            self._send_json(
                400, wire.error_body("invalid_request_error", "the body must be a JSON object")
            )
        elif url.path == COUNT_TOKENS_PATH:
            self._record(record, 200)
            self._send_json(200, {"input_tokens": wire.estimate_tokens(body)})
        else:
            self._messages(body, record)

    def _messages(self, body: Mapping[str, Any], record: dict[str, Any]) -> None:
        choice = self.model.playbook.choose(body)
        answer = choice.answer
        schema = reading.output_schema(body)
        if choice.by == "side" and schema is not None:
            answer = Answer(text=wire.structured_text(schema, self.model.script.side_reply))
        record.update(side=reading.is_side_request(body), answered_by=choice.by)
        error = answer.error
        self._record(record, error.status if error else 200)
        model_name = reading.model_name(body) or "scripted-model"
        input_tokens = answer.usage.input_tokens
        if input_tokens is None:
            input_tokens = wire.estimate_tokens(body.get("messages", []))
        output_tokens = answer.usage.output_tokens
        cache = (answer.usage.cache_read_input_tokens, answer.usage.cache_creation_input_tokens)
        extras = answer.usage.api_extras()
        if error is not None or not body.get("stream"):
            if self._wait(answer.delay):
                return
            if error is not None:
                self._send_json(error.status, wire.error_body(error.type, error.message))
            else:
                blocks = wire.blocks_for(answer)
                self._send_json(
                    200,
                    wire.message(
                        model_name, blocks, input_tokens, output_tokens, cache, extras=extras
                    ),
                )
            return
        self._begin_stream()
        for event, data in wire.stream_head(model_name, input_tokens, cache, extras):
            self.wfile.write(wire.sse(event, data))
        self.wfile.flush()
        # Time to first token: the stream is open and idle for `delay` seconds.
        if self._wait(answer.delay):
            return
        for event, data in wire.stream_body(wire.blocks_for(answer), output_tokens):
            self.wfile.write(wire.sse(event, data))
            self.wfile.flush()

    # --- plumbing --------------------------------------------------------

    def _wait(self, seconds: float) -> bool:
        """Sleep, unless the server stops first (then True: give up on this request)."""
        if seconds > 0 and self.model.stopping.wait(seconds):
            self.close_connection = True
            return True
        return False

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            raw = b"".join(chunks)
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        return raw

    def _key(self) -> str:
        bearer = self.headers.get("Authorization", "")
        return self.headers.get("x-api-key") or bearer.removeprefix("Bearer ").strip()

    def _record(self, record: dict[str, Any], status: int) -> None:
        self.model.recorder().add(status=status, **record)

    def _send_json(self, status: int, payload: Mapping[str, Any]) -> None:
        data = wire.json_text(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", wire.new_id("req"))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _begin_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("request-id", wire.new_id("req"))
        # No length and no chunking: the stream ends when we close the connection.
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
