"""Turn one YAML value into one typed setting, or report why it cannot be.

Each coercer takes the raw value and a :class:`Where` (dotted key, line, the
error sink) and returns the typed value or :data:`INVALID` after reporting.
Messages say what was expected, what was given, and how to write it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from orchestrator.durations import finite_seconds
from orchestrator.errors import InvalidSeconds
from orchestrator.roster._interpolate import Interpolated
from orchestrator.roster._limits import MAX_DURATION_S, MAX_SIZE_BYTES, MAX_WHOLE_NUMBER
from orchestrator.roster._yaml import join
from orchestrator.roster.model import Backoff, Env


class _Invalid:
    """A setting that failed validation (already reported)."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid()

Report = Callable[[int | None, str, str], None]
"""Called with (line, dotted key, reason)."""


@dataclass(frozen=True)
class Where:
    key: str
    line: int | None
    report: Report
    base: Path = Path()  # the roster's folder: relative paths resolve against it

    def error(self, reason: str, line: int | None = None) -> _Invalid:
        self.report(self.line if line is None else line, self.key, reason)
        return INVALID


Coercer = Callable[[Any, Where], Any]


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """``"; did you mean 'model'?"`` for a close option, else ``""``."""
    import difflib  # noqa: PLC0415 - only for a misspelt key (the CLI reads rosters often)

    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def describe(value: Any) -> str:
    """How a value reads to a user: ``a string ('abc')``, ``a list``, ``null``."""
    if value is None:
        return "null (an empty value)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value:g})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        written = _exponent(value)  # 2.5e0, 1e400: numbers, though YAML 1.1 reads text
        if written is not None:
            return f"a number ({written:g})" if math.isfinite(written) else "a number too large"
        return f"a string ({shown!r})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__} ({value})"


def wrong_type(expected: str, value: Any, where: Where, hint: str = "") -> _Invalid:
    return where.error(f"expected {expected}, got {describe(value)}{hint}")


def _empty_substitution(value: Any) -> bool:
    """``model: ${MODEL:-}`` with MODEL unset means "not set", like leaving the key out."""
    return isinstance(value, Interpolated) and value == ""


def text(value: Any, where: Where) -> Any:
    if isinstance(value, str):
        return str(value)
    scalar = value is None or isinstance(value, bool | int | float)
    hint = "; put quotes around it if it is meant as text" if scalar else ""
    return wrong_type("a string", value, where, hint)


def optional_text(value: Any, where: Where) -> Any:
    if value is None or _empty_substitution(value):
        return None
    return text(value, where)


def boolean(value: Any, where: Where) -> Any:
    """true/false (YAML's), or the text of one from a ``${VAR}``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, Interpolated) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return wrong_type("true or false", value, where)


def name_list(value: Any, where: Where) -> Any:
    """A list of non-empty strings, as a tuple."""
    if value is None:
        return ()
    if not isinstance(value, list):
        hint = f"; write [{value}]" if isinstance(value, str) else ""
        return wrong_type("a list of names", value, where, hint)
    items: list[str] = []
    ok = True
    for index, item in enumerate(value):
        line = value.line_of(index) if hasattr(value, "line_of") else None
        if not isinstance(item, str) or not item.strip():
            where.error(
                f"item {index + 1}: expected a non-empty string, got {describe(item)}", line
            )
            ok = False
        else:
            items.append(str(item))
    return tuple(items) if ok else INVALID


def choice(options: tuple[str, ...], what: str, plural: str, *, optional: bool = False) -> Coercer:
    def coerce(value: Any, where: Where) -> Any:
        if optional and (value is None or _empty_substitution(value)):
            return None
        if not isinstance(value, str):
            return wrong_type(f"one of {', '.join(options)}", value, where)
        if value not in options:
            return where.error(
                f"unknown {what} '{value}'; valid {plural}: {', '.join(options)}"
                + did_you_mean(value, options)
            )
        return str(value)

    return coerce


def integer(
    minimum: int, *, optional: bool = False, maximum: int = MAX_WHOLE_NUMBER, why: str = ""
) -> Coercer:
    """A whole number from ``minimum`` to ``maximum`` (``why`` says why that is the most)."""

    def coerce(value: Any, where: Where) -> Any:
        if optional and (value is None or _empty_substitution(value)):
            return None
        number = value
        if isinstance(value, Interpolated) and re.fullmatch(r"[+-]?\d+", value.strip()):
            number = int(value)
        elif (exponent := _exponent(value)) is not None and exponent.is_integer():
            number = int(exponent)  # tokens: 2e6
        if isinstance(number, bool) or not isinstance(number, int):
            return wrong_type(f"a whole number (at least {minimum})", value, where)
        if number < minimum:
            return where.error(f"must be at least {minimum}, got {number}")
        if number > maximum:
            return where.error(f"must be at most {maximum:,}{why}, got {_short(number)}")
        return number

    return coerce


# YAML 1.1, which PyYAML reads, makes a float of 1.0e9 but text of 1e9 (YAML 1.2 and
# JSON: a number): a number field takes the text too, rather than say "got a string".
_EXPONENT = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)[eE][-+]?\d+")


def _exponent(value: Any) -> float | None:
    """``value`` when it is text like 1e9 or 2.5E-3: the number it writes, else None."""
    if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
        return float(value)
    return None


def finite_number(value: Any) -> float | int | None:
    """``value`` as a finite number (a ``${VAR}`` read as one), else None: text, a
    boolean, NaN and the infinities are not numbers here."""
    number = _exponent(value) if isinstance(value, str) else value
    if isinstance(value, Interpolated):
        try:
            number = float(value)
        except ValueError:
            return None
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
        return None
    return number


def positive_number(value: Any, where: Where) -> Any:
    """A number above zero, or null for "no limit"."""
    if value is None or _empty_substitution(value):
        return None
    number = finite_number(value)
    if number is None:
        return wrong_type("a number (like 2.5) or null for no limit", value, where)
    if number <= 0:
        return where.error(f"must be greater than 0, got {number:g}; leave it out for no limit")
    return float(number)


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_HELP = "use seconds as a number, or a string like '500ms', '30s', '5m', '1h' or '1m30s'"


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``2.5``, ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"``, ``"1m30s"``.

    Raises ValueError with the reason a user should read.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a duration, got {describe(value)}; {_DURATION_HELP}")
    if isinstance(value, str):
        spec = value.strip()
        try:
            seconds = float(spec)
        except ValueError:
            compact = spec.replace(" ", "")
            if not compact or _DURATION_PART.sub("", compact) != "":
                raise ValueError(f"invalid duration '{value}'; {_DURATION_HELP}") from None
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(compact))
    else:
        seconds = float(value)
    return check_seconds(seconds, value)


def _short(value: Any) -> str:
    """A value quoted in a message: a 400-digit number would bury the reason."""
    text = str(value)
    return text if len(text) <= 40 else f"{text[:20]}…({len(text)} characters)"


def check_seconds(seconds: float, value: Any) -> float:
    """``seconds`` if it is a time a roster may hold, else ValueError saying why
    (``value``: as written)."""
    try:
        return finite_seconds(seconds, "the duration", most=MAX_DURATION_S, written=value)
    except InvalidSeconds as exc:
        tail = "; where a setting allows it, null means no limit" if exc.too_long else ""
        raise ValueError(f"{exc}{tail}") from None


def duration(*, optional: bool = False, positive: bool = True) -> Coercer:
    def coerce(value: Any, where: Where) -> Any:
        if optional and (value is None or _empty_substitution(value)):
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            return where.error(str(exc))
        if positive and seconds == 0:
            hint = "; write null for no limit" if optional else ""
            return where.error(f"must be longer than 0{hint}")
        return seconds

    return coerce


_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}


def parse_size(value: Any) -> int:
    """Bytes from ``1048576``, ``"10MB"`` (10**7), ``"10MiB"`` or ``"10M"`` (10 * 2**20).

    Raises ValueError with the reason a user should read.
    """
    help_ = "use a number of bytes or a string like '10MB', '10MiB' or '512KiB'"
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected a size, got {describe(value)}; {help_}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.fullmatch(value.strip())
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _SIZE_UNITS:
            raise ValueError(f"invalid size '{value}'; {help_}")
        bytes_ = float(match.group(1)) * _SIZE_UNITS[unit]
        size = int(bytes_) if math.isfinite(bytes_) else MAX_SIZE_BYTES + 1
    if size <= 0:
        raise ValueError(f"invalid size '{value}': it must be more than 0 bytes")
    if size > MAX_SIZE_BYTES:
        raise ValueError(f"invalid size '{_short(value)}': the most is 1024GiB")
    return size


def size(value: Any, where: Where) -> Any:
    try:
        return parse_size(value)
    except ValueError as exc:
        return where.error(str(exc))


def env_map(value: Any, where: Where) -> Any:
    """Environment variables: names to string values (numbers are accepted and stringified)."""
    if value is None:
        return Env()
    if not isinstance(value, dict):
        return wrong_type("a mapping of NAME: value", value, where)
    result: dict[str, str] = {}
    ok = True
    for key, item in value.items():
        line = value.line_of(key) if hasattr(value, "line_of") else None
        key_where = replace(where, key=join(where.key, str(key)), line=line)
        if not isinstance(key, str) or not key or "=" in key:
            key_where.error("environment variable names must be non-empty text without '='")
            ok = False
        elif isinstance(item, bool) or not isinstance(item, str | int | float):
            hint = f'; quote it: {key}: "{str(item).lower()}"' if isinstance(item, bool) else ""
            wrong_type("a string", item, key_where, hint)
            ok = False
        else:
            result[key] = str(item)
    return Env(result) if ok else INVALID


def backoff(value: Any, where: Where) -> Any:
    """``{initial: 1s, max: 30s}``; a missing half keeps its built-in default."""
    if not isinstance(value, dict):
        return wrong_type("a mapping like {initial: 1s, max: 30s}", value, where)
    keys = ("initial", "max")
    parts: dict[str, Any] = {"initial": Backoff.initial_s, "max": Backoff.max_s}
    for key, item in value.items():
        line = value.line_of(key) if hasattr(value, "line_of") else where.line
        sub = replace(where, key=join(where.key, str(key)), line=line)
        if key not in keys:
            hint = did_you_mean(str(key), keys) or "; valid keys are initial, max"
            parts[str(key)] = sub.error(f"unknown key '{key}'{hint}")
        else:
            parts[key] = duration(positive=key == "max")(item, sub)
    if any(v is INVALID for v in parts.values()):
        return INVALID
    if parts["max"] < parts["initial"]:
        return where.error(
            f"backoff max ({parts['max']:g}s) is shorter than initial ({parts['initial']:g}s); "
            "max is the longest delay between restarts"
        )
    return Backoff(initial_s=parts["initial"], max_s=parts["max"])
