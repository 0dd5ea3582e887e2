"""A shell line split into words and operators as :mod:`shlex` splits it, in linear time.

:mod:`orchestrator.bash_commands` reads a line with ``shlex.shlex(line, posix=True,
punctuation_chars="();<>|&\\n")``, whitespace ``" \\t\\r"``, no comments,
``whitespace_split=True``. That reader adds a word's characters one at a time to an
attribute (``self.token += c``), which CPython cannot extend in place: a 200 KB word took
about 2 s in the approval hook, a 1 MB one 33 s. :func:`split` gives the very same tokens
(tests/team/test_shell_words.py compares the two on many generated lines), taking each run
of ordinary characters, and each quoted part, in one step.
"""

from __future__ import annotations

import re
from typing import Final

PUNCTUATION: Final = "();<>|&\n"
UNKNOWN: Final = "\ue000"  # marks a word the shell builds when it runs (a private-use char)
_WHITESPACE: Final = " \t\r"
_ENDS: Final = _WHITESPACE + PUNCTUATION
_PLAIN = re.compile(r"[^ \t\r();<>|&\n'\"\\]+")
_OPERATOR = re.compile(r"[();<>|&\n]+")
_BLANKS = re.compile(r"[ \t\r]*")
_IN_DOUBLE = re.compile(r'[^"\\]*')


def split(line: str) -> list[str]:
    """The tokens of ``line``; ValueError for an open quote or a trailing escape."""
    tokens: list[str] = []
    i, n = 0, len(line)
    while True:
        i = _BLANKS.match(line, i).end()  # type: ignore[union-attr]  # always matches
        if i >= n:
            return tokens
        if line[i] in PUNCTUATION:  # a run of operator characters is one token: `&&`, `;\n`
            end = _OPERATOR.match(line, i).end()  # type: ignore[union-attr]
            tokens.append(line[i:end])
            i = end
            continue
        parts: list[str] = []
        while i < n and line[i] not in _ENDS:
            c = line[i]
            if c == "'":
                end = line.find("'", i + 1)
                if end < 0:
                    raise ValueError("No closing quotation")
                parts.append(line[i + 1 : end])
                i = end + 1
            elif c == '"':
                i = _double_quoted(line, i + 1, parts)
            elif c == "\\":
                if i + 1 >= n:
                    raise ValueError("No escaped character")
                parts.append(line[i + 1])
                i += 2
            else:
                end = _PLAIN.match(line, i).end()  # type: ignore[union-attr]
                parts.append(line[i:end])
                i = end
        tokens.append("".join(parts))


def _double_quoted(line: str, i: int, parts: list[str]) -> int:
    """Reads ``"…"`` from after its opening quote into ``parts``; where it ends. As shlex:
    a backslash is kept unless it escapes ``"`` or a backslash."""
    while True:
        end = _IN_DOUBLE.match(line, i).end()  # type: ignore[union-attr]
        parts.append(line[i:end])
        if end >= len(line):
            raise ValueError("No closing quotation")
        if line[end] == '"':
            return end + 1
        if end + 1 >= len(line):
            raise ValueError("No escaped character")
        escaped = line[end + 1]
        parts.append(escaped if escaped in '"\\' else "\\" + escaped)
        i = end + 2
