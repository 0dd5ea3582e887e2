"""What a person may read: secrets masked, terminal control sequences made visible.

One rule for which variable names are secret (the roster's ``config`` output and
the logs share it), one :class:`Redactor` for values, and :func:`for_people`, the
helper every human-facing output goes through (``ps``, ``queue ls``, ``inbox``,
``send``, ``ask``, ``logs``, the console of ``up``, ``trace``, error messages).
``--json`` output is for programs and stays exact.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***"
MAX_LOG_DEPTH = 64
"""Containers nested deeper than this are logged as :data:`TOO_DEEP` (the renderer
recurses too, and nothing a person reads needs more; a roster is at most 32 deep)."""
TOO_DEEP = "<nested too deep to log>"

# A variable whose name contains one of these words holds a secret: ANTHROPIC_API_KEY,
# GH_TOKEN, DB_PASSWORD, OAUTH_CLIENT_SECRET, AWS_CREDENTIALS, PGPASSWD... KEY and AUTH
# count as whole words only (STRIPE_KEY, HTTP_AUTH): as parts of words they name keyboards,
# keyrings and GIT_AUTHOR_NAME, whose values would otherwise vanish from every screen.
_SECRET_NAME = re.compile(
    r"(?i)(token|secret|passw(or)?d|passphrase|credential|api[_-]?key"
    r"|(^|[^a-z0-9])(key|auth)([^a-z0-9]|$))"
)
# Event keys that match the words above but name counts or ids, never secrets.
_NOT_SECRET_KEYS = ("_id", "_ids", "tokens")

_SECRET_VALUE = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-]{8,}"  # Anthropic keys
    r"|sk-[A-Za-z0-9_\-]{20,}"  # other sk- style keys
    r"|gh[pousr]_[A-Za-z0-9]{20,}"  # GitHub tokens
    r"|xox[baprs]-[A-Za-z0-9\-]{10,}"  # Slack tokens
    r"|AKIA[0-9A-Z]{16}"  # AWS access key ids
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{12,}=*)"  # HTTP bearer tokens
)
# The password of a URL: postgres://user:PASSWORD@host/db keeps everything but it. Every
# part is bounded: unbounded, a 1 MiB body of letters took quadratic time (each start
# position scanned to the end), and the supervisor redacts every body it logs.
_URL_PASSWORD = re.compile(
    r"(?<![a-zA-Z0-9+.\-])([a-zA-Z][a-zA-Z0-9+.\-]{0,31}://[^\s:/@]{0,256}:)([^\s@/]{1,256})(@)"
)


def is_secret_name(name: str) -> bool:
    """True for names like ANTHROPIC_API_KEY, GH_TOKEN, DB_PASSWORD, HTTP_AUTH."""
    return bool(_SECRET_NAME.search(name))


class Redactor:
    """Replaces known secret values and secret-looking strings (keys, tokens, URL passwords)."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._known: re.Pattern[str] | None = None  # one alternation: a single pass per string
        self._lock = threading.Lock()

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            # Shorter values would mask ordinary words ("yes", "true") everywhere.
            self._values |= {v for v in values if len(v) >= 6}
            longest_first = sorted(self._values, key=len, reverse=True)
            self._known = (
                re.compile("|".join(map(re.escape, longest_first))) if longest_first else None
            )

    def add_from_env(self, env: Mapping[str, str]) -> None:
        """Remember the values of variables whose names look secret."""
        self.add(v for k, v in env.items() if is_secret_name(k) and isinstance(v, str))

    def text(self, value: str) -> str:
        known = self._known
        if known is not None:
            value = known.sub(REDACTED, value)
        value = _URL_PASSWORD.sub(rf"\g<1>{REDACTED}\g<3>", value)
        return _SECRET_VALUE.sub(REDACTED, value)

    def value(self, key: str, value: Any, depth: int = 0) -> Any:
        """A JSON-like value under ``key``: strings under a secret-looking key are masked
        whole, other strings redacted inside, containers walked down to
        :data:`MAX_LOG_DEPTH` levels; what lies deeper is logged as :data:`TOO_DEEP`.
        (A model's tool input nested 600 deep raised RecursionError here, inside the
        session's ``log.info("tool_used")``: the session crashed and, the attempt not
        counted, crashed again on every redelivery.)"""
        if isinstance(value, str):
            if is_secret_name(key) and not key.endswith(_NOT_SECRET_KEYS):
                return REDACTED
            return self.text(value)
        if isinstance(value, dict | list | tuple) and depth >= MAX_LOG_DEPTH:
            return TOO_DEEP
        if isinstance(value, dict):
            return {k: self.value(str(k), v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(key, v, depth + 1) for v in value]
        return value

    def __call__(self, _logger: Any, _name: str, event: Mapping[str, Any]) -> dict[str, Any]:
        """As a structlog processor."""
        return {k: self.value(k, v) for k, v in event.items()}


REDACTOR = Redactor()


# C0 controls but newline and tab, DEL, C1 controls (\x9b is a one-byte CSI on some
# terminals), the Unicode line separators and bidi overrides that reorder what a person
# sees, and the invisible characters that make one name look like another
# ("coordinator\u200b" showed as a second "coordinator"): zero-width space, the
# direction marks, word joiner, BOM. Zero-width (non-)joiners are kept in bodies, where
# emoji sequences and Persian script need them; one-line text (names, ids) escapes them.
_INVISIBLE = "\u200b\u200e\u200f\u061c\u2060\ufeff"
_BIDI = "\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}{_INVISIBLE}]")
_CONTROL_AND_LINES = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}{_INVISIBLE}\u200c\u200d]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, *, multiline: bool = False) -> str:
    """``text`` with every terminal control made visible (ESC ] 0 ; x BEL prints as
    ``\\x1b]0;x\\x07``), so no text can retitle, clear or rewrite a person's terminal.
    ``multiline`` keeps newlines and tabs (a message body shown as a block)."""
    pattern = _CONTROL if multiline else _CONTROL_AND_LINES
    return pattern.sub(_visible, text)


def for_people(text: str, *, multiline: bool = False) -> str:
    """The one filter for text a person reads: secrets redacted, controls escaped."""
    return escape_controls(REDACTOR.text(text), multiline=multiline)
