"""orchestrator/globs.py's matcher: the same answers as the regex it replaced, in time
linear in the text (the regex backtracked: `*a*a*a*a*a*ab` against 100 characters the
model chose took 11 s on the supervisor's event loop, 200 did not finish in 60 s)."""

from __future__ import annotations

import random
import re

import pytest

from orchestrator import globs

_TOKEN = re.compile(r"\*\*|\*|\?|[^*?]")


def reference(pattern: str, path: str) -> bool:
    """The regex translation globs.matches used before (kept here as the oracle)."""
    out: list[str] = []
    tokens = _TOKEN.findall(pattern)
    for i, token in enumerate(tokens):
        if token == "/" and i > 0 and tokens[i - 1] == "**" and out[-1] == "(?:.*/)?":
            continue
        if token == "**" and i + 1 < len(tokens) and tokens[i + 1] == "/":
            out.append("(?:.*/)?")
        elif token == "**":
            out.append(".*")
        elif token == "*":
            out.append("[^/]*")
        elif token == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(token))
    return re.compile("".join(out), re.DOTALL).fullmatch(path) is not None


@pytest.mark.parametrize("seed", range(8))
def test_the_same_answers_as_the_regex_on_random_patterns_and_paths(seed: int) -> None:
    rng = random.Random(seed)
    pieces = ["a", "b", "/", "*", "**", "?", "**/", ".", "\n"]
    letters = "ab/.\n"
    for _ in range(3000):
        pattern = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 7)))
        path = "".join(rng.choice(letters) for _ in range(rng.randint(0, 9)))
        assert globs.matches(pattern, path) == reference(pattern, path), (pattern, path)


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/r/src/**", "/r/src/a/b.py", True),
        ("/r/src/**", "/r/srcx", False),
        ("/r/**/*.py", "/r/x.py", True),
        ("/r/**/*.py", "/r/a/b/x.py", True),
        ("/r/**/*.py", "/r/a/b/x.pyc", False),
        ("/r/*.md", "/r/a/x.md", False),
        ("/r/a?c", "/r/a/c", False),
        ("/r/a/**/**", "/r/a/x", True),
    ],
)
def test_the_readmes_examples(pattern: str, path: str, expected: bool) -> None:
    assert globs.matches(pattern, path) is expected
    assert reference(pattern, path) is expected


def test_a_pattern_that_backtracked_for_ever_answers() -> None:
    """Not a timing assertion: with the regex these calls did not return within pytest's
    timeout (three minutes); an automaton answers them after one pass over the text."""
    assert globs.matches("*a*a*a*a*a*ab", "a" * 400) is False
    assert globs.matches("**a**a**a**a**a**a**b", "a" * 5000) is False
    assert globs.matches("**a**a**a**a**a**a**b", "a" * 5000 + "b") is True
