"""Scripts: an ordered list of rules, a default answer, and how a request picks one.

The format (YAML or a dict of the same shape) is documented in
:mod:`orchestrator.scripted_model`. A :class:`Script` is immutable; how many
times each rule was used lives in :class:`Playbook`, one per running server.
"""

from __future__ import annotations

import difflib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import ScriptError
from orchestrator.scripted import reading
from orchestrator.scripted.named_errors import named_error

DEFAULT_TEXT = "(scripted model: no rule matched this turn)"
DEFAULT_SIDE_REPLY = "Scripted session"

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_TOP_KEYS = ("rules", "default", "side_reply", "api_key")
_ANSWER_KEYS = ("text", "tool_use", "error", "delay", "usage")
_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
# Beyond the token counts: how much of the cache write is kept for 1 hour (the API's
# ``cache_creation`` split) and where the request was served (``inference_geo``); the CLI
# prices both (1-hour writes at their own rate, US inference at 1.1 times).
_USAGE_EXTRA_KEYS = ("cache_creation_1h_input_tokens", "inference_geo")
_RULE_KEYS = ("name", "agent", "model", "match", "tool_result", "side", "times", *_ANSWER_KEYS)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ApiError:
    status: int
    type: str
    message: str


@dataclass(frozen=True)
class Usage:
    """Token figures to report instead of the estimate (the CLI prices a turn from them)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int = 0  # a request's context = input + cache read + cache write
    cache_creation_input_tokens: int = 0
    cache_creation_1h_input_tokens: int | None = None  # of the cache write; None: no split
    inference_geo: str | None = None

    def api_extras(self) -> dict[str, Any]:
        """The usage fields besides the counts, as the API reports them (none unless scripted)."""
        out: dict[str, Any] = {}
        if self.cache_creation_1h_input_tokens is not None:
            hour = self.cache_creation_1h_input_tokens
            out["cache_creation"] = {
                "ephemeral_5m_input_tokens": self.cache_creation_input_tokens - hour,
                "ephemeral_1h_input_tokens": hour,
            }
        if self.inference_geo is not None:
            out["inference_geo"] = self.inference_geo
        return out


@dataclass(frozen=True)
class Answer:
    """What to send back: text and/or tool calls, or an API error; after ``delay`` seconds."""

    text: str | None = None
    tool_use: tuple[ToolCall, ...] = ()
    error: ApiError | None = None
    delay: float = 0.0
    usage: Usage = field(default_factory=Usage)

    def filled(self, groups: Mapping[str, str]) -> Answer:
        """This answer with ``{1}`` / ``{name}`` placeholders replaced by the match's groups."""
        if not groups:
            return self
        text = None if self.text is None else _fill(self.text, groups)
        calls = tuple(ToolCall(c.name, _fill_value(c.input, groups)) for c in self.tool_use)
        return Answer(text, calls, self.error, self.delay, self.usage)


@dataclass(frozen=True)
class Rule:
    label: str
    answer: Answer
    agent: re.Pattern[str] | None = None
    model: re.Pattern[str] | None = None
    match: re.Pattern[str] | None = None
    tool_result: re.Pattern[str] | None = None
    side: bool = False
    times: int | None = None

    def groups_for(self, body: Mapping[str, Any]) -> dict[str, str] | None:
        """The match's groups if every condition holds for this request, else None."""
        if self.side != reading.is_side_request(body):
            return None
        if self.agent and not self.agent.search(reading.system_text(body)):
            return None
        if self.model and not self.model.search(reading.model_name(body)):
            return None
        message = reading.last_user_message(body)
        found: list[re.Match[str]] = []
        if self.match:
            hit = self.match.search(reading.user_text(message))
            if hit is None:
                return None
            found.append(hit)
        if self.tool_result:
            contents = (r["content"] for r in reading.tool_results(message))
            hit = next((h for c in contents if (h := self.tool_result.search(c))), None)
            if hit is None:
                return None
            found.append(hit)
        return _groups(found)


@dataclass(frozen=True)
class Choice:
    """The answer picked for one request, and why (``by``: a rule label, "default" or "side")."""

    by: str
    answer: Answer


@dataclass(frozen=True)
class Script:
    rules: tuple[Rule, ...] = ()
    default: Answer = field(default_factory=lambda: Answer(text=DEFAULT_TEXT))
    side_reply: str = DEFAULT_SIDE_REPLY
    source: str = "<dict>"
    api_key: str | None = None  # when set, any other key gets 401 on every endpoint

    @classmethod
    def load(cls, path: str | Path) -> Script:
        """Read a YAML script file."""
        source = str(path)
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ScriptError(
                source, None, None, f"cannot read the script: {exc.strerror}"
            ) from exc
        except UnicodeDecodeError as exc:  # a binary file given by mistake: not a traceback
            raise ScriptError(
                source, None, None, f"not UTF-8 text (byte {exc.start}); a script is YAML"
            ) from exc
        except yaml.YAMLError as exc:
            raise ScriptError(source, None, None, f"not valid YAML: {exc}") from exc
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<dict>") -> Script:
        """Build a script from a mapping of the YAML shape; every mistake is a ScriptError."""
        if not isinstance(data, Mapping):
            raise ScriptError(source, None, None, "a script is a mapping with a 'rules' list")
        _check_keys(data, _TOP_KEYS, source, None)
        raw_rules = data.get("rules", [])
        if not isinstance(raw_rules, list):
            raise ScriptError(source, None, "rules", "must be a list of rules")
        rules = tuple(_rule(raw, i, source) for i, raw in enumerate(raw_rules))
        default = Answer(text=DEFAULT_TEXT)
        if "default" in data:
            if not isinstance(data["default"], Mapping):
                raise ScriptError(
                    source, "default", None, "must be a mapping (text/tool_use/error)"
                )
            _check_keys(data["default"], _ANSWER_KEYS, source, "default")
            default = _answer(data["default"], source, "default")
        side_reply = data.get("side_reply", DEFAULT_SIDE_REPLY)
        if not isinstance(side_reply, str):
            raise ScriptError(source, None, "side_reply", "must be a string")
        api_key = data.get("api_key")
        if api_key is not None and not isinstance(api_key, str):
            raise ScriptError(source, None, "api_key", "must be a string")
        return cls(rules, default, side_reply, source, api_key)


class Playbook:
    """A script in play: picks answers and counts rule uses (``times``). Thread-safe."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self._used = [0] * len(script.rules)
        self._lock = threading.Lock()

    def choose(self, body: Mapping[str, Any]) -> Choice:
        with self._lock:
            for i, rule in enumerate(self.script.rules):
                if rule.times is not None and self._used[i] >= rule.times:
                    continue
                groups = rule.groups_for(body)
                if groups is None:
                    continue
                self._used[i] += 1
                return Choice(rule.label, rule.answer.filled(groups))
        if reading.is_side_request(body):
            # Side requests never consume the script; see reading.is_side_request.
            return Choice("side", Answer(text=self.script.side_reply))
        return Choice("default", self.script.default)

    def uses(self) -> dict[str, int]:
        """How many times each rule answered, by label."""
        with self._lock:
            return {r.label: n for r, n in zip(self.script.rules, self._used, strict=True)}


# --- building ---------------------------------------------------------------


def _check_keys(
    data: Mapping[str, Any], allowed: tuple[str, ...], source: str, rule: str | None
) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; allowed: {', '.join(allowed)}"
            raise ScriptError(source, rule, str(key), "unknown key" + hint)


def _rule(raw: Any, index: int, source: str) -> Rule:
    label = f"rules[{index}]"
    if not isinstance(raw, Mapping):
        raise ScriptError(source, label, None, "a rule is a mapping")
    if "name" in raw:
        label = str(raw["name"])
    _check_keys(raw, _RULE_KEYS, source, label)
    times = raw.get("times")
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        raise ScriptError(source, label, "times", "must be a whole number >= 1")
    side = raw.get("side", False)
    if not isinstance(side, bool):
        raise ScriptError(source, label, "side", "must be true or false")
    patterns = {
        k: _pattern(raw.get(k), source, label, k)
        for k in ("agent", "model", "match", "tool_result")
    }
    return Rule(label=label, answer=_answer(raw, source, label), side=side, times=times, **patterns)


def _pattern(value: Any, source: str, rule: str, key: str) -> re.Pattern[str] | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ScriptError(source, rule, key, "must be a regular expression (a string)")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ScriptError(source, rule, key, f"bad regular expression: {exc}") from exc


def _answer(raw: Mapping[str, Any], source: str, rule: str) -> Answer:
    text = raw.get("text")
    if text is not None and not isinstance(text, str):
        raise ScriptError(source, rule, "text", "must be a string")
    calls = _tool_calls(raw.get("tool_use"), source, rule)
    raw_error = raw.get("error")
    if isinstance(raw_error, str):  # a named error, like prompt_too_long
        raw_error = named_error(raw_error, source, rule)
    error = _error(raw_error, source, rule)
    if error is not None and (text is not None or calls):
        raise ScriptError(
            source, rule, "error", "an error answer cannot also have text or tool_use"
        )
    if error is None and text is None and not calls:
        raise ScriptError(source, rule, None, "needs an answer: text, tool_use or error")
    delay = raw.get("delay", 0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise ScriptError(source, rule, "delay", "must be a number of seconds >= 0")
    return Answer(text, calls, error, float(delay), _usage(raw.get("usage"), source, rule))


def _usage(raw: Any, source: str, rule: str) -> Usage:
    if raw is None:
        return Usage()
    if not isinstance(raw, Mapping):
        raise ScriptError(source, rule, "usage", "must be a mapping of token counts")
    _check_keys(raw, (*_USAGE_KEYS, *_USAGE_EXTRA_KEYS), source, rule)
    for key in (*_USAGE_KEYS, "cache_creation_1h_input_tokens"):
        value = raw.get(key)
        bad = not isinstance(value, int) or isinstance(value, bool) or value < 0
        if value is not None and bad:
            raise ScriptError(source, rule, "usage", f"'{key}' must be a whole number >= 0")
    written = raw.get("cache_creation_input_tokens") or 0
    hour = raw.get("cache_creation_1h_input_tokens")
    if hour is not None and hour > written:
        raise ScriptError(
            source,
            rule,
            "usage",
            "'cache_creation_1h_input_tokens' is part of 'cache_creation_input_tokens'"
            f" and cannot exceed it ({hour} > {written})",
        )
    geo = raw.get("inference_geo")
    if geo is not None and not isinstance(geo, str):
        raise ScriptError(source, rule, "usage", "'inference_geo' must be a string like us")
    return Usage(
        raw.get("input_tokens"),
        raw.get("output_tokens"),
        raw.get("cache_read_input_tokens") or 0,
        written,
        hour,
        geo,
    )


def _tool_calls(raw: Any, source: str, rule: str) -> tuple[ToolCall, ...]:
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(items, list) or not items:
        raise ScriptError(source, rule, "tool_use", "must be a tool call or a list of them")
    calls = []
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise ScriptError(source, rule, "tool_use", "each tool call needs a 'name'")
        _check_keys(item, ("name", "input"), source, rule)
        arguments = item.get("input", {})
        if not isinstance(arguments, Mapping):
            raise ScriptError(source, rule, "tool_use", "a tool call's 'input' must be a mapping")
        calls.append(ToolCall(item["name"], dict(arguments)))
    return tuple(calls)


def _error(raw: Any, source: str, rule: str) -> ApiError | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ScriptError(source, rule, "error", "must be a mapping with 'status'")
    _check_keys(raw, ("status", "type", "message"), source, rule)
    status = raw.get("status")
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise ScriptError(source, rule, "error", "'status' must be an HTTP error status (400-599)")
    kind = str(raw.get("type") or _ERROR_TYPES.get(status, "api_error"))
    return ApiError(status, kind, str(raw.get("message") or f"scripted {kind}"))


# --- groups -----------------------------------------------------------------


def _groups(found: list[re.Match[str]]) -> dict[str, str]:
    """{0} is the first pattern's whole match; positional groups number on across patterns."""
    groups: dict[str, str] = {}
    position = 1
    for hit in found:
        groups.setdefault("0", hit.group(0))
        for value in hit.groups():
            groups[str(position)] = value or ""
            position += 1
        groups.update({k: v or "" for k, v in hit.groupdict().items()})
    return groups


def _fill(text: str, groups: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: groups.get(m.group(1), m.group(0)), text)


def _fill_value(value: Any, groups: Mapping[str, str]) -> Any:
    """A copy of ``value`` with every string filled. A loop, not recursion: a script may
    give a tool input nested hundreds deep (to test what a model can send), and any
    depth that JSON loaded must not end the server's handler in RecursionError."""
    root: list[Any] = [None]
    todo: list[tuple[Any, Any, Any]] = [(value, root, 0)]  # (source, its new parent, key)
    while todo:
        source, parent, key = todo.pop()
        if isinstance(source, str):
            parent[key] = _fill(source, groups)
        elif isinstance(source, Mapping):
            parent[key] = mapping = dict.fromkeys(source)  # keys in their order
            todo.extend((v, mapping, k) for k, v in source.items())
        elif isinstance(source, list):
            parent[key] = items = [None] * len(source)
            todo.extend((v, items, i) for i, v in enumerate(source))
        else:
            parent[key] = source
    return root[0]
