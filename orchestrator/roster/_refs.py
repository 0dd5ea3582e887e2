"""Checks across agents: names that ``depends_on`` and ``can_message`` refer to,
and ``depends_on`` cycles (named in full, ``a -> b -> a``)."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.roster._coerce import INVALID, Report, Where, did_you_mean, name_list


@dataclass(frozen=True)
class NameRefs:
    """Agent names given in a list, with where each was written (for errors)."""

    key: str
    names: tuple[str, ...]
    lines: tuple[int | None, ...]

    def unique(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.names))


def name_refs(value: Any, where: Where) -> Any:
    names = name_list(value, where)
    if names is INVALID:
        return INVALID
    line_of = getattr(value, "line_of", None)
    lines = tuple(line_of(i) if line_of else where.line for i in range(len(names)))
    return NameRefs(where.key, names, lines)


def names_or_everyone(value: Any, where: Where) -> Any:
    """``can_message``: null (or absent) means everyone; a list limits it."""
    return None if value is None else name_refs(value, where)


def check_names(
    refs: NameRefs | None,
    known: Sequence[str],
    report: Report,
    *,
    field: str,
    extra: Sequence[str] = (),
) -> None:
    """Report each name in ``refs`` that is not an agent of the team (or one of ``extra``)."""
    if refs is None:
        return
    valid = [*known, *extra]
    for name, line in zip(refs.names, refs.lines, strict=True):
        if name in valid:
            continue
        if field == "depends_on":
            reason = f"depends on unknown agent '{name}'; agents in this roster: {', '.join(known)}"
        else:
            reason = (
                f"unknown name '{name}' in can_message; use names of agents in this team "
                f"({', '.join(known)}) or 'user'"
            )
        report(line, refs.key, reason + did_you_mean(name, valid))


def report_cycles(deps: Mapping[str, NameRefs], order: Sequence[str], report: Report) -> None:
    """Report one cycle per strongly connected group of ``depends_on`` edges."""
    graph = {a: [d for d in deps[a].unique() if d in deps] if a in deps else [] for a in order}
    for group in _strongly_connected(graph, order):
        start = min(group, key=order.index)
        if len(group) == 1 and start not in graph[start]:
            continue
        path = _shortest_cycle(graph, start, group)
        refs = deps[start]
        line = refs.lines[refs.names.index(path[1])]
        report(
            line,
            refs.key,
            f"dependency cycle: {' -> '.join(path)}; remove one of these depends_on entries",
        )


def _strongly_connected(graph: Mapping[str, list[str]], order: Sequence[str]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (a long dependency chain must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in order:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child_i = work.pop()
            if child_i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            children = graph[node]
            if child_i < len(children):
                work.append((node, child_i + 1))
                child = children[child_i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                group: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                groups.append(group)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return groups


def _shortest_cycle(graph: Mapping[str, list[str]], start: str, group: set[str]) -> list[str]:
    """start -> ... -> start through ``group``, breadth first so the named cycle is short."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in graph[node]:
            if nxt not in group:
                continue
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    return [start, start]
