"""The host a URL names, read as the CLI reads it: Node's WHATWG URL parser.

A ``WebFetch(domain:host)`` rule must be compared with the host the CLI fetches, and
Python's :func:`urllib.parse.urlparse` reads some strings differently
(``http://example.com\\@evil.com/`` is example.com to Node, evil.com to Python). This
reads the host the WHATWG way for what matters here: tabs and newlines dropped, ``\\`` as
``/`` and any number of slashes after the scheme for http(s), the last ``@`` ending the
user part, percent-decoding, UTS 46 mapping (a fullwidth ``e`` is ``e``), numeric IPv4 forms
(``0x7f.1``). The caller asks whenever this reading and Python's disagree.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes, urlparse

import idna

from orchestrator import globs

_SPECIAL = frozenset({"http", "https", "ws", "wss", "ftp", "file"})
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_C0_AND_SPACE = "".join(chr(i) for i in range(0x21))
_FORBIDDEN = re.compile(r"[\x00-\x20#%/:<>?@\[\\\]^|\x7f]")


def domain_matches(domain: str, url: str) -> bool:
    """Whether a ``WebFetch(domain:DOMAIN)`` rule matches ``url``: True (ask) also when
    Node's reading of the host cannot be made or differs from Python's."""
    node = whatwg_host(url)
    try:
        python = urlparse(url).hostname or ""
    except ValueError:  # a bad port or bracket: Python cannot read it
        return True
    if node is None or _plain(node) != _plain(python):
        return True
    return globs.matches(_plain(domain), _plain(node))


def whatwg_host(url: str) -> str | None:
    """The host Node's ``new URL(url).hostname`` gives (lower case, IPv6 without
    brackets), or None if it would not parse or this reader is unsure."""
    text = re.sub(r"[\t\n\r]", "", url.strip(_C0_AND_SPACE))
    scheme = _SCHEME.match(text)
    if scheme is None:
        return None
    rest = text[scheme.end() :]
    if scheme[1].lower() in _SPECIAL:
        rest = rest.replace("\\", "/").lstrip("/")
    elif rest.startswith("//"):
        rest = rest[2:]
    else:
        return ""  # no authority: no host
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    if host.startswith("["):
        return host[1 : host.index("]")].lower() if "]" in host else None
    host = host.partition(":")[0]
    try:
        host = unquote_to_bytes(host).decode("utf-8")
        if not host.isascii():  # UTS 46 as Node maps it; what it refuses, we ask about
            host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
    except (UnicodeError, idna.IDNAError):
        return None
    host = host.lower()
    if _FORBIDDEN.search(host):
        return None
    return _ipv4(host) or host


def _plain(host: str) -> str:
    """A host as compared: lower case, without the trailing dot DNS ignores."""
    return host.lower().strip("[]").removesuffix(".")


def _ipv4(host: str) -> str | None:
    """A WHATWG IPv4 host (``0x7f.1``, ``2130706433``) in dotted form, else None."""
    labels = host.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels.pop()
    if not re.fullmatch(r"(0[xX][0-9a-fA-F]*|[0-9]+)", labels[-1]) or len(labels) > 4:
        return None
    try:
        numbers = [_ipv4_number(label) for label in labels]
    except ValueError:
        return None
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        return None
    value = numbers[-1] + sum(n * 256 ** (3 - i) for i, n in enumerate(numbers[:-1]))
    return ".".join(str(value >> shift & 255) for shift in (24, 16, 8, 0))


def _ipv4_number(label: str) -> int:
    if label[:2].lower() == "0x":
        return int(label[2:] or "0", 16)
    if len(label) > 1 and label.startswith("0"):
        return int(label[1:], 8)
    return int(label, 10)
