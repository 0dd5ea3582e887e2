"""What counts as a secret: one rule for names, one set of shapes for text.

The names rule decides which variables an agent's commands get empty
(:mod:`orchestrator.agent_env`), which values the log redactor learns, and which keys
``config`` and the logs mask (:mod:`orchestrator.redact`). They were two rules: review
found ``DB_PASS``, ``GITLAB_PAT``, ``SESSION_COOKIE`` blanked for commands yet printed by
``config`` and logged in clear.

The shapes find secrets inside free text (a model's tool input is logged whole): PEM
private keys, ``NAME=value`` / ``name: value`` under a secret name, HTTP credentials
headers, URL user parts and vendor token prefixes. Each rule is guarded by a cheap
substring test or starts on a literal: log lines are on the hot path.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

REDACTED = "***"

# A name made of one of these words (split at anything not a letter or digit, and between
# a lower-case letter and a capital: dbPass) holds a secret. KEY, AUTH, PAT as words only:
# as parts of words they name keyboards, GIT_AUTHOR_NAME and PATH.
SECRET_WORDS = frozenset(
    {
        *("TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD", "PASSWORDS", "PASSWD"),
        *("PASS", "PASSPHRASE", "KEY", "KEYS", "APIKEY", "CREDENTIAL", "CREDENTIALS"),
        *("CREDS", "AUTH", "COOKIE", "COOKIES", "PRIVATE", "PAT", "HEADERS"),
    }
)
# ... and so does a name containing one of these anywhere (GHTOKEN, MYSECRET, PGPASSWD).
SECRET_PARTS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "APIKEY", "CREDENTIAL")
# Names that match the words but count or number things: input_tokens, key_id.
NOT_SECRET_ENDS = ("_id", "_ids", "tokens")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_SPLIT = re.compile(r"[^A-Z0-9]+")
# A URL with a user part (postgres://u:pw@h/db, https://token@host/).
_URL_CREDENTIALS = re.compile(r"^[a-z][a-z0-9+.-]*://([^/@\s:]*)(?::([^/@\s]*))?@", re.I)


@functools.lru_cache(maxsize=4096)  # asked for every key of every logged event
def is_secret_name(name: str) -> bool:
    """True for ANTHROPIC_API_KEY, GH_TOKEN, DB_PASS, GITLAB_PAT, x-api-key, dbPassword."""
    upper = _CAMEL.sub("_", name).upper()
    return bool(set(_WORD_SPLIT.split(upper)) & SECRET_WORDS) or any(
        part in upper for part in SECRET_PARTS
    )


def looks_secret(name: str, value: str) -> bool:
    """A variable that holds a secret: by its name, or a URL value with a user part."""
    return is_secret_name(name) or bool(_URL_CREDENTIALS.match(value))


def secret_values(name: str, value: str) -> Iterator[str]:
    """The strings to mask for a secret variable: its value, and for a headers variable
    (``ANTHROPIC_CUSTOM_HEADERS="x-gw-key: v"``, OTLP's ``k=v,k2=v2``) each header's value,
    which a log shows without the rest. A URL under a harmless name: its password, or its
    user when it has none (``postgres://app:***@db/prod`` stays readable)."""
    url = None if is_secret_name(name) else _URL_CREDENTIALS.match(value)
    if url is not None:
        yield url.group(2) or url.group(1)
        return
    yield value
    if name.upper().endswith("HEADERS"):
        for line in re.split(r"[\n,]", value):
            _, sep, rest = line.partition(":" if ":" in line else "=")
            if sep and rest.strip():
                yield rest.strip()


# --- shapes inside text ---------------------------------------------------------------------

_PEM = re.compile(
    r"(-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)"
    r"[\s\S]*?(-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|\Z)"
)
# Starts on the literal "://" (a scheme before it): a search for a literal is fast. The
# user part and the password are bounded (unbounded, a 1 MiB body was quadratic).
_URL_USER = re.compile(r"://([^\s:/@]{1,256})(:[^\s@/]{1,256})?@")
_AUTH_HEADER = re.compile(
    r"(?i)(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)(\w+\s+)?+([^\s\"'${][^\s\"']{5,})"
)
_CURL_USER = re.compile(r"((?:^|\s)(?:-u|--user)[\s=]+[\"']?)([^\s:\"']*:[^\s\"'$][^\s\"']*)")
# One of the secret words, then the rest of the name, then "=" or ":" (not "==", "::",
# ":="): where a NAME=value may be. The name's start is found by looking back from here.
_WORDS = ("token", "secret", "pass", "key", "auth", "cookie", "private", "cred", "pat", "headers")
# Each word as written in lower case, upper case or capitalised: an IGNORECASE search was
# several times slower (it cannot skip ahead on a set of first letters).
_ASSIGN_HINT = re.compile(
    "(?:"
    + "|".join(f"{w}|{w.upper()}|{w.capitalize()}" for w in _WORDS)
    + r")[\w.-]{0,64}+([\"']?[ \t]*(?:=(?!=)|:(?![:=]))[ \t]*)"
)
# --password VALUE: a secret option and its value after a space.
_OPTION = re.compile(r"--[A-Za-z][\w-]{0,63}([ \t]+)(?=[^\s-])")  # a literal first: fast
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_QUOTED = re.compile(r"([\"'])([^\"'\n]{1,4096})\1")
_BARE = re.compile(r"[^\s\"'`,;&|<>(){}\[\]]{1,4096}")
_REFERENCE = re.compile(r"[$%{<*(\[]|[A-Za-z_][\w.]*[(\[]")
_NOT_VALUES = frozenset(
    {"str", "string", "bytes", "int", "bool", "boolean", "number", "none", "null", "nil"}
    | {"true", "false", "undefined", "any", "unknown", "object", "optional", "secretstr"}
)
_IDENTIFIER = re.compile(r"[A-Za-z_][\w.]*")
# Vendors' token shapes, each searched for only when its prefix is in the text (one
# alternation of them all was the slowest step of a log line: a search on every letter
# that may start one). JWTs: a header and a payload that both begin with {" (eyJ); the
# pattern starts only where a run of their characters starts and never backtracks into
# it (from every "eyJ" of a long run it was quadratic).
_TOKENS = tuple(
    (guard, re.compile(pattern))
    for guard, pattern in (
        ("sk-", r"sk-ant-[A-Za-z0-9_\-]{8,}|sk-[A-Za-z0-9_\-]{20,}"),  # Anthropic, OpenAI...
        ("k_", r"[sr]k_(?:live|test)_[A-Za-z0-9]{10,}"),  # Stripe
        ("_", r"gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"),  # GitHub
        ("glpat-", r"glpat-[A-Za-z0-9_\-]{16,}"),  # GitLab
        ("npm_", r"npm_[A-Za-z0-9]{30,}"),  # npm
        ("AIza", r"AIza[0-9A-Za-z_\-]{30,}"),  # Google API keys
        ("xox", r"xox[baprs]-[A-Za-z0-9\-]{10,}"),  # Slack
        ("IA", r"(?:AKIA|ASIA)[0-9A-Z]{16}"),  # AWS access key ids
        ("eyJ", r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{8,}+\.eyJ[A-Za-z0-9_\-]{8,}+\.[\w\-]*"),
    )
)
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]{12,}=*")


def mask_shapes(text: str) -> str:
    """``text`` with every secret-shaped part replaced by :data:`REDACTED`."""
    if "PRIVATE KEY" in text:
        text = _PEM.sub(rf"\g<1>{REDACTED}\g<2>", text)
    if "@" in text:
        text = _URL_USER.sub(_url_user, text)
    lower = text.lower()
    if "authorization" in lower:
        text = _AUTH_HEADER.sub(rf"\g<1>\g<2>{REDACTED}", text)
    if " -u" in text or "--user" in text:
        text = _CURL_USER.sub(rf"\g<1>{REDACTED}", text)
    if "--" in text:
        text = _assignments(text, _OPTION)
    text = _assignments(text, _ASSIGN_HINT)
    if "bearer" in lower:
        text = _BEARER.sub(REDACTED, text)
    for guard, pattern in _TOKENS:
        if guard in text:
            text = pattern.sub(REDACTED, text)
    return text


def _url_user(match: re.Match[str]) -> str:
    user, password = match.group(1), match.group(2)
    if not match.string[match.start() - 1 : match.start()].isalnum():
        return match.group()  # no scheme before "://"
    if password:  # user:password@ keeps the user
        return f"://{user}:{REDACTED}@"
    # A user part alone is a token for http(s) (https://TOKEN@host) and when long; a short
    # one is a login (ssh://git@host).
    scheme_http = match.string[max(0, match.start() - 5) : match.start()].lower()
    if scheme_http.endswith(("http", "https")) or len(user) >= 16:
        return f"://{REDACTED}@"
    return match.group()


def _assignments(text: str, hints: re.Pattern[str]) -> str:
    """``NAME=value``, ``name: value``, ``"name": "value"``, ``--name value`` with a secret
    NAME: the value masked, unless it is a reference (``$X``, ``f()``, ``password``).
    ``hints`` ends each match where the value begins, its group 1 where the name ends."""
    out: list[str] = []
    done = 0
    for hint in hints.finditer(text):
        start = hint.start()
        if start < done:
            continue  # inside a value just masked
        while start > max(done, hint.start() - 128) and text[start - 1] in _NAME_CHARS:
            start -= 1
        name_end = hint.start(1)
        name = text[start:name_end].rstrip("\"'")
        name = name.strip("-.")
        if not name or not is_secret_name(name) or name.lower().endswith(NOT_SECRET_ENDS):
            continue
        value_at = hint.end()
        quoted = _QUOTED.match(text, value_at)
        found = quoted or _BARE.match(text, value_at)
        if found is None or value_at < done:
            continue
        value = quoted.group(2) if quoted else found.group()
        if _is_reference(value) or text[found.end() : found.end() + 1] in ("(", "["):
            continue
        lo, hi = (quoted.start(2), quoted.end(2)) if quoted else found.span()
        out += [text[done:lo], REDACTED]
        done = hi
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _is_reference(value: str) -> bool:
    """A value that names a secret rather than holds it: ``$TOKEN``, ``os.environ[...]``,
    ``get_token()``, ``password`` (a variable), a type, or one already masked."""
    if value.startswith(REDACTED) or _REFERENCE.match(value):
        return True
    if value.lower() in _NOT_VALUES:
        return True
    return bool(_IDENTIFIER.fullmatch(value)) and is_secret_name(value)
