"""YAML text -> plain Python values that remember their line numbers.

PyYAML forgets where a value came from and silently keeps the last of two
equal keys. Errors must name a line, and an agent given twice must be caught,
so mappings and lists are built as :class:`YMap` / :class:`YList` carrying the
1-based line of each key and item, and a duplicate key is recorded (at any
depth) instead of overwriting in silence.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orchestrator.roster._limits import MAX_DEPTH

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Duplicate:
    key: str
    line: int
    first_line: int


class YMap(dict[Any, Any]):
    """A mapping from the file: ``line`` of the mapping, ``key_lines`` per key."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}
        self.key_text: dict[Any, str] = {}  # as written, for keys YAML read as non-text (`on:`)
        # Every key YAML read as non-text, as (value, as written, line), taken before they
        # meet in the dict: `1:` and `true:` are one key there (1 == True in Python).
        self.non_text_keys: list[tuple[Any, str, int]] = []
        self.duplicates: list[Duplicate] = []

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class YList(list[Any]):
    """A list from the file: ``line`` of the list, ``item_lines`` per item."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences keep their line numbers, and whose
    nesting is bounded: PyYAML composes and constructs by recursion, so a file
    nested a few hundred levels deep raised RecursionError (issue 16, A.3)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[str] = []  # keys down to the node being composed

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        # PyYAML calls compose_node(mapping, key_node) for a value, (mapping, None) for
        # a key and (sequence, i) for an item: enough to name where the nesting is.
        step = None
        if isinstance(index, ScalarNode):
            step = str(index.value)
        elif isinstance(index, int):
            step = f"[{index}]"
        if step is not None:
            self._path.append(step)
        try:
            if len(self._path) > MAX_DEPTH:
                line = int(self.peek_event().start_mark.line) + 1  # type: ignore[no-untyped-call]
                raise YamlSyntaxError(
                    line,
                    f"nested more than {MAX_DEPTH} levels deep; a roster needs about 5 "
                    "(agents.NAME.env.KEY)",
                    key=_dotted(self._path),
                )
            return super().compose_node(parent, index)
        finally:
            if step is not None:
                self._path.pop()

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        # PyYAML lets a value that only looks like a date or a number (2001-13-45, an
        # integer of 5,000 digits) escape as a bare ValueError: a traceback in `config`
        # and the end of a reload. It becomes a syntax error at the value's line.
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            tag = str(node.tag).rsplit(":", 1)[-1]
            kind = {"int": "number", "float": "number", "timestamp": "date"}.get(tag, tag)
            text = str(node.value)[:40] if isinstance(node, ScalarNode) else tag
            reason = str(exc).split(";")[0]
            raise ConstructorError(
                None,
                None,
                f"'{text}' reads as a {kind} but is not a valid one ({reason}); "
                "put quotes around it to keep it as text",
                node.start_mark,
            ) from None


def _dotted(steps: list[str]) -> str:
    out = ""
    for step in steps:
        out = out + step if step.startswith("[") else join(out, step)
    return out


def _construct_map(loader: _LineLoader, node: MappingNode) -> Iterator[YMap]:
    data = YMap(_line(node))
    yield data
    # Duplicates are looked for among the keys written here, before merge keys
    # (``<<: *anchor``) are flattened in: overriding a merged key is legitimate.
    first_seen: dict[Any, int] = {}
    for key_node, _value in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        if not _hashable(key):
            raise ConstructorError(
                "while building a mapping",
                node.start_mark,
                "found a key that is a list or mapping; keys must be plain names",
                key_node.start_mark,
            )
        if not isinstance(key, str) and isinstance(key_node, ScalarNode):
            data.non_text_keys.append((key, str(key_node.value), _line(key_node)))
        typed = (type(key), key)  # 1 and true are equal in Python, not in the file
        if typed in first_seen:
            data.duplicates.append(Duplicate(str(key), _line(key_node), first_seen[typed]))
        else:
            first_seen[typed] = _line(key_node)
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        # Like PyYAML, the last occurrence wins (explicit keys come after
        # merged ones), and its line is the one errors about the value name.
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = _line(key_node)
        if not isinstance(key, str) and isinstance(key_node, ScalarNode):
            data.key_text[key] = str(key_node.value)


def _construct_seq(loader: _LineLoader, node: SequenceNode) -> Iterator[YList]:
    data = YList(_line(node))
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=True))
        data.item_lines.append(_line(item))


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


class YamlSyntaxError(Exception):
    """The text is not YAML. ``line`` is 1-based (None when unknown)."""

    def __init__(self, line: int | None, reason: str, key: str = "") -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason
        self.key = key


def load_tree(text: str) -> Any:
    """Parse one YAML document into YMap/YList/scalars; raise YamlSyntaxError."""
    loader = _LineLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc) from exc
    except yaml.YAMLError as exc:  # unmarked: e.g. a stream-level reader error
        raise YamlSyntaxError(None, f"invalid YAML: {exc}") from exc
    finally:
        loader.dispose()


def _syntax_error(exc: yaml.MarkedYAMLError) -> YamlSyntaxError:
    mark = exc.problem_mark or exc.context_mark
    reason = "invalid YAML"
    if mark is not None:
        reason += f" at column {mark.column + 1}"
    reason += f": {exc.problem or exc.context or 'unreadable'}"
    if exc.context and exc.problem:
        started = exc.context_mark
        reason += f" ({exc.context}" + (
            f", which starts on line {started.line + 1})" if started is not None else ")"
        )
    if "'\\t'" in (exc.problem or ""):
        reason += "; indent with spaces, YAML does not allow tabs"
    elif isinstance(exc, yaml.scanner.ScannerError | yaml.parser.ParserError):
        reason += (
            "; check the indentation, and quote values that contain YAML punctuation"
            " (': ', '{', '[', ' #') or start with '*', '&', '!', '%', '@' or '`'"
        )
    return YamlSyntaxError(None if mark is None else int(mark.line) + 1, reason)


def walk_duplicates(value: Any, path: str = "") -> Iterator[tuple[str, Duplicate]]:
    """Every duplicate key anywhere in the tree, with the dotted path of its mapping.

    Each mapping is visited once, however many aliases point at it.
    """
    seen: set[int] = set()
    pending: deque[tuple[str, Any]] = deque([(path, value)])
    while pending:
        where, node = pending.popleft()
        if not isinstance(node, YMap | YList) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, YMap):
            yield from ((where, dup) for dup in node.duplicates)
            pending.extend((join(where, str(k)), child) for k, child in node.items())
        else:
            pending.extend((f"{where}[{i}]", child) for i, child in enumerate(node))


def walk_strings(value: Any, path: str = "") -> Iterator[tuple[str, int | None, str]]:
    """Every string in the tree, keys included, as (dotted path, line, text); each mapping
    and list once, however many aliases point at it."""
    seen: set[int] = set()
    pending: deque[tuple[str, int | None, Any]] = deque([(path, None, value)])
    while pending:
        where, line, node = pending.popleft()
        if isinstance(node, str):
            yield where, line, node
        elif isinstance(node, YMap | YList) and id(node) not in seen:
            seen.add(id(node))
            if isinstance(node, YMap):
                for key, child in node.items():
                    inner = join(where, str(key))
                    if isinstance(key, str):
                        yield inner, node.line_of(key), key
                    pending.append((inner, node.line_of(key), child))
            else:
                pending.extend(
                    (f"{where}[{i}]", node.line_of(i), child) for i, child in enumerate(node)
                )


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


__all__ = [
    "Duplicate",
    "YList",
    "YMap",
    "YamlSyntaxError",
    "join",
    "load_tree",
    "walk_duplicates",
    "walk_strings",
]
