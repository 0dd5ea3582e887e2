"""One rule for secret names and one filter for what people read (orchestrator.redact)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.redact import (
    MAX_LOG_DEPTH,
    REDACTED,
    TOO_DEEP,
    Redactor,
    escape_controls,
    is_secret_name,
)
from orchestrator.roster import is_secret_key


@pytest.mark.parametrize(
    "name",
    [
        "ANTHROPIC_API_KEY",
        "apiKey",
        "GH_TOKEN",
        "authToken",
        "DB_PASSWORD",
        "PGPASSWD",
        "GPG_PASSPHRASE",
        "OAUTH_CLIENT_SECRET",
        "AWS_CREDENTIALS",
        "STRIPE_KEY",
        "KEY",
        "SSH_KEY_PATH",
        "HTTP_AUTH",
        "AUTH",
    ],
)
def test_secret_names(name: str) -> None:
    """Names that hold secrets, for the logs and for `config` alike (one rule)."""
    assert is_secret_name(name)
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name", ["GIT_AUTHOR_NAME", "KEYBOARD_LAYOUT", "GNOME_KEYRING_CONTROL", "MONKEY", "PATH"]
)
def test_names_that_only_contain_the_letters(name: str) -> None:
    """KEY and AUTH inside a word do not make a secret: an author's name stays readable."""
    assert not is_secret_name(name)
    assert not is_secret_key(name)


def test_url_passwords_keys_and_known_values_are_redacted() -> None:
    r = Redactor()
    r.add_from_env({"MY_TOKEN": "tok-123456", "PLAIN": "visible-value"})
    text = r.text(
        "postgres://app:pw-9876@db/prod https://host/x?q=1 tok-123456 visible-value "
        "sk-ant-api03-abcdefghijk Bearer abcdefghijklmnop"
    )
    assert text == ("postgres://app:***@db/prod https://host/x?q=1 *** visible-value *** ***")


def test_escape_controls_shows_every_control_visibly() -> None:
    """ESC, BEL, CR, C1 CSI and a bidi override become visible text; newlines are kept
    only in multi-line mode."""
    assert escape_controls("a\x1b]0;t\x07\r\x9b\u202eb\nc") == "a\\x1b]0;t\\x07\\r\\x9b\\u202eb\\nc"
    assert escape_controls("a\nb\tc\x1b", multiline=True) == "a\nb\tc\\x1b"


def test_a_body_near_the_queue_limit_is_redacted_in_linear_time() -> None:
    """Regression: an unbounded URL pattern scanned from every position to the end of a
    1 MiB body of letters (quadratic: the supervisor hung logging it, and the body was never
    delivered). Bounded, it finishes well inside the suite's per-test timeout."""
    r = Redactor()
    for body in ("x" * 1_000_000, "a:" * 500_000, "s://" + "u" * 1_000_000):
        assert r.text(body) == body


def test_a_value_nested_deeper_than_the_log_limit_is_cut_not_a_recursion_error() -> None:
    """Events carry what a model sent (tool inputs): 5,000 levels deep, walking it raised
    RecursionError inside the logging call. Below MAX_LOG_DEPTH it is kept as it was."""
    deep: Any = {"token": "sk-ant-" + "x" * 20}
    for _ in range(5000):
        deep = [deep]
    cut = Redactor().value("input", {"a": deep})
    for _ in range(MAX_LOG_DEPTH):  # the mapping is level 0
        [cut] = cut.values() if isinstance(cut, dict) else cut
    assert cut == TOO_DEEP
    shallow = Redactor().value("input", {"a": [[{"token": "sk-ant-" + "x" * 20}]]})
    assert shallow == {"a": [[{"token": REDACTED}]]}


def test_invisible_characters_that_make_names_look_alike_are_shown() -> None:
    """A plain-SQL participant `coordinator\\u200b` showed as a second `coordinator`."""
    for char in "\u200b\u200e\u200f\u061c\u2060\ufeff\u200c\u200d":
        assert escape_controls(f"coordinator{char}") == f"coordinator\\u{ord(char):04x}"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # an emoji sequence in a body
    assert escape_controls(f"hi {family}\n", multiline=True) == f"hi {family}\n"
    assert escape_controls("x\ufeffy", multiline=True) == "x\\ufeffy"
