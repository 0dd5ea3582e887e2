"""What the scripted model received: one record per HTTP request, and helpers to read them.

Records are plain dicts (they also go to a JSON-lines file), typed here as
:class:`RecordedRequest`. Secrets in headers are redacted before recording.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from orchestrator.scripted import reading, wire

MESSAGES_PATH = "/v1/messages"
REDACTED = "<redacted>"
_SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie"})


class RecordedRequest(TypedDict):
    seq: int  # 1, 2, ... in arrival order
    time: float  # seconds since the epoch
    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # names lower-cased, secrets redacted
    body: Any  # the parsed JSON body, or None
    side: bool  # a side request (no tools offered): never consumed the script
    answered_by: str  # a rule label, "default", "side", or "-" (not a messages request)
    status: int  # the HTTP status answered


def clean_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names lower-cased (HTTP ignores case), secret values redacted."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return {k: (REDACTED if k in _SECRET_HEADERS else v) for k, v in lowered.items()}


def _body(req: RecordedRequest) -> Mapping[str, Any]:
    body = req["body"]
    return body if isinstance(body, Mapping) else {}


def last_user_text(req: RecordedRequest) -> str:
    """The latest user-role message's own text (the CLI's system reminders left out)."""
    return reading.user_text(reading.last_user_message(_body(req)))


def tool_results(req: RecordedRequest) -> list[dict[str, Any]]:
    """Tool results in the latest user-role message: ``tool_use_id``, ``content``, ``is_error``."""
    return reading.tool_results(reading.last_user_message(_body(req)))


def tools_offered(req: RecordedRequest) -> list[str]:
    """Names of the tools the request offered the model."""
    return reading.tools_offered(_body(req))


def system_prompt(req: RecordedRequest) -> str:
    return reading.system_text(_body(req))


def conversation(req: RecordedRequest) -> list[tuple[str, str]]:
    """The request's history as (role, own text) pairs; tool results shown as their content."""
    messages = _body(req).get("messages")
    pairs = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, Mapping):
            continue
        text = reading.user_text(message)
        results = "\n".join(r["content"] for r in reading.tool_results(message))
        pairs.append((str(message.get("role")), "\n".join(p for p in (text, results) if p)))
    return pairs


class Recorder:
    """Keeps every request in memory (and appends it to a 0600 JSON-lines file if asked)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._records: list[RecordedRequest] = []
        self._changed = threading.Condition()
        self._file = None
        if path is not None:
            # Never through a symlink: a planted one would append every prompt elsewhere.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            self._file = os.fdopen(fd, "a", encoding="utf-8")
        self.listeners: list[Callable[[RecordedRequest], None]] = []

    def add(
        self,
        *,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: Any,
        side: bool,
        answered_by: str,
        status: int,
    ) -> RecordedRequest:
        with self._changed:
            record = RecordedRequest(
                seq=len(self._records) + 1,
                time=time.time(),
                method=method,
                path=path,
                query=query,
                headers=headers,
                body=body,
                side=side,
                answered_by=answered_by,
                status=status,
            )
            self._records.append(record)
            if self._file is not None:
                self._file.write(wire.json_text(record) + "\n")
                self._file.flush()
            self._changed.notify_all()
        for listener in self.listeners:
            listener(record)
        return record

    def all(self) -> list[RecordedRequest]:
        with self._changed:
            return list(self._records)

    def wait_for(
        self, predicate: Callable[[RecordedRequest], bool], timeout: float
    ) -> RecordedRequest:
        """The first record satisfying ``predicate``, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                hit = next((r for r in self._records if predicate(r)), None)
                if hit is not None:
                    return hit
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching request within {timeout:g}s")
                self._changed.wait(left)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def matcher(
    text: str | None = None,
    *,
    tool_result: str | None = None,
    agent: str | None = None,
    tool: str | None = None,
    side: bool = False,
) -> Callable[[RecordedRequest], bool]:
    """A predicate over messages requests, with the rule language's conditions (regexes, searched).

    ``text`` on the latest user text, ``tool_result`` on its tool results,
    ``agent`` on the system prompt, ``tool`` on the names of the tools offered.
    Side requests are left out unless ``side`` is true.
    """
    patterns = [re.compile(p) if p is not None else None for p in (text, tool_result, agent, tool)]
    text_re, result_re, agent_re, tool_re = patterns

    def check(req: RecordedRequest) -> bool:
        if req["path"] != MESSAGES_PATH or req["side"] != side:
            return False
        if text_re and not text_re.search(last_user_text(req)):
            return False
        if result_re and not any(result_re.search(r["content"]) for r in tool_results(req)):
            return False
        if agent_re and not agent_re.search(system_prompt(req)):
            return False
        return not tool_re or any(tool_re.search(name) for name in tools_offered(req))

    return check
