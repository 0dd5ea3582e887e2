"""What the shell builds in a line, for :mod:`orchestrator.bash_commands`: each expansion
marked :data:`orchestrator.shell_words.UNKNOWN` (:func:`mark`), and the here-documents that
are only data made plain words (:func:`data_as_words`).
"""

from __future__ import annotations

import re
from typing import Final

from orchestrator import shell_words

UNKNOWN: Final = shell_words.UNKNOWN
# A `;` written as a word (`\\;`, `';'`, `";"`) is no operator: tmux chains its commands with
# it (`tmux new \\; run CMD`), find ends `-exec` with it. :func:`mark` gives it as this word.
SEMICOLON: Final = ";\ue005"
_WORD_END = frozenset(" \t\n;&|<>()")

_BRACES = re.compile(r"\{[^\s{}]*(,|\.\.)")  # {a,b} and {1..3} (a space ends a brace word)
# [p]ush, not the subscript of a[0]=x; no `[` inside, so `[[[[…` is read in linear time
_CLASS = re.compile(r"\[[^\s\[\]]+\](?!\+?=)")
# A quoted here-document that cat or tee only copies (no pipe on its line) is data:
# `cat > f <<'EOF'`, the `git commit -m "$(cat <<'EOF' …)"` of a commit message. Its
# lines are still read as plain words (a script written there may be run later in the
# line), with no character the shell would treat as special: a `$HOME`, `[x]` or
# apostrophe in a commit message makes no command unsure. (Bounded gaps keep a hostile
# line of `(cat (cat …` linear.)
_DATA_HEREDOC = re.compile(
    r"(?:^|[;&|(\n]|\$\()[ \t]*(?:cat|tee)\b[^\n|;&]{0,200}?"
    r"<<-?[ \t]*(?:'(\w+)'|\"(\w+)\"|\\(\w+))[^\n|]{0,200}\n"
)
_PLAIN = str.maketrans(dict.fromkeys("$`*?[]{}@+!'\"\\", " "))


def data_as_words(line: str, *, blank: bool = False) -> str:
    """``line`` with the bodies of here-documents that are data made plain words (or,
    ``blank``, left out)."""
    out: list[str] = []
    pos = 0
    while (start := _DATA_HEREDOC.search(line, pos)) is not None:
        end_word = re.escape(next(g for g in start.groups() if g))
        end = re.compile(rf"^\t*{end_word}$", re.M).search(line, start.end())
        if end is None:  # never ended: the shell reads it to the end of the line as data
            break
        body = "" if blank else line[start.end() : end.start()].translate(_PLAIN)
        out += [line[pos : start.end()], body]
        pos = end.start()
    return "".join([*out, line[pos:]])


# What mark looks at; it copies every other character (in linear time, a run at once).
_MARK_STOP = re.compile(r"[\\\"'`$*?{\[@+!;]")


def mark(line: str) -> str:
    """``line`` with :data:`UNKNOWN` before each expansion outside single quotes."""
    out: list[str] = []
    quote = ""
    backtick = False  # inside `…`: only the opening one starts a built word
    unclosed = False  # a `${` found no `}` to the end: none after it is scanned again
    split_to = 0  # the end of a `${…}` or `$(…)` split as before
    i = 0
    while i < len(line):
        if quote == "'":  # to the closing quote, as it is
            end = line.find("'", i)
            end = len(line) - 1 if end < 0 else end
            out.append(line[i : end + 1])
            quote, i = "", end + 1
            continue
        stop = _MARK_STOP.search(line, i)  # the characters between are copied as they are
        if stop is None:
            out.append(line[i:])
            break
        out.append(line[i : stop.start()])
        i = stop.start()
        c, after = line[i], line[i + 1 : i + 2]
        if c == "\\":  # an escaped character is literal
            out.append(line[i : i + 2])
            if after == ";" and not quote and _alone(line, i, 2):
                out.append(SEMICOLON[1])
            i += 2
            continue
        if c in "'\"" and not quote and line[i + 1 : i + 3] == ";" + c and _alone(line, i, 3):
            out.append(line[i : i + 3] + SEMICOLON[1])
            i += 3
            continue
        if c == ";" and not quote and after == ";":
            # `;;` (a `case` item's end: elsewhere a syntax error of bash's) is the shell's,
            # two `;`: no word ending in `;` that chains tmux's commands (`';;'` is one)
            out.append("; ;")
            i += 2
            continue
        region = after in ("{", "(") and line[i + 2 : i + 3] != "(" and i >= split_to
        if c == "$" and region and not unclosed:
            # `${…}`, `$(…)`: one word, as bash reads it (`${u:-;}` gives tmux its `;`;
            # `tmux new -d x $(true) \\; run CMD` runs CMD): the reader's split keeps it
            # as written, the commands of a `$(…)` read from it (bash_commands). One
            # holding a `…` or a `case` (whose `)` would end it here) is split as before.
            end = _closing(line, i + 2, dquoted=quote == '"')
            unclosed = end < 0
            if end > 0 and "`" not in line[i:end] and not _CASE.search(line, i, end):
                out += [UNKNOWN, _verbatim(line[i : end + 1], dquoted=quote == '"')]
                i = end + 1
                continue
            split_to = end  # those inside it, split too (in linear time)
        if c == '"':
            quote = "" if quote else '"'
        elif c == "'" and not quote:
            quote = "'"
        elif c == "`":
            backtick = not backtick
            out.append(UNKNOWN if backtick else "")
        elif (c == "$" and (after.isalnum() or (after and after in "{('\"@*#?$!-_"))) or (
            quote == "" and _expands(line, i)
        ):
            out.append(UNKNOWN)
        out.append(c)
        i += 1
    return "".join(out)


_IN_BRACES = re.compile(r"[^\\'\"`{}()]+")  # what _closing steps over at once
_SPECIAL = re.compile(r"[^\w\ue000]")
_CASE = re.compile(r"\b(case|esac)\b")
_IN_DQUOTES = re.compile(r'(["\\])')


def _closing(line: str, i: int, *, dquoted: bool) -> int:
    """Where the ``}`` (or ``)``) closing the ``${`` (``$(``) before ``i`` is (-1: none):
    nested ones counted, quoted and escaped characters skipped, as bash reads it (a
    ``case`` item's ``)`` inside ``$(…)`` ends it early here: read as before, split)."""
    close = "}" if line[i - 1] == "{" else ")"
    opening = "{" if close == "}" else "("
    depth, inner = 1, ""  # inner: the double quote open inside
    while i < len(line):
        if (plain := _IN_BRACES.match(line, i)) is not None:
            i = plain.end()
            continue
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            inner = "" if inner else '"'
        elif c in "'`" and not inner and (c == "`" or close == ")" or not dquoted):
            end = line.find(c, i + 1)
            if end < 0:
                return -1
            i = end
        elif not inner and c in (opening, close):
            depth += 1 if c == opening else -1
            if depth == 0:
                return i
        i += 1
    return -1


def _verbatim(inside: str, *, dquoted: bool) -> str:
    """``inside`` escaped so that the reader's split keeps it as it is, in one word."""
    return _IN_DQUOTES.sub(r"\\\1", inside) if dquoted else _SPECIAL.sub(r"\\\g<0>", inside)


def _alone(line: str, i: int, length: int) -> bool:
    """Whether ``line[i : i + length]`` is a word of its own (spaces or operators around)."""
    before = line[i - 1 : i] or " "
    return before in _WORD_END and (line[i + length : i + length + 1] or " ") in _WORD_END


def _expands(line: str, i: int) -> bool:
    """Whether unquoted ``line[i]`` starts a brace expansion or a file-name pattern: a
    file named ``push`` makes ``git pus?``, ``git [p]ush`` or ``git @(push)`` run a push."""
    c = line[i]
    if c == "{":
        return _BRACES.match(line, i) is not None
    if c == "[":
        return _CLASS.match(line, i) is not None
    return c in "*?" or (c in "@+!" and line[i + 1 : i + 2] == "(")
