"""Path globs for ``owns:`` and the path part of ``approve:`` rules. Pure functions.

The syntax, as the README gives it: ``*`` matches within one path segment,
``**`` matches across segments (any depth, ``/`` included; ``**/`` also
matches no folder at all), ``?`` one character of a segment, and a pattern
ending in ``/`` means everything under that folder (``src/`` is ``src/**``).
Patterns are compared against absolute, resolved paths
(:func:`absolute_pattern` anchors a relative pattern at the agent's folder).

:func:`overlap` decides whether two patterns can match one same path: the roster
refuses two agents sharing a folder whose ``owns`` overlap, so it must be exact,
not a sample of paths (a product of the two patterns, memoised).
"""

from __future__ import annotations

import functools
import os
import re

_ANY_DEPTH = "**"
_SEGMENT = "*"
_ONE = "?"
_TOKEN = re.compile(r"\*\*|\*|\?|[^*?]")


def normalise(pattern: str) -> str:
    """``src/`` -> ``src/**``; repeated slashes and ``./`` collapsed. ``..`` is kept as
    written and refused by the roster (a glob should not climb out of its folder)."""
    folder = pattern.endswith("/")
    parts = [p for p in pattern.split("/") if p not in ("", ".")]
    body = "/".join(parts)
    if pattern.startswith("/"):
        body = "/" + body
    return f"{body}/**" if folder else body


def absolute_pattern(pattern: str, folder: str) -> str:
    """A pattern anchored at ``folder`` (already resolved) unless it is absolute."""
    pattern = normalise(pattern)
    if pattern.startswith("/"):
        return pattern
    return f"{folder.rstrip('/')}/{pattern}"


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    tokens = _TOKEN.findall(pattern)
    for i, token in enumerate(tokens):
        if token == "/" and i > 0 and tokens[i - 1] == _ANY_DEPTH and out[-1] == "(?:.*/)?":
            continue
        if token == _ANY_DEPTH and i + 1 < len(tokens) and tokens[i + 1] == "/":
            out.append("(?:.*/)?")  # `**/` is zero or more folders, as in .gitignore
        elif token == _ANY_DEPTH:
            out.append(".*")
        elif token == _SEGMENT:
            out.append("[^/]*")
        elif token == _ONE:
            out.append("[^/]")
        else:
            out.append(re.escape(token))
    return re.compile("".join(out), re.DOTALL)


def matches(pattern: str, path: str) -> bool:
    """Whether ``path`` (absolute, resolved) matches ``pattern`` (absolute)."""
    return _regex(pattern).fullmatch(path) is not None


def resolve(path: str, folder: str) -> str:
    """``path`` as the file tools would reach it: relative to ``folder``, ``..`` and
    every symlink followed (also for a file that does not exist yet: its folder's)."""
    joined = path if os.path.isabs(path) else os.path.join(folder, path)
    return os.path.realpath(joined)


def overlap(a: str, b: str) -> bool:
    """True if some path matches both patterns."""
    return any(_overlap(x, y) for x in _zero_folder_forms(a) for y in _zero_folder_forms(b))


def _zero_folder_forms(pattern: str) -> list[str]:
    """The pattern, plus each form with some ``**/`` matching no folder at all."""
    head, sep, tail = pattern.partition("**/")
    if not sep:
        return [pattern]
    return [f"{head}{sep}{rest}" for rest in _zero_folder_forms(tail)] + [
        f"{head}{rest}" for rest in _zero_folder_forms(tail)
    ]


def _overlap(a: str, b: str) -> bool:
    ta, tb = tuple(_TOKEN.findall(a)), tuple(_TOKEN.findall(b))

    @functools.cache
    def both(i: int, j: int) -> bool:
        if i == len(ta) and j == len(tb):
            return True
        x = ta[i] if i < len(ta) else None
        y = tb[j] if j < len(tb) else None
        if x in (_SEGMENT, _ANY_DEPTH):
            # the star matches nothing more, or eats one character of the other side
            if both(i + 1, j):
                return True
            return y is not None and _star_eats(x, y) and both(i, j + 1)
        if y in (_SEGMENT, _ANY_DEPTH):
            if both(i, j + 1):
                return True
            return x is not None and _star_eats(y, x) and both(i + 1, j)
        if x is None or y is None:
            return False
        return _chars_meet(x, y) and both(i + 1, j + 1)

    return both(0, 0)


def _star_eats(star: str, token: str) -> bool:
    """Whether ``star`` can consume one character that ``token`` stands for."""
    if token in (_SEGMENT, _ANY_DEPTH):
        return True  # the other star can produce a character this one accepts
    if token == _ONE:
        return True  # '?' is some character other than '/', which any star accepts
    return star == _ANY_DEPTH or token != "/"


def _chars_meet(x: str, y: str) -> bool:
    if x == _ONE and y == _ONE:
        return True
    if x == _ONE:
        return y != "/"
    if y == _ONE:
        return x != "/"
    return x == y
