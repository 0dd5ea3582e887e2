"""The model check's host name lookup, bounded. getaddrinfo cannot be interrupted: a
resolver that never answers held `up`'s check until its 15 s deadline, said as "no answer
within 15s", and held the runner's check of an endpoint its CLI got no answer from
(preflight.unreachable, which has no deadline of its own) for as long as the resolver
took. The lookup now runs in a daemon thread, given up after the connect timeout.

A resolver that never answers, for real and for these processes only: the hosts file
(`hosts: files dns`, read first) replaced, in a private mount namespace made by bwrap,
by a FIFO that no one writes (opening it waits for a writer). No machine-wide change."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_runner import CLI

from orchestrator import preflight

SAFETY_S = 60  # a safety net for a wedged process, not a measurement


def _bwrap_works() -> bool:
    if shutil.which("bwrap") is None:
        return False
    done = subprocess.run(
        ["bwrap", "--dev-bind", "/", "/", "true"], capture_output=True, check=False
    )
    return done.returncode == 0


@pytest.fixture
def hanging_hosts(tmp_path: Path) -> Iterator[list[str]]:
    """The command prefix that runs a program with a hosts file that never answers."""
    if not _bwrap_works():
        pytest.skip("bwrap cannot make a mount namespace here")
    fifo = tmp_path / "hosts.fifo"
    os.mkfifo(fifo)
    yield [
        "bwrap",
        "--die-with-parent",
        "--dev-bind",
        "/",
        "/",
        "--bind",
        str(fifo),
        "/etc/hosts",
        "--",
    ]
    # A reader still waiting (a lookup's thread in a process still alive) is let go.
    with contextlib.suppress(OSError):  # no reader left
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def _env(tmp_path: Path, **more: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "ANTHROPIC_API_KEY": "test",
        **more,
    }


def test_up_says_the_lookup_got_no_answer(hanging_hosts: list[str], tmp_path: Path) -> None:
    (tmp_path / "agents.yaml").write_text("agents:\n  a:\n    prompt: A.\n", encoding="utf-8")
    env = _env(tmp_path, ANTHROPIC_BASE_URL="http://hang.invalid:8080")
    done = subprocess.run(
        [*hanging_hosts, str(CLI), "up"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=SAFETY_S,
        check=False,
    )
    assert done.returncode == 1, done
    assert (
        "  a: http://hang.invalid:8080: cannot resolve hang.invalid (DNS: no answer within "
        f"{preflight.CONNECT_TIMEOUT_S:g}s)"
    ) in done.stderr.splitlines(), done.stderr
    assert "Traceback" not in done.stderr


def test_the_runners_check_returns_with_the_lookup_still_waiting(
    hanging_hosts: list[str], tmp_path: Path
) -> None:
    """unreachable(), as the runner calls it: it never returned (the resolver never
    answers), so the turn it was asked for waited on it. A name, a numeric address and
    the same name again (one lookup for both: a hanging one is not started twice)."""
    code = (
        "import threading\n"
        "from orchestrator.preflight import unreachable\n"
        "for url in ('http://hang.invalid:8080', 'http://127.0.0.1:9', "
        "'http://hang.invalid:8080'):\n"
        "    print(unreachable({'ANTHROPIC_BASE_URL': url}, 0.5))\n"
        "print(sum(t.name == 'octy-lookup' for t in threading.enumerate()))\n"
    )
    done = subprocess.run(
        [*hanging_hosts, sys.executable, "-c", code],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=SAFETY_S,
        check=False,
    )
    assert done.returncode == 0, done
    assert done.stdout.splitlines() == [
        "cannot resolve hang.invalid (DNS: no answer within 0.5s)",
        "connection refused at 127.0.0.1:9",
        "cannot resolve hang.invalid (DNS: no answer within 0.5s)",
        "1",
    ]


def test_the_check_names_the_host_it_connects_to_by_address(
    scripted_model: Any, tmp_path: Path
) -> None:
    """Connected to the address the lookup gave, the check's request still names the
    host: `Host: localhost:PORT` (TLS's server name comes from the same field)."""
    model = scripted_model({"rules": []})
    port = model.base_url.rpartition(":")[2]
    url = f"http://localhost:{port}"
    env = {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "test"}
    exchange = preflight.Exchange(10**9)
    try:
        assert preflight.unreachable(env) is None
        assert preflight.rejected_key(env, exchange) is None
    finally:
        exchange.release()
    (seen,) = [r for r in model.requests if r["path"] == "/v1/models"]
    assert seen["headers"]["host"] == f"localhost:{port}"


def test_a_lookup_with_no_thread_to_spare_leaves_nothing_behind(tmp_path: Path) -> None:
    """With no thread to spare (RLIMIT_NPROC of 1, as a user it binds: root is not),
    `can't start new thread` raised out of unreachable(), and the lookup's Future, never
    to be answered, stayed: once threads were free again, every check of that host said
    "cannot resolve 127.0.0.1 (DNS: no answer within 0.5s)", for good. Now it is looked
    up in the caller's thread then, and nothing is left."""
    code = (
        "import encodings.idna, os, resource\n"  # (a lookup imports it: before the setuid)
        "from orchestrator.preflight import unreachable\n"
        "if os.getuid() == 0:\n"
        "    os.setgid(65534)\n"
        "    os.setuid(65534)\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)\n"
        "resource.setrlimit(resource.RLIMIT_NPROC, (1, hard))\n"
        "env = {'ANTHROPIC_BASE_URL': 'http://127.0.0.1:9'}\n"
        "print(unreachable(env, 0.5))\n"
        "resource.setrlimit(resource.RLIMIT_NPROC, (soft, hard))\n"
        "print(unreachable(env, 0.5))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=SAFETY_S,
        check=False,
    )
    assert done.returncode == 0, done
    assert done.stdout.splitlines() == ["connection refused at 127.0.0.1:9"] * 2


def test_an_address_that_drops_packets_leaves_the_next_its_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A name with two addresses, the first dropping packets (an IPv6 route to nowhere,
    common): socket.create_connection gave each address the whole timeout; connect() gave
    the first the whole deadline and the next 10 ms, which no connection over a real
    network makes (the model check would then refuse a reachable endpoint). Each address
    tried now gets an equal share of what is left, and the connected socket the whole
    timeout for what follows, as create_connection leaves it. The dropping address is a
    real listener whose accept queue is full (Linux drops the SYNs)."""
    full = socket.create_server(("127.0.0.1", 0), backlog=0)
    good = socket.create_server(("127.0.0.1", 0))
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(full.getsockname())
        fillers.append(filler)
    found = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", full.getsockname()),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", good.getsockname()),
    ]
    monkeypatch.setattr(preflight, "resolve", lambda host, port, timeout_s: found)
    given: list[float | None] = []

    class Recording(socket.socket):
        def settimeout(self, value: float | None) -> None:
            given.append(value)
            super().settimeout(value)

    monkeypatch.setattr(preflight.socket, "socket", Recording)
    sock = preflight.connect(("dual.example", 443), 2.0)
    monkeypatch.undo()
    try:
        assert sock.getpeername() == good.getsockname()
        first, second = given[0], given[1]
        assert first is not None
        assert second is not None
        assert first <= 1.0  # half of the deadline, two addresses to try
        assert second >= 0.5  # what the first left (about 1 s), not 10 ms
        assert sock.gettimeout() == 2.0
    finally:
        sock.close()
        for s in (*fillers, full, good):
            s.close()
