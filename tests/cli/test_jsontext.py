"""JSON nested deeper than Python reads, in the places others write (orchestrator/jsontext.py);
`logs` on such a line: tests/cli/test_cli_paths.py."""

from __future__ import annotations

import pytest

from orchestrator import jsontext
from orchestrator.logview import LogLine

DEEP = "[" * 5000 + "]" * 5000


def test_too_deep_is_a_value_error_like_bad_json() -> None:
    with pytest.raises(ValueError, match="nested too deep"):
        jsontext.loads(DEEP)
    assert jsontext.loads("[[1]]") == [[1]]


def test_a_log_line_nested_too_deep_is_not_an_event() -> None:
    assert LogLine('{"a": ' + DEEP + "}").event is None
