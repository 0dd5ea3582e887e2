"""One check for a time given in seconds, wherever one comes in: a CLI option, a roster
setting, an agent's ``ask`` timeout, ``down``'s grace.

``nan`` never compares, so a NaN deadline never comes; ``inf`` and ``1e400`` overflow
what is computed from them (a database's expiry, a sleep); a negative time timed out at
once with the request queued anyway. Each caller used to check a different subset of
these. Light on purpose: the CLI's everyday verbs import it (tests/cli/test_cli_imports.py).
"""

from __future__ import annotations

import math

from orchestrator.errors import TEN_YEARS_S, InvalidSeconds

MAX_SECONDS = TEN_YEARS_S  # beyond it a time means "never": where that is allowed, say so


def finite_seconds(
    value: object,
    what: str,
    *,
    least: float = 0.0,
    most: float = MAX_SECONDS,
    written: object = None,
) -> float:
    """``value`` (a number, or text that is one) as seconds from ``least`` to ``most``;
    else :class:`~orchestrator.errors.InvalidSeconds`, which says what (``what``), the
    value given (``written``, if the user wrote it otherwise) and the range allowed."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidSeconds(what, value, least, most, written)
    try:
        seconds = float(value)
    except ValueError:
        raise InvalidSeconds(what, value, least, most, written) from None
    except OverflowError:  # an int past a float's range: too long
        seconds = math.inf if isinstance(value, int) and value > 0 else -math.inf
    if not math.isfinite(seconds) or not least <= seconds <= most:
        raise InvalidSeconds(what, value, least, most, written)
    return seconds


__all__ = ["MAX_SECONDS", "finite_seconds"]
