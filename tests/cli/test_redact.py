"""One rule for secret names and one filter for what people read (orchestrator.redact)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from cli_runner import octy

from orchestrator import agent_env
from orchestrator.redact import (
    MAX_LOG_DEPTH,
    REDACTED,
    TOO_DEEP,
    Redactor,
    escape_controls,
    is_secret_name,
)
from orchestrator.roster import is_secret_key, load_roster


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
    # The shapes of review H1 on near-miss bodies: each pattern starts and ends linearly
    # ("eyJ" * n was quadratic: each "eyJ" of the run scanned to its end for a ".").
    for body in (
        "eyJ" * 300_000,
        "-----BEGIN RSA PRIVATE KEY-----" * 30_000,
        "key=key:" * 120_000,
        'key: "' * 160_000,
        "--password " * 90_000,
        "https://" + "a" * 1_000_000 + "@",
        "Authorization: " * 60_000,
        " -u a:" * 150_000,
    ):
        r.text(body)


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


# Review H1: shapes the redactor let through, each with the secret part that must go.
SHAPES = [
    (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5v\n"
        "-----END OPENSSH PRIVATE KEY-----\n",
        "b3BlbnNzaC1rZXktdjEAAAAABG5v",
    ),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA75 (cut short", "MIIEpAIBAAKCAQEA75"),
    ("DB_PASSWORD=hunter2-in-dotenv\nX=1", "hunter2-in-dotenv"),
    ("export X_TOKEN=abc123xyz; make", "abc123xyz"),
    ('{"password": "hunter2", "dbPass": "swordfish1"}', "hunter2"),
    ('{"password": "hunter2", "dbPass": "swordfish1"}', "swordfish1"),
    ("password: hunter2\n", "hunter2"),
    ("session_cookie: abcdefgh", "abcdefgh"),
    ("GITLAB_PAT=gl-1234-abcd", "gl-1234-abcd"),
    ("mytool --password hunter22 --api-key=k3yk3yk3y", "hunter22"),
    ("mytool --password hunter22 --api-key=k3yk3yk3y", "k3yk3yk3y"),
    ("curl -H 'Authorization: Basic YWxhZGRpbjpvcGVu' x", "YWxhZGRpbjpvcGVu"),
    ('{"Authorization": "Token 9f8e7d6c5b4a"}', "9f8e7d6c5b4a"),
    ("curl -H 'x-api-key: abcdef123456' x", "abcdef123456"),
    ("curl -H 'PRIVATE-TOKEN: zzzzzz999' x", "zzzzzz999"),
    ("curl -u admin:s3cr3tpw https://x", "s3cr3tpw"),
    ("https://api.x/v1?api_key=abcd1234efgh&q=1", "abcd1234efgh"),
    ("https://api.x/v1?q=1&access_token=qwerty123", "qwerty123"),
    ("git clone https://ghtokenabcdef1234567890@github.com/x/y", "ghtokenabcdef1234567890"),
    ("git clone https://tok-abc@github.com/x/y", "tok-abc"),
    ("postgres://app:pw-9876@db/prod", "pw-9876"),
    ("a eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcDEF123_-x b", "eyJzdWIiOiIxMjM0"),
    ("key sk_live_51H8abcdefghijklmnopqrstu", "51H8abcdefghijklmnop"),
    ("sk_test_51H8abcdefghijklmnopqrstu", "51H8abcdefghijklmnop"),
    ("AIzaSyA1234567890abcdefghijklmnopqrstu", "SyA1234567890abcdef"),
    ("npm_abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghijklmnopqrstuvwxyz"),
    ("glpat-Zx8yQw7vRt6uPo5i", "Zx8yQw7vRt6uPo5i"),
    ("ghp_abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxyz"),
    ("github_pat_11ABCDEFG0abcdefghijklmnop", "11ABCDEFG0abcdefghijklmnop"),
    ("xoxb-1234567890-abcdef", "1234567890-abcdef"),
    ("xoxp-1234567890-abcdef", "1234567890-abcdef"),
    ("AKIAIOSFODNN7EXAMPLE", "IOSFODNN7EXAMPLE"),
]


@pytest.mark.parametrize(("text", "secret"), SHAPES)
def test_secret_shapes_inside_text_are_masked(text: str, secret: str) -> None:
    """Review H1: a model's tool input is logged whole; the secrets in it go."""
    masked = Redactor().text(text)
    assert secret not in masked
    assert REDACTED in masked


ORDINARY = """\
def login(user: str, password: str) -> None:
    token = get_token()
    if token == expected: return
    password=password
    api_key = os.environ["API_KEY"]
    key = cache.key(path)
    secret = settings.SECRET_KEY
    headers = {"Authorization": f"Bearer {token}"}
PATH=/usr/bin KEYBOARD=us GIT_AUTHOR_NAME=Op file_path=/x/y.txt compat=1 paths: [a, b]
ssh://git@github.com/x/y.git git@github.com:x/y.git https://github.com/x/y?q=1&page=2
The primary key is the id column; pass the tests with pytest -k slow, then push.
{"event": "tool_used", "input_tokens": 12, "key_id": "k-1", "path": "/work/a"}
export TOKEN=$GH_TOKEN; curl -H "Authorization: Bearer $TOKEN" -u "$USER:$PW" x
password: ${DB_PASS}
"""


def test_ordinary_text_and_code_stay_untouched() -> None:
    """The shapes keep false positives low: code that names secrets, paths, logins, prose,
    counts and references ($X, f(), os.environ[...]) are shown as written."""
    assert Redactor().text(ORDINARY) == ORDINARY


@pytest.mark.parametrize(
    "name",
    [
        *("DB_PASS", "GITLAB_PAT", "SESSION_COOKIE", "SSH_PRIVATE", "AWS_CREDS", "API_KEYS"),
        *("dbPass", "x-api-key", "PRIVATE-TOKEN", "ANTHROPIC_CUSTOM_HEADERS", "MYPASSPHRASE"),
    ],
)
def test_the_names_agent_env_blanks_are_secret_names(name: str) -> None:
    """Review H2: the names agent_env blanked were not secret for `config` and the logs."""
    assert is_secret_name(name)


def test_every_value_withheld_from_commands_is_masked(tmp_path: Path) -> None:
    """Review H2: one rule. Whatever agent_env withholds from an agent's commands, a
    Redactor that learnt the same environment masks."""
    (tmp_path / "agents.yaml").write_text("name: t\nagents:\n  a: {prompt: p}\n", "utf-8")
    spec = load_roster(tmp_path / "agents.yaml", {}).agents["a"]
    environ = {f"{name}": f"value-of-{name.lower()}" for name in WITHHELD_NAMES}
    environ["PIP_INDEX_URL"] = "https://tok3n@pypi.invalid/simple"
    environ["PLAIN"] = "plain-visible"
    withheld = agent_env.withheld(spec, environ)
    assert set(withheld) >= {*WITHHELD_NAMES, "PIP_INDEX_URL"} - {"ANTHROPIC_CUSTOM_HEADERS"}
    r = Redactor()
    r.add_from_env(environ)
    for name in withheld:
        assert environ[name] not in r.text(f"x {environ[name]} y"), name
    assert r.text("plain-visible") == "plain-visible"


WITHHELD_NAMES = [
    *("DB_PASS", "GITLAB_PAT", "SESSION_COOKIE", "SSH_PRIVATE", "AWS_CREDS", "API_KEYS"),
    *("MYSECRET", "GHTOKEN", "PGPASSWD", "HTTP_AUTH", "ANTHROPIC_API_KEY"),
]


def test_config_masks_everything_withheld_from_commands(tmp_path: Path) -> None:
    """Review H2, the real `config` verb: a roster interpolates every variable agent_env
    withholds into a prompt, and gives each to an agent's env. `config` (YAML and --json)
    shows none of the values (DB_PASS, GITLAB_PAT, SESSION_COOKIE... were printed)."""
    environ = {name: f"value-of-{name.lower()}" for name in WITHHELD_NAMES}
    environ["PIP_INDEX_URL"] = "https://tok3n-in-url@pypi.invalid/simple"
    names = [*WITHHELD_NAMES, "PIP_INDEX_URL"]
    prompt = " ".join(f"${{{name}}}" for name in names)
    env = "".join(f"\n      {name}: ${{{name}}}" for name in names)
    roster = f"name: t\nagents:\n  plain:\n    prompt: '{prompt}'\n"
    roster += f"  given:\n    prompt: p\n    env:{env}\n"
    (tmp_path / "agents.yaml").write_text(roster, encoding="utf-8")
    spec = load_roster(tmp_path / "agents.yaml", environ).agents["plain"]
    withheld = agent_env.withheld(spec, environ)
    assert sorted(withheld) == sorted(names)
    run_env = {**os.environ, **environ}
    for argv in (("config",), ("config", "--json")):
        out = octy(*argv, cwd=tmp_path, env=run_env).stdout
        assert "given" in out
        for name in withheld:
            assert environ[name] not in out, (argv, name)


@pytest.mark.parametrize(
    ("roster", "listed"),
    [
        ("zzzzzz: 1\nagents:\n  a:\n    prompt: p\n", "valid keys are name, defaults"),
        ("agents:\n  a:\n    prompt: p\n    budget: {limit: 1}\n", "valid keys are usd, tokens"),
        ("agents:\n  a:\n    prompt: p\n    backoff: {first: 1}\n", "valid keys are initial, max"),
        ("agents:\n  a:\n    prompt: p\n    workspace: {kind: x}\n", "valid keys are type, base"),
    ],
)
def test_the_roster_errors_list_of_valid_keys_reaches_the_terminal_whole(
    tmp_path: Path, roster: str, listed: str
) -> None:
    """The masker read "valid keys: name, ..." as a secret `keys` with the value `name`,
    so `config` told the operator "valid keys: ***, defaults, ..." (its first key masked)."""
    (tmp_path / "agents.yaml").write_text(roster, encoding="utf-8")
    done = octy("config", cwd=tmp_path, check=False)
    assert done.returncode == 1
    assert listed in done.stderr, done.stderr
    assert "***" not in done.stderr
