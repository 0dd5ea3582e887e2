"""The approval hook splits a shell line as shlex does, in linear time (a 200 KB word took
about 2 s with shlex, 1 MB 33 s), and a line too long to read asks."""

from __future__ import annotations

import random
import shlex
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from orchestrator import bash_commands, shell_words
from orchestrator.approve_rules import bash_reason, rule_matches


def _shlex(line: str) -> list[str] | str:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=shell_words.PUNCTUATION)
    lexer.whitespace = " \t\r"
    lexer.commenters = ""
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:
        return "error"


def _split(line: str) -> list[str] | str:
    try:
        return shell_words.split(line)
    except ValueError:
        return "error"


def test_the_words_are_shlexs() -> None:
    """Generated lines of the characters that matter, and a few written ones."""
    rnd = random.Random(20261129)
    alphabet = "ab $'\"\\();<>|&\n\t\r#`{}=-\x0b" + bash_commands.UNKNOWN
    lines = ["".join(rnd.choice(alphabet) for _ in range(rnd.randrange(15))) for _ in range(30000)]
    lines += [
        'git commit -m "a \\"b\\" \\$c \\\\ d" && git push 2>&1 | tee x',
        "echo 'it''s' \"\"'' a\\ b >>f;ls",
        "",
        "  \t ",
        "a\\",
        "'open",
        '"open \\',
    ]
    for line in lines:
        assert _split(line) == _shlex(line), repr(line)


def _steps(call: Any, *args: Any) -> int:
    """Python lines run by ``call`` (a count of work done, not of time)."""
    count = 0

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return trace

    sys.settrace(trace)
    try:
        call(*args)
    finally:
        sys.settrace(None)
    return count


def test_a_long_word_is_read_in_few_steps() -> None:
    """shlex adds a word's characters one by one: a step per character."""
    word = "a" * 100_000
    quoted = "echo '" + "a b " * 12_500 + "' \"" + "c d " * 12_500 + '"'
    assert len(quoted) < bash_commands.MAX_LINE  # read, not refused for its length
    assert _steps(bash_commands.commands, f"echo {word}") < 2_000
    assert _steps(bash_commands.commands, quoted) < 2_000
    assert bash_commands.commands(quoted) == ["echo " + "a b " * 12_500 + " " + "c d " * 12_500]


def test_a_line_too_long_to_read_asks(tmp_path: Path) -> None:
    line = "cat > data.txt <<'EOF'\n" + "x" * bash_commands.MAX_LINE + "\nEOF"
    assert bash_reason("git push:*", line) == (
        f"the line cannot be read with confidence ({len(line)} characters, over the "
        f"{bash_commands.MAX_LINE} read)"
    )
    assert rule_matches("Bash(npm publish:*)", "Bash", {"command": line}, tmp_path)
    fits = "cat > data.txt <<'EOF'\n" + "x" * (bash_commands.MAX_LINE - 30) + "\nEOF"
    assert bash_reason("git push:*", fits) is None
