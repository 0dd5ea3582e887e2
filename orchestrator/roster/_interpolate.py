"""``${VAR}`` interpolation in string values, compose-style.

``${VAR}`` is the variable (an error when it is unset), ``${VAR:-default}``
uses the default when VAR is unset or empty, ``${VAR-default}`` only when it
is unset, defaults may themselves hold ``${...}``, and ``$$`` is a literal
``$``. A ``$`` followed by anything else is kept as written, so prompts can
say "costs $5". Keys are never interpolated, only values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.roster._limits import MAX_INTERPOLATION_DEPTH
from orchestrator.roster._yaml import YList, YMap, join

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

OnError = Callable[[str, int, str], None]
"""Called with (dotted key, line, reason) for each problem."""


class Interpolated(str):
    """A value produced by substitution: numeric fields may parse it as a number."""

    __slots__ = ()


def interpolate(
    text: str, environ: Mapping[str, str], depth: int = 0
) -> tuple[str, bool, list[str]]:
    """Return (result, substituted, problems) for one string value.

    ``depth`` counts the defaults this text is nested in: the expansion recurses
    once per level, so it is bounded (issue 16, A.3: a 2,000-deep chain raised
    RecursionError)."""
    out: list[str] = []
    problems: list[str] = []
    substituted = False
    i = 0
    while i < len(text):
        dollar = text.find("$", i)
        if dollar < 0:
            out.append(text[i:])
            break
        out.append(text[i:dollar])
        nxt = text[dollar + 1 : dollar + 2]
        if nxt == "$":
            out.append("$")
            i = dollar + 2
        elif nxt == "{":
            end = _closing_brace(text, dollar + 2)
            if end < 0:
                problems.append(
                    f"unclosed '${{' in {_excerpt(text[dollar:])}; write ${{NAME}} or "
                    "${NAME:-default}, or $$ for a literal $"
                )
                out.append(text[dollar:])
                break
            out.append(_expand(text[dollar + 2 : end], environ, problems, depth))
            substituted = True
            i = end + 1
        else:
            out.append("$")
            i = dollar + 1
    return "".join(out), substituted, problems


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for index in range(start, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
    return -1


def _excerpt(text: str, width: int = 60) -> str:
    """A piece of the value for an error message (a value can be 256 KiB long)."""
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def _expand(inner: str, environ: Mapping[str, str], problems: list[str], depth: int) -> str:
    match = _NAME.match(inner)
    if match is None:
        problems.append(
            f"invalid variable reference {_excerpt('${' + inner + '}')}: a name is letters, "
            "digits and '_' (not starting with a digit); write $$ for a literal $"
        )
        return ""
    name, rest = match.group(), inner[match.end() :]
    value = environ.get(name)
    if rest == "":
        if value is None:
            problems.append(
                f"variable ${{{name}}} is not set and has no default; set {name} in the "
                f"environment or write ${{{name}:-default}}"
            )
            return ""
        return value
    for operator, use_default in ((":-", not value), ("-", value is None)):
        if rest.startswith(operator):
            if not use_default:
                return value or ""
            if depth >= MAX_INTERPOLATION_DEPTH:
                problems.append(
                    f"${{...}} defaults nested more than {MAX_INTERPOLATION_DEPTH} levels deep "
                    f"(in ${{{name}{operator}...}}); flatten the default"
                )
                return ""
            default, _, nested = interpolate(rest[len(operator) :], environ, depth + 1)
            problems.extend(nested)
            return default
    problems.append(
        f"unsupported form {_excerpt('${' + inner + '}')}: use ${{{name}}} or ${{{name}:-default}}"
    )
    return ""


def interpolate_tree(node: Any, environ: Mapping[str, str], on_error: OnError) -> None:
    """Interpolate every string value in a YMap/YList tree, in place.

    A mapping or list reached twice (a YAML alias, ``<<: *anchor``) is the same
    object: it is interpolated once, or ``$${X}`` would become ``${X}`` and then X.
    """
    _walk(node, environ, on_error, "", set())


def _walk(
    node: Any, environ: Mapping[str, str], on_error: OnError, path: str, seen: set[int]
) -> None:
    if not isinstance(node, YMap | YList) or id(node) in seen:
        return
    seen.add(id(node))
    keys: list[Any] = list(node) if isinstance(node, YMap) else list(range(len(node)))
    for key in keys:
        child_path = join(path, str(key)) if isinstance(node, YMap) else f"{path}[{key}]"
        value = node[key]
        if isinstance(value, str):
            node[key] = _interpolate_value(value, environ, on_error, child_path, node.line_of(key))
        else:
            _walk(value, environ, on_error, child_path, seen)


def _interpolate_value(
    value: str, environ: Mapping[str, str], on_error: OnError, path: str, line: int
) -> str:
    if "$" not in value:
        return value
    result, substituted, problems = interpolate(value, environ)
    for reason in problems:
        on_error(path, line, reason)
    return Interpolated(result) if substituted else result
