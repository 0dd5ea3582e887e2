"""Can the agents' model be reached, and does it take their key? Checked once by ``up``
before any agent starts, and by a runner whose CLI gets no answer at all.

Issue 9.2: with ``ANTHROPIC_BASE_URL`` at a closed port a team started, showed ``ready``
and sat on its first request for minutes. The check costs nothing: a TCP connect, then
``GET /v1/models`` (free, needs the key) where a key is in the environment.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from orchestrator.roster import Roster

DEFAULT_BASE_URL = "https://api.anthropic.com"
CONNECT_TIMEOUT_S = 3.0
HTTP_TIMEOUT_S = 10.0
# The whole check, every endpoint at once, ends within this: `up -d` waits 60 s for its
# supervisor to register, which it does after the check. One after the other, an endpoint
# that takes the connection and never answers cost HTTP_TIMEOUT_S each (3 took 30.0 s,
# measured: 6 made `up -d` time out), and one that answers a byte at a time never ended
# (urllib's timeout is per read). Above CONNECT + HTTP, so a lone slow endpoint still
# gets its own reason.
CHECK_DEADLINE_S = 15.0
CHECKS_AT_ONCE = 16  # endpoints checked at the same time (a roster has up to 100 agents)
API_VERSION = "2023-06-01"


@dataclass(frozen=True)
class Endpoint:
    url: str
    host: str
    port: int

    @classmethod
    def of(cls, env: Mapping[str, str]) -> Endpoint:
        """Where a CLI with this environment sends its API calls."""
        url = (env.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:  # over 65535, or not a number: :func:`unreachable` says so
            port = 0
        default_port = 443 if parts.scheme == "https" else 80
        return cls(url, parts.hostname or "", default_port if port is None else port)


@dataclass(frozen=True)
class Problem:
    """What ``up`` refuses to start with: which agents, which endpoint, what is wrong."""

    agents: tuple[str, ...]
    url: str
    reason: str

    def __str__(self) -> str:
        return f"{', '.join(self.agents)}: {self.url}: {self.reason}"


class LookupTimeout(TimeoutError):
    """A host name's lookup with no answer in time (the resolver still waits on it)."""

    def __init__(self, host: str, waited_s: float) -> None:
        super().__init__(f"no answer to the lookup of {host} within {waited_s:g}s")
        self.host = host
        self.waited_s = waited_s


# One lookup per name and port at a time: a resolver that never answers keeps each lookup's
# thread (getaddrinfo cannot be interrupted); the runner asks again at each failed call.
_lookups: dict[tuple[str, int], Future[list[tuple[Any, ...]]]] = {}
_lookups_lock = threading.Lock()


def resolve(host: str, port: int, timeout_s: float) -> list[tuple[Any, ...]]:
    """``socket.getaddrinfo(host, port)`` for TCP, given up after ``timeout_s``
    (:class:`LookupTimeout`). The lookup runs in a daemon thread, which a hanging resolver
    keeps: measured with a hosts file that never answers (a FIFO), the model check's thread
    waited in getaddrinfo past its deadline, and the runner's check of an endpoint the CLI
    got no answer from, which has no deadline of its own, never returned."""
    key = (host, port)
    with _lookups_lock:
        pending = _lookups.get(key)
        if pending is None:
            pending = Future()
            try:
                threading.Thread(
                    target=_look_up, args=(key, pending), name="octy-lookup", daemon=True
                ).start()
            except RuntimeError:
                # No thread to spare ("can't start new thread"): it raised out of the check,
                # and the Future, never to be answered, was kept: every later check of that
                # host said "no answer within 3s", an IP address too (measured under
                # RLIMIT_NPROC). Looked up here then, without a deadline, as before.
                pending = None
            else:
                _lookups[key] = pending
    if pending is None:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    try:
        return pending.result(timeout=timeout_s)
    except FutureTimeout:
        raise LookupTimeout(host, timeout_s) from None


def _look_up(key: tuple[str, int], future: Future[list[tuple[Any, ...]]]) -> None:
    try:
        future.set_result(socket.getaddrinfo(*key, type=socket.SOCK_STREAM))
    except BaseException as exc:  # handed to whoever waits for it
        future.set_exception(exc)
    finally:
        with _lookups_lock:
            _lookups.pop(key, None)


def connect(
    address: tuple[str, int], timeout_s: float, source: tuple[str, int] | None = None
) -> socket.socket:
    """``socket.create_connection``, its lookup bounded by ``timeout_s`` too (:func:`resolve`).
    Each address is tried in turn with an equal share of what is left: the first address
    that drops packets (an IPv6 route that goes nowhere, common) must not take the whole
    deadline and leave the next one 10 ms, which no connection over a real network makes.
    Once connected, the socket's timeout is ``timeout_s``, as create_connection leaves it.
    The socket is connected to an address: what is said on it (HTTP's Host, TLS's server
    name) still names the host."""
    deadline = time.monotonic() + timeout_s
    host, port = address
    error: OSError | None = None
    found = resolve(host, port, timeout_s)
    for n, (family, kind, proto, _, where) in enumerate(found):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(max(0.01, (deadline - time.monotonic()) / (len(found) - n)))
            if source is not None:
                sock.bind(source)
            sock.connect(where)
            sock.settimeout(timeout_s)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise error or OSError(f"{host} has no address")


def unreachable(env: Mapping[str, str], timeout_s: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why the endpoint in ``env`` cannot be reached by TCP; None if it can, or if a proxy
    stands in between (then the CLI's own errors must tell). Within ``timeout_s``, the
    name's lookup included."""
    endpoint = Endpoint.of(env)
    if not endpoint.host:
        return f"ANTHROPIC_BASE_URL {endpoint.url!r} names no host"
    if not 0 < endpoint.port < 65536:
        # It was taken for the default port: `https://HOST:99999` was checked at HOST:443
        # and passed, a port the CLI never uses (found by review).
        return f"ANTHROPIC_BASE_URL {endpoint.url!r} has no valid port (1-65535)"
    if _proxied(endpoint, env):
        return None
    try:
        with connect((endpoint.host, endpoint.port), timeout_s):
            return None
    except socket.gaierror as exc:
        return f"cannot resolve {endpoint.host} (DNS: {exc.strerror or exc})"
    except LookupTimeout as exc:
        return f"cannot resolve {endpoint.host} (DNS: no answer within {exc.waited_s:g}s)"
    except UnicodeError:
        # No DNS name at all (an empty label, one over 63 characters, a character IDNA
        # refuses: `http://a..b`), refused by getaddrinfo's IDNA encoding. Raised out of the
        # runner's check, it crashed the agent's session at each turn (given up after 5).
        return f"cannot resolve {endpoint.host} (not a valid host name)"
    except ConnectionRefusedError:
        return f"connection refused at {endpoint.host}:{endpoint.port}"
    except TimeoutError:
        return f"no answer from {endpoint.host}:{endpoint.port} within {timeout_s:g}s"
    except OSError as exc:
        return f"cannot connect to {endpoint.host}:{endpoint.port} ({exc.strerror or exc})"


def rejected_key(env: Mapping[str, str], exchange: Exchange | None = None) -> str | None:
    """Why the endpoint refuses the key in ``env`` (HTTP 401/403 on ``GET /v1/models``), or
    None: accepted, no key to check (a ``claude`` login), or an answer that says nothing.
    ``exchange``: the check's, whose deadline cuts the connection (else HTTP_TIMEOUT_S per
    read)."""
    headers = {"anthropic-version": API_VERSION}
    if env.get("ANTHROPIC_API_KEY"):
        headers["x-api-key"] = env["ANTHROPIC_API_KEY"]
    elif env.get("ANTHROPIC_AUTH_TOKEN"):
        headers["authorization"] = f"Bearer {env['ANTHROPIC_AUTH_TOKEN']}"
    else:
        return None
    url = Endpoint.of(env).url
    parts = urlsplit(url)
    if parts.username is not None:
        # A gateway's credential in the URL: urllib would take `user:pw@host` for the host.
        # The CLI (2.1.332, measured) sends it as Basic credentials beside its key.
        url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        if "authorization" not in headers:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    request = urllib.request.Request(url + "/v1/models?limit=1", headers=headers)
    opener = _opener(env, exchange)
    timeout_s = HTTP_TIMEOUT_S if exchange is None else exchange.left(HTTP_TIMEOUT_S)
    try:
        with opener.open(request, timeout=timeout_s):
            return None
    except urllib.error.HTTPError as exc:
        if exc.code not in (401, 403):
            return None  # a 3xx among them: not followed, it says nothing about the key
        return f"the API key was rejected (HTTP {exc.code}: {_api_message(exc)})"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"no answer to GET /v1/models ({reason})"
    except http.client.HTTPException as exc:
        # not an OSError: more than 100 headers, a status line that is not HTTP (an SSH
        # port, a TLS port spoken to in plain http); it raised out of the check and `up`
        # ended with a traceback (found by review)
        return f"no HTTP answer to GET /v1/models ({type(exc).__name__}: {exc})"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Follows no redirect: urllib's handler copies ``x-api-key`` and ``authorization`` to
    whatever host the ``Location`` names, another host or plain http (review M3: a gateway
    answering ``/v1/models`` with a 302 to its SSO page would get the key there). The 3xx
    then reaches :func:`rejected_key` as an HTTPError."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _opener(env: Mapping[str, str], exchange: Exchange | None) -> urllib.request.OpenerDirector:
    """urllib's opener for ``env``: through the proxy ``env`` names for its scheme, unless
    :func:`_proxied` says NO_PROXY bypasses it; else direct. urllib's own reads the
    supervisor's environment only: an agent whose roster `env` named a proxy was said
    reachable (behind a proxy), then its key was checked directly (measured: `no answer
    to GET /v1/models (Connection refused)`, nothing sent to the proxy), and `up` refused
    the team."""
    endpoint = Endpoint.of(env)
    proxies: dict[str, str] = {}
    scheme = "https" if endpoint.url.startswith("https:") else "http"
    # The variables urllib reads, lower case first (ALL_PROXY it does not use).
    names = [n for n in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY") if env.get(n)]
    if names and _proxied(endpoint, env):
        proxies[scheme] = env[names[0]]
    handlers: list[Any] = [_NoRedirect, urllib.request.ProxyHandler(proxies)]
    if exchange is not None:
        handlers += [_WatchedHTTP(exchange), _WatchedHTTPS(exchange)]
    return urllib.request.build_opener(*handlers)


class Exchange:
    """The connections of one check, cut at its deadline. urllib's timeout is per read: an
    endpoint that sends a byte every few seconds, never finishing, kept its check's thread
    reading for the supervisor's whole life (one per endpoint per `up`), after the check
    had given it up. Each connection is made through :meth:`connect`, which keeps a
    duplicate of its socket; :meth:`cut` shuts those down (both ways: whatever reads or
    writes, the TLS handshake included, ends at once), and refuses connections after it.
    Timeouts are also no longer than the time left, so a silent endpoint ends by itself."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline  # time.monotonic()
        self._lock = threading.Lock()
        self._cut = False
        self._watched: dict[int, list[socket.socket]] = {}  # thread id -> duplicates

    def left(self, most: float) -> float:
        """``most`` seconds, or less: what is left before the deadline (a little, at the
        least: a timeout of 0 would make a socket non-blocking)."""
        return max(0.01, min(most, self.deadline - time.monotonic()))

    def over(self) -> bool:
        """Whether the deadline has come: a timeout ended by it (no longer than the time
        left) ends at it or after it, never before."""
        return time.monotonic() >= self.deadline

    def connect(
        self,
        address: tuple[str, int],
        timeout: float | None = None,
        source_address: tuple[str, int] | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> socket.socket:
        """socket.create_connection, watched until this thread's :meth:`release`."""
        if self._cut:
            raise TimeoutError("past the model check's deadline")
        most = CONNECT_TIMEOUT_S if timeout is None else timeout
        sock = connect(address, self.left(most), source_address)
        # A duplicate: shutting it down ends the connection, read through whatever object
        # (the TLS socket that wraps this one takes its descriptor, leaving it empty).
        watched = sock.dup()
        with self._lock:
            cut = self._cut
            if not cut:
                self._watched.setdefault(threading.get_ident(), []).append(watched)
        if cut:
            _shut(watched)
            watched.close()
        return sock

    def cut(self) -> None:
        """End every connection still open, at once; make no more."""
        with self._lock:  # (held: release() cannot close a duplicate under the shutdown,
            self._cut = True  # whose descriptor number another open could then reuse)
            for socks in self._watched.values():
                for sock in socks:
                    _shut(sock)  # the thread that reads it closes it (release)

    def release(self) -> None:
        """Close this thread's duplicates: its exchange is over (a duplicate left open
        would hold the connection open after urllib closed its own socket)."""
        with self._lock:
            for sock in self._watched.pop(threading.get_ident(), []):
                sock.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by its peer, or not connected
        sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTP(urllib.request.HTTPHandler):
    def __init__(self, exchange: Exchange) -> None:
        super().__init__()
        self.exchange = exchange

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_connection(http.client.HTTPConnection, self.exchange), req)


class _WatchedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, exchange: Exchange) -> None:
        super().__init__()
        self.exchange = exchange

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_connection(http.client.HTTPSConnection, self.exchange), req)


def _connection(
    kind: type[http.client.HTTPConnection], exchange: Exchange
) -> Callable[..., http.client.HTTPConnection]:
    """``kind`` whose sockets (a proxy's tunnel too) are made by ``exchange``."""

    def make(*args: Any, **kwargs: Any) -> http.client.HTTPConnection:
        conn = kind(*args, **kwargs)
        conn._create_connection = exchange.connect  # type: ignore[attr-defined]
        return conn

    return make


def check(roster: Roster, agents: list[str] | None = None) -> list[Problem]:
    """Check each distinct endpoint and key the agents would use, once, all at the same
    time; one with no verdict within CHECK_DEADLINE_S of the start is a problem."""
    deadline_s = CHECK_DEADLINE_S
    groups: dict[tuple[str, str, str], list[str]] = {}
    envs: dict[tuple[str, str, str], dict[str, str]] = {}
    for name, spec in roster.agents.items():
        if agents and name not in agents:
            continue
        env = {**os.environ, **spec.env}
        key = (
            Endpoint.of(env).url,
            env.get("ANTHROPIC_API_KEY", ""),
            env.get("ANTHROPIC_AUTH_TOKEN", ""),
        )
        groups.setdefault(key, []).append(name)
        envs[key] = env
    keys = list(groups)
    exchange = Exchange(time.monotonic() + deadline_s)
    try:
        verdicts = _at_once([_verdict(envs[key], exchange) for key in keys], deadline_s)
    finally:
        exchange.cut()  # the late ones' threads end now, not when their endpoint stops
    problems = []
    for key, verdict in zip(keys, verdicts, strict=True):
        if verdict is None or isinstance(verdict.exception(), _OutOfTime):
            # no verdict in time (still connecting, or answering slowly)
            reason: str | None = (
                f"no answer within {deadline_s:g}s (the model check's limit, all endpoints "
                "checked at once); --no-model-check skips the check"
            )
        else:
            try:
                reason = verdict.result()
            except Exception as exc:  # anything a hostile answer raises: that agent's problem
                reason = f"the check failed ({type(exc).__name__}: {exc})"
        if reason:
            problems.append(Problem(tuple(groups[key]), key[0], _shown(reason)))
    return problems


class _OutOfTime(Exception):
    """A check ended by the deadline, not by its endpoint: no verdict."""


def _verdict(env: Mapping[str, str], exchange: Exchange) -> Callable[[], str | None]:
    def verdict() -> str | None:
        try:
            reason = unreachable(env, exchange.left(CONNECT_TIMEOUT_S)) or rejected_key(
                env, exchange
            )
        finally:
            exchange.release()
        if reason is not None and exchange.over():
            # Its timeouts, no longer than the time left, end at the deadline: an endpoint
            # silent until then came in as `no answer to GET /v1/models (timed out)` (or
            # `no answer from HOST:PORT within 0.03s`, a connect begun late), most often
            # before the check's own `no answer within 15s` (found by review).
            raise _OutOfTime
        return reason

    return verdict


def _at_once(
    calls: list[Callable[[], str | None]], deadline_s: float
) -> list[Future[str | None] | None]:
    """Run ``calls`` in up to CHECKS_AT_ONCE daemon threads; each call's finished future,
    or None for one not finished ``deadline_s`` from now (its thread ends once the check
    cuts its connection, Exchange.cut; daemon, it holds no exit up, and it writes nothing
    but its own future)."""
    futures: list[Future[str | None]] = [Future() for _ in calls]
    todo = iter(zip(calls, futures, strict=True))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                item = next(todo, None)
            if item is None:
                return
            call, future = item
            if not future.set_running_or_notify_cancel():
                continue  # past the deadline before it began
            try:
                future.set_result(call())
            except BaseException as exc:  # handed to whoever reads the result
                future.set_exception(exc)

    for _ in range(min(len(calls), CHECKS_AT_ONCE)):
        threading.Thread(target=work, name="octy-model-check", daemon=True).start()
    done, late = wait(futures, timeout=deadline_s)
    for future in late:
        future.cancel()  # one not begun is not begun now
    return [f if f in done else None for f in futures]


def start_check(roster: Roster, agents: list[str] | None = None) -> Future[list[Problem]]:
    """:func:`check` in a thread, begun now and read later. ``up`` begins it before it
    imports the supervisor: the check waits on the network (a TCP connect, then a TLS
    handshake and ``GET /v1/models``) while importing the SDK keeps the CPU busy for half a
    second or more (issue 14.5), instead of one after the other before any agent starts."""
    future: Future[list[Problem]] = Future()

    def run() -> None:
        try:
            future.set_result(check(roster, agents))
        except BaseException as exc:  # handed to whoever reads the result
            future.set_exception(exc)

    threading.Thread(target=run, name="octy-model-check", daemon=True).start()
    return future


def _shown(reason: str) -> str:
    """A reason as a terminal shows it: an endpoint's reason phrase, error message or
    non-HTTP status line is its own text (`\x1b[2J` cleared the screen of `up`), escaped
    and cut to one short line."""
    from orchestrator.redact import escape_controls  # noqa: PLC0415 - only with a problem

    text = escape_controls(reason)
    return text if len(text) <= 300 else text[:299] + "…"


def _proxied(endpoint: Endpoint, env: Mapping[str, str]) -> bool:
    names: tuple[str, ...] = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
    if endpoint.url.startswith("http:"):
        names += ("HTTP_PROXY", "http_proxy")
    if not any(env.get(n) for n in names):
        return False
    bypass = ",".join(env.get(n, "") for n in ("NO_PROXY", "no_proxy"))
    entries = [h.strip().lower() for h in bypass.split(",") if h.strip()]
    host = endpoint.host.lower()
    # A name and its subdomains, as urllib reads NO_PROXY (proxy_bypass_environment):
    # `ple.com` is not `example.com`. A bare suffix match took it for bypassed and looked
    # the name up directly, where only the proxy may resolve it (`up` refused the team).
    bypassed = [e.removeprefix("*").lstrip(".") for e in entries]
    return not ("*" in entries or any(host == b or host.endswith("." + b) for b in bypassed if b))


def _api_message(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read(4096) or b"{}")
        return str(body["error"]["message"])[:200]
    except (ValueError, KeyError, TypeError, OSError):
        return exc.reason if isinstance(exc.reason, str) else "refused"
