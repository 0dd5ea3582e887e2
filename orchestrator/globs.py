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


_FOLDERS = "**/"  # zero or more whole folders: `(?:.*/)?`


@functools.lru_cache(maxsize=1024)
def _program(pattern: str) -> tuple[str, ...]:
    """The pattern's tokens, with ``**/`` as one token (zero or more folders)."""
    out: list[str] = []
    for token in _TOKEN.findall(pattern):
        if token == "/" and out and out[-1] == _ANY_DEPTH:
            out[-1] = _FOLDERS
        else:
            out.append(token)
    return tuple(out)


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str] | None:
    """The pattern as a regex when it has at most one star, else None. With one star a
    full match tries each length of it once: linear in the text, and in C (a path in
    ~1 us). With two or more, backtracking grows as a power of the text's length."""
    program = _program(pattern)
    if sum(t in (_ANY_DEPTH, _SEGMENT, _FOLDERS) for t in program) > 1:
        return None
    parts = {_ANY_DEPTH: ".*", _SEGMENT: "[^/]*", _FOLDERS: "(?:.*/)?", _ONE: "[^/]"}
    return re.compile("".join(parts.get(t) or re.escape(t) for t in program), re.DOTALL)


def matches(pattern: str, path: str) -> bool:
    """Whether ``path`` (absolute, resolved) matches ``pattern`` (absolute).

    Two stars or more: a simulation of the pattern's automaton, one step per character,
    so time linear in the text whatever the pattern (~1 us a character). A backtracking
    regex took 11 s for `*a*a*a*a*a*ab` against 100 characters the model chose, and the
    policy hook runs on the supervisor's event loop: one tool call froze every agent.
    States are token positions; ``-i - 1`` is "inside the `**/` at i" (it has eaten
    characters and must end on a '/')."""
    regex = _regex(pattern)
    if regex is not None:
        return regex.fullmatch(path) is not None
    program = _program(pattern)
    end = len(program)
    states = _closure(program, {0})
    for ch in path:
        after: set[int] = set()
        for state in states:
            if state < 0:  # inside `**/`: any character, and a '/' may end it
                after.add(state)
                if ch == "/":
                    after.add(-state)  # -i - 1 -> i + 1
                continue
            if state == end:
                continue
            token = program[state]
            if token == _ANY_DEPTH:
                after.add(state)
            elif token == _SEGMENT:
                if ch != "/":
                    after.add(state)
            elif token == _FOLDERS:
                after.add(-state - 1)
                if ch == "/":
                    after.add(state + 1)
            elif token == _ONE:
                if ch != "/":
                    after.add(state + 1)
            elif token == ch:
                after.add(state + 1)
        if not after:
            return False
        states = _closure(program, after)
    return end in states


def _closure(program: tuple[str, ...], states: set[int]) -> set[int]:
    """``states`` plus what each star reaches by matching nothing more."""
    out = set(states)
    todo = [s for s in states if s >= 0]
    while todo:
        state = todo.pop()
        star = state < len(program) and program[state] in (_ANY_DEPTH, _SEGMENT, _FOLDERS)
        if star and state + 1 not in out:
            out.add(state + 1)
            todo.append(state + 1)
    return out


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
