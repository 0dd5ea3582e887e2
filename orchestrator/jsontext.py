"""JSON text read from places others write (plain-SQL rows, the NATS bucket, log files,
the command line): ``json.loads`` raises RecursionError, not ValueError, on text nested
deeper than Python's recursion limit (~1,000 levels; SQLite's json_valid accepts up to
1,000), and every caller that caught ValueError for bad JSON then ended in a traceback
or a crashed session. :func:`loads` makes both one ValueError."""

from __future__ import annotations

import json
from typing import Any


def loads(text: str | bytes) -> Any:
    """``json.loads``, with text nested too deep for Python a ValueError like bad JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deep to read") from None
