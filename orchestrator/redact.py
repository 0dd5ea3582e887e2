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

from orchestrator.secret_rules import (
    NOT_SECRET_ENDS,
    REDACTED,
    is_secret_name,
    looks_secret,
    mask_shapes,
    secret_values,
)

__all__ = [  # REDACTED and is_secret_name: callers import them from here
    "MAX_LOG_DEPTH",
    "REDACTED",
    "REDACTOR",
    "TOO_DEEP",
    "Redactor",
    "escape_controls",
    "for_people",
    "is_secret_name",
]

MAX_LOG_DEPTH = 64
"""Containers nested deeper than this are logged as :data:`TOO_DEEP` (the renderer
recurses too, and nothing a person reads needs more; a roster is at most 32 deep)."""
TOO_DEEP = "<nested too deep to log>"

_NOT_SECRET_EXACT = frozenset({"keys"})  # a list of queue keys (the NATS lease sweep)


class Redactor:
    """Replaces known secret values and secret-shaped text (:func:`mask_shapes`)."""

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
        """Remember the values of variables that look secret: the rule that blanks them
        for agents' commands (:func:`looks_secret`), so what is withheld is masked too."""
        self.add(
            part
            for k, v in env.items()
            if isinstance(v, str) and looks_secret(k, v)
            for part in secret_values(k, v)
        )

    def text(self, value: str) -> str:
        known = self._known
        if known is not None:
            value = known.sub(REDACTED, value)
        return mask_shapes(value)

    def value(self, key: str, value: Any, depth: int = 0) -> Any:
        """A JSON-like value under ``key``: strings under a secret-looking key are masked
        whole, other strings redacted inside, containers walked down to
        :data:`MAX_LOG_DEPTH` levels; what lies deeper is logged as :data:`TOO_DEEP`.
        (A model's tool input nested 600 deep raised RecursionError here, inside the
        session's ``log.info("tool_used")``: the session crashed and, the attempt not
        counted, crashed again on every redelivery.)"""
        if isinstance(value, str):
            if (
                is_secret_name(key)
                and not key.endswith(NOT_SECRET_ENDS)
                and key not in _NOT_SECRET_EXACT
            ):
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
# A byte of a file name that is not UTF-8 (a folder named `w6\xffteam`) reaches text as a
# lone surrogate (Python's surrogateescape): shown as the byte, `\xff`, as the CLI's own
# argument check shows it, not as `\udcff`.
_UNDECODED = "\udc80-\udcff"
_CONTROL = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}{_INVISIBLE}{_UNDECODED}]")
_CONTROL_AND_LINES = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}{_INVISIBLE}\u200c\u200d{_UNDECODED}]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # the undecodable byte it stands for
        code -= 0xDC00
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, *, multiline: bool = False) -> str:
    """``text`` with every terminal control made visible (ESC ] 0 ; x BEL prints as
    ``\\x1b]0;x\\x07``), so no text can retitle, clear or rewrite a person's terminal.
    ``multiline`` keeps newlines and tabs (a message body shown as a block)."""
    pattern = _CONTROL if multiline else _CONTROL_AND_LINES
    return pattern.sub(_visible, text)


_UNDECODED_ONLY = re.compile(f"[{_UNDECODED}]")


def undecoded_shown(text: str) -> str:
    """``text`` with each byte of a file name that was not UTF-8 (a lone surrogate) shown
    as ``\\xff``, as :func:`escape_controls` shows it, and nothing else changed (a prompt
    keeps its lines): for text a serializer escapes on its own, JSON and YAML wrote
    ``\\udcff``, and a strict JSON reader refuses a lone surrogate."""
    return _UNDECODED_ONLY.sub(_visible, text)


def for_people(text: str, *, multiline: bool = False) -> str:
    """The one filter for text a person reads: secrets redacted, controls escaped."""
    return escape_controls(REDACTOR.text(text), multiline=multiline)
