"""Team benchmark: start-up, restart, ask->reply overhead, idle cost (issue 4).

    python bench/team.py [--quick] [--json-out FILE]

Runs `octy-orchestrate up` as a subprocess with the real bundled claude CLI
against the scripted model, which answers at once. Measured from the outside:
the queue rows' timestamps (created_at, claimed_at), the supervisor's JSON log
events (logs/supervisor.jsonl), the scripted model's request times, psutil.
One thing cannot be seen from outside: when the CLI's MCP tool call reaches
the supervisor. For the ask->reply team only, the supervisor is started
through this file (``--traced-supervisor``), which adds a log event where the
SDK receives and answers each tool call and where our ``ask`` handler starts and
returns (so the SDK's own MCP dispatch can be told apart from our code), and then
runs the unchanged CLI.

A program, not a test: nothing here asserts on time; each target of issue 4
is printed as met or not met.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# `python bench/team.py` puts bench/ first on sys.path, and bench/queue.py would
# then shadow the standard library's queue (logging.handlers imports it).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))
# --ab: the "before" supervisor imports orchestrator from another checkout of the tree.
_TREE = os.environ.get("OCTY_BENCH_TREE") if len(sys.argv) > 1 else None
if _TREE and sys.argv[1] == "--traced-supervisor":
    sys.path.insert(0, _TREE)

import argparse  # noqa: E402  (after the sys.path fix above)
import contextlib  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from datetime import datetime  # noqa: E402
from typing import Any  # noqa: E402

import psutil  # noqa: E402
import yaml  # noqa: E402

from bench.team_backends import BACKENDS, measure_backends, report_backends  # noqa: E402
from orchestrator.mailbox import USER, Mailbox  # noqa: E402
from orchestrator.relay import text_of  # noqa: E402
from orchestrator.scripted_model import (  # noqa: E402
    RecordedRequest,
    ScriptedModel,
    last_user_text,
    system_prompt,
)
from orchestrator.session_options import bundled_cli  # noqa: E402

OVERHEAD_MS = 10.0  # ours per ask->reply
READY_FACTOR = 2.0  # 10 agents ready within this many times one agent
FLOOR_FACTOR = 1.10  # issue 14.5: 10 agents ready within 10 % of the CPU floor of the same run
PYTHON_START_S = 0.4  # issue 14.5: up -> supervisor_started
RESTART_S = 1.0  # a killed agent ready again within this plus its backoff
IDLE_PCT = 1.0  # supervisor idle CPU, % of one core
TOP_PCT = 1.0  # `octy-orchestrate top` watching 10 idle agents, % of one core (issue 10)
TOP_SIZE = (120, 40)  # the terminal top draws in: columns, lines
BACKOFF = {"initial": "20ms", "max": "20ms"}  # tiny: restart time is then ours and the CLI's
MS = 1000.0


def _who(agent: str) -> str:
    return f"You are the agent '{agent}'"


SCRIPT: dict[str, Any] = {  # alpha asks beta with mcp__octy__ask, answers with beta's answer
    "rules": [
        {"agent": _who("alpha"), "tool_result": r"(B-\d+)", "text": "A got {1}"},
        {
            "agent": _who("alpha"),
            "match": r"question (\d+)",
            "tool_use": {"name": "mcp__octy__ask", "input": {"to": "beta", "message": "sub {1}"}},
        },
        {"agent": _who("beta"), "match": r"sub (\d+)", "text": "B-{1}"},
    ],
    "default": {"text": "ok"},
}


def cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


# --- one team ------------------------------------------------------------------------


class Team:
    """agents.yaml in its own folder, `up` as a subprocess, state read from the outside."""

    def __init__(
        self,
        folder: Path,
        env: dict[str, str],
        agents: dict[str, dict[str, Any]],
        queue: dict[str, Any] | None = None,
    ):
        folder.mkdir(parents=True)
        self.folder = folder
        self.env = env
        self.db = folder / "queue" / "team.db"
        self.log = folder / "logs" / "supervisor.jsonl"
        roster = {
            "name": "bench",
            "defaults": {"backoff": BACKOFF, "max_restarts": 1000},
            "agents": {n: {"prompt": f"You are {n}.", **spec} for n, spec in agents.items()},
        }
        self.queue = queue  # the roster's `queue:` (NATS), None for the SQLite file
        if queue is not None:
            roster = {"queue": queue, **roster}
        (folder / "agents.yaml").write_text(yaml.safe_dump(roster, sort_keys=False))
        self.names = list(agents)
        self.proc: subprocess.Popen[bytes] | None = None
        self._mailbox: Any = None

    def up(self, *, traced: bool = False) -> float:
        """Start the supervisor; return the wall-clock time just before the exec."""
        launcher = [str(Path(__file__).resolve()), "--traced-supervisor"] if traced else []
        cmd = [sys.executable, *(launcher or ["-m", "orchestrator.cli"])]
        cmd += ["up", "-f", "agents.yaml", "--no-color"]
        with (self.folder / "up.out").open("wb") as out:
            started = time.time()
            self.proc = subprocess.Popen(
                cmd, cwd=self.folder, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return started

    def mailbox(self) -> Any:
        if self._mailbox is None:
            if self.queue is None:
                self._mailbox = Mailbox(self.db)
            else:
                from orchestrator.mailbox.nats import NatsConfig
                from orchestrator.mailbox.nats.blocking import BlockingNatsMailbox

                self._mailbox = BlockingNatsMailbox(
                    NatsConfig(
                        tuple(self.queue["servers"]),
                        namespace=self.queue["namespace"],
                        replicas=self.queue["replicas"],
                    )
                )
        return self._mailbox

    def close_mailbox(self) -> None:
        if self._mailbox is not None:
            self._mailbox.close()
            self._mailbox = None

    def wait_for(self, check: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"supervisor exited waiting for {what}:\n{self.output()}")
            value = check()
            if value:
                return value
            time.sleep(0.01)
        raise RuntimeError(f"timed out waiting for {what}:\n{self.output()}")

    def states(self) -> dict[str, tuple[str, int | None]]:
        if not self.log.exists():  # the supervisor logs before it creates the database
            return {}
        return {a.name: (a.state, a.pid) for a in self.mailbox().agents()}

    def wait_ready(self) -> dict[str, int]:
        def ready() -> dict[str, int] | None:
            st = self.states()
            pids = {n: st[n][1] or 0 for n in self.names if n in st and st[n][0] == "ready"}
            return pids if len(pids) == len(self.names) and all(pids.values()) else None

        pids: dict[str, int] = self.wait_for(ready, "every agent ready")
        return pids

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                e = json.loads(line)
                # The bench's own markers carry the time they mark (logged later: see mark()).
                e["ts"] = e.get("at") or datetime.fromisoformat(str(e["timestamp"])).timestamp()
                found.append(e)
        return sorted(found, key=lambda e: e["ts"])

    def wait_logged(self, check: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        """The log, once ``check`` holds for it (a log line follows its registry write)."""

        def logged() -> list[dict[str, Any]] | None:
            ev = self.events()
            return ev if check(ev) else None

        found: list[dict[str, Any]] = self.wait_for(logged, "log events", timeout=10)
        return found

    def output(self) -> str:
        path = self.folder / "up.out"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> float:
        """SIGTERM and wait; seconds until the supervisor exited."""
        self.close_mailbox()
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        return time.monotonic() - started


class Bench:
    """The scripted model, one HOME for every CLI, a temporary folder per team."""

    def __init__(self, base: Path, model: ScriptedModel) -> None:
        self.base = base
        self.model = model
        home = base / "home"
        home.mkdir(mode=0o700)
        self.env = {
            **os.environ,
            **model.cli_env(),
            "HOME": str(home),
            "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "CLAUDE_CODE_MAX_RETRIES": "1",
            # Compiled bytecode, as an installed package has it (pip compiles a wheel; an
            # editable install writes __pycache__ on first run). This machine's shells set
            # PYTHONDONTWRITEBYTECODE=1, which made every `up` compile the package from
            # source; `python_floor` shows what that costs. The warm-up run compiles.
            "PYTHONPYCACHEPREFIX": str(base / "pycache"),
        }
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self._count = 0

    @contextlib.contextmanager
    def team(
        self, agents: dict[str, dict[str, Any]], queue: dict[str, Any] | None = None
    ) -> Iterator[Team]:
        self._count += 1
        team = Team(self.base / f"team{self._count}", self.env, agents, queue)
        try:
            yield team
        finally:
            team.stop()


# --- start-up and idle ---------------------------------------------------------------


@dataclass
class StartUp:
    agents: int
    ready_s: float  # up -> every agent ready
    supervisor_s: float  # up -> supervisor_started (interpreter, imports, database)
    connect_s: list[float]  # per agent: state starting -> ready (claude spawn + SDK connect)
    cli_cpu_s: list[float]  # per claude process: CPU it used to get ready
    supervisor_cpu_s: float  # the supervisor's CPU until every agent was ready
    stop_s: float  # SIGTERM -> exit
    # up -> the first agent's `starting`: the Python start every claude waits for (before
    # issue 14.5's background import, supervisor_started + a few ms; after it, the SDK's
    # import is over by then, not by supervisor_started)
    launch_s: float = float("nan")
    # per claude process: CPU of the processes it started (exited ones, reaped: `npm root
    # -g`, `bwrap --version`; live ones: socat), the CLI's sandbox start
    cli_children_cpu_s: list[float] = field(default_factory=list)


def children_cpu_s(proc: psutil.Process) -> float:
    """CPU of the processes ``proc`` started: those it has reaped, and those still running."""
    with contextlib.suppress(psutil.NoSuchProcess):
        t = proc.cpu_times()
        return t.children_user + t.children_system + cpu_s(proc.children(recursive=True))
    return 0.0


def measure_startup(
    bench: Bench, n: int, idle_s: float, tree: Path | None = None
) -> tuple[StartUp, dict[str, Any] | None]:
    names = [f"a{i}" for i in range(1, n + 1)]
    with bench.team({name: {} for name in names}) as team:
        if tree is not None:  # --ab-startup: `up` runs the other checkout's orchestrator
            team.env = {**team.env, "PYTHONPATH": str(tree)}
        t0 = team.up()
        pids = team.wait_ready()
        assert team.proc is not None
        sup_cpu = cpu_s([psutil.Process(team.proc.pid)])
        cli_cpu = [cpu_s([psutil.Process(p)]) for p in pids.values()]
        kids_cpu = [children_cpu_s(psutil.Process(p)) for p in pids.values()]

        def all_ready(ev: list[dict[str, Any]]) -> bool:
            return {e.get("agent") for e in ev if e.get("state") == "ready"} >= set(names)

        ev = [e for e in team.wait_logged(all_ready) if e["event"] == "state"]
        ready = {e["agent"]: e["ts"] for e in ev if e["state"] == "ready"}
        starting = {e["agent"]: e["ts"] for e in ev if e["state"] == "starting"}
        sup = next(e["ts"] for e in team.events() if e["event"] == "supervisor_started")
        idle = measure_idle(team, list(pids.values()), idle_s) if idle_s else None
        stop_s = team.stop()
    connect = [ready[a] - starting[a] for a in names]
    launch = min(starting.values()) - t0
    sample = StartUp(
        n, max(ready.values()) - t0, sup - t0, connect, cli_cpu, sup_cpu, stop_s, launch, kids_cpu
    )
    return sample, idle


def python_floor(env: dict[str, str], runs: int = 5) -> dict[str, float]:
    """Median wall seconds of fresh interpreters, in the supervisors' environment. Since
    issue 14.5 the SDK is imported in a background thread once the database is open, so
    `up -> supervisor_started` rests on what `up` imports itself, and the first claude's
    start on that plus the SDK (its ``__init__`` imports ``mcp.types`` and ``mcp.server``;
    not ours to change) and the runner."""
    cases = {
        "python -c pass": "pass",
        "import claude_agent_sdk": "import claude_agent_sdk",
        "import what up imports": "import orchestrator.cli.team_verbs, orchestrator.supervisor, "
        "orchestrator.logconfig",
        "... and what agents need (the SDK, the runner)": "import orchestrator.cli.team_verbs, "
        "orchestrator.supervisor, orchestrator.logconfig, orchestrator.runner",
    }
    # As this machine's shells: the standard library's and the SDK's bytecode as installed,
    # none written for the package (unless something else ran without the setting).
    no_bytecode = {**env, "PYTHONDONTWRITEBYTECODE": "1"}
    no_bytecode.pop("PYTHONPYCACHEPREFIX", None)
    walls: dict[str, list[float]] = {}
    for _ in range(runs):
        for name, code in cases.items():
            for label, e in ((name, env), (f"{name}, no bytecode", no_bytecode)):
                if name == "python -c pass" and e is no_bytecode:
                    continue
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], env=e, check=True)
                walls.setdefault(label, []).append(time.perf_counter() - t0)
    return {k: _med(v) for k, v in walls.items()}


def measure_idle(team: Team, pids: list[int], seconds: float) -> dict[str, Any]:
    """CPU of the supervisor (and of the claude processes) over ``seconds`` with nothing
    to do, and their memory. The bench leaves the team alone meanwhile."""
    assert team.proc is not None
    sup = psutil.Process(team.proc.pid)
    clis = [psutil.Process(p) for p in pids]
    clis += [c for p in clis for c in p.children(recursive=True)]
    team.close_mailbox()
    time.sleep(3.0)  # start-up work (first heartbeats, CLI warm-up) is over
    w0, s0, c0 = time.monotonic(), cpu_s([sup]), cpu_s(clis)
    time.sleep(seconds)
    w1, s1, c1 = time.monotonic(), cpu_s([sup]), cpu_s(clis)
    sup_mem = sup.memory_full_info()
    cli_mem = [p.memory_full_info() for p in clis]
    top = measure_top(team, sup, seconds)
    return {
        **top,
        "agents": len(pids),
        "seconds": round(w1 - w0, 2),
        "supervisor_cpu_pct": 100 * (s1 - s0) / (w1 - w0),
        "claude_cpu_pct_total": 100 * (c1 - c0) / (w1 - w0),
        "supervisor_rss_mb": sup_mem.rss / 2**20,
        "supervisor_uss_mb": sup_mem.uss / 2**20,
        "supervisor_threads": sup.num_threads(),
        "claude_processes": len(clis),
        "claude_rss_mb_total": sum(m.rss for m in cli_mem) / 2**20,
        "claude_pss_mb_total": sum(m.pss for m in cli_mem) / 2**20,
    }


def measure_top(team: Team, sup: psutil.Process, seconds: float) -> dict[str, Any]:
    """CPU of `octy-orchestrate top` (default refresh, 1 s) watching the idle team in a
    pseudo-terminal, as a person would run it, and the supervisor's CPU meanwhile (top
    only reads the database and the logs: it should not wake the team)."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    master, slave = pty.openpty()
    cols, lines = TOP_SIZE
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, cols, 0, 0))
    env = {**team.env, "TERM": "xterm-256color", "COLORTERM": "truecolor"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "top"],
        cwd=team.folder,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    drawn = bytearray()

    def drain() -> None:  # a terminal reads what top writes, or top would block
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            drawn.extend(data)
            del drawn[:-65536]

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        last = team.names[-1].encode()
        team.wait_for(lambda: last in drawn and b"supervisor" in drawn, "top's first screen")
        top = psutil.Process(proc.pid)
        time.sleep(3.0)  # past start-up (imports, the first read of the logs)
        w0, t0, s0 = time.monotonic(), cpu_s([top]), cpu_s([sup])
        time.sleep(seconds)
        w1, t1, s1 = time.monotonic(), cpu_s([top]), cpu_s([sup])
        rss = top.memory_info().rss
    finally:
        with contextlib.suppress(OSError):
            os.write(master, b"q")
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        os.close(master)
        reader.join(5)
    return {
        "top_seconds": round(w1 - w0, 2),
        "top_cpu_pct": 100 * (t1 - t0) / (w1 - w0),
        "top_rss_mb": rss / 2**20,
        "supervisor_cpu_pct_with_top": 100 * (s1 - s0) / (w1 - w0),
        "top_terminal": f"{cols}x{lines}",
    }


# --- restart -------------------------------------------------------------------------


@dataclass
class Restart:
    backoff_s: float  # the delay the supervisor chose (logged with "restarting")
    total_s: float  # SIGKILL -> ready again
    parts: dict[str, float]


def measure_restart(team: Team, agent: str) -> Restart:
    old = team.states()[agent][1]
    assert old
    killed = time.time()
    os.kill(old, signal.SIGKILL)
    team.wait_for(
        lambda: (s := team.states()[agent])[0] == "ready" and s[1] != old, f"{agent} back"
    )

    def mine(ev: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in ev if e["ts"] >= killed and e.get("agent") == agent]

    ev = mine(team.wait_logged(lambda ev: any(e.get("state") == "ready" for e in mine(ev))))

    def first(event: str, state: str | None = None) -> dict[str, Any]:
        return next(e for e in ev if e["event"] == event and (state is None or e["state"] == state))

    ended = first("session_ended")["ts"]
    backoff = first("state", "backoff")["ts"]
    starting = first("state", "starting")["ts"]
    ready = first("state", "ready")["ts"]
    return Restart(
        float(first("restarting")["backoff_s"]),
        ready - killed,
        {
            "kill -> session end noticed": ended - killed,
            "session end -> backoff state": backoff - ended,
            "backoff -> starting (the backoff sleep)": starting - backoff,
            "starting -> ready (spawn, connect, resume)": ready - starting,
        },
    )


# --- ask -> reply --------------------------------------------------------------------

OURS = (
    "user request: created -> claimed by alpha",
    "alpha: claim -> query sent to its CLI",
    "ask tool: MCP call received -> request committed",
    "ask request: created -> claimed by beta",
    "beta: claim -> query sent to its CLI",
    "beta: result received -> reply committed",
    "ask tool: reply committed -> tool result sent",
    "alpha: result received -> reply committed",
)
CLI = ("beta: query sent -> result received", "alpha: the same, minus the ask tool call")
SDK = (  # parts of the two "ask tool" segments above that are the SDK's MCP dispatch
    "ask tool: MCP call received -> our ask handler starts",
    "ask tool: our ask handler returns -> tool result sent",
)
INFO = (
    "alpha: query sent -> ask tool call received",
    "beta: query sent -> its model request",
    "beta: the CLI's own duration_ms",
    "alpha: the CLI's own duration_ms (includes the ask)",
    "round trip: request created -> reply committed",
)


def round_trip(team: Team, i: int) -> str:
    mb = team.mailbox()
    request = mb.request(USER, "alpha", {"text": f"question {i}"})
    reply = mb.wait_for_reply(request.id, 60)
    if text_of(reply.body) != f"A got B-{i}":
        raise RuntimeError(f"unexpected reply {reply.body!r}")
    return request.id


def split_round_trip(
    team: Team, ev: list[dict[str, Any]], model: list[RecordedRequest], rid: str, i: int
) -> dict[str, float]:
    """One ask->reply from queue rows, log events and the model's request times (ms)."""
    mb = team.mailbox()
    req, resp = mb.get(rid), mb.find_reply(rid)
    sub = next(m for m in mb.related(rid) if m.cause_id == rid and m.kind == "request")
    sub_resp = mb.find_reply(sub.id)
    if resp is None or sub_resp is None or req.claimed_at is None or sub.claimed_at is None:
        raise RuntimeError(f"round trip {rid} is incomplete in the queue")

    def at(t: float, event: str, agent: str | None = None, **match: Any) -> dict[str, Any]:
        return next(
            e
            for e in ev
            if e["ts"] >= t
            and e["event"] == event
            and (agent is None or e.get("agent") == agent)
            and all(e.get(k) == v for k, v in match.items())
        )

    a_busy = at(at(0, "received", "alpha", message_id=rid)["ts"], "state", "alpha", state="busy")
    mcp_in = at(a_busy["ts"], "bench_mcp_call", phase="in", tool="ask")["ts"]
    mcp_out = at(sub_resp.created_at, "bench_mcp_call", phase="written", tool="ask")["ts"]
    handler_in = at(mcp_in, "bench_ask_handler", phase="in")["ts"]
    handler_out = at(sub_resp.created_at, "bench_ask_handler", phase="out")["ts"]
    a_turn = at(mcp_out, "turn", "alpha")
    b_busy = at(at(0, "received", "beta", message_id=sub.id)["ts"], "state", "beta", state="busy")
    b_turn = at(b_busy["ts"], "turn", "beta")
    # took_s: the runner's query sent -> ResultMessage received, right after the busy event.
    a_result = a_busy["ts"] + a_turn["took_s"]
    b_result = b_busy["ts"] + b_turn["took_s"]
    asked = re.compile(rf"\bsub {i}\b")
    b_model = next(
        r["time"]
        for r in model
        if _who("beta") in system_prompt(r) and asked.search(last_user_text(r))
    )
    values = (
        req.claimed_at - req.created_at,
        a_busy["ts"] - req.claimed_at,
        sub.created_at - mcp_in,
        sub.claimed_at - sub.created_at,
        b_busy["ts"] - sub.claimed_at,
        sub_resp.created_at - b_result,
        mcp_out - sub_resp.created_at,
        resp.created_at - a_result,
        b_turn["took_s"],
        a_turn["took_s"] - (mcp_out - mcp_in),
        handler_in - mcp_in,
        mcp_out - handler_out,
        mcp_in - a_busy["ts"],
        b_model - b_busy["ts"],
        b_turn["duration_ms"] / MS,
        a_turn["duration_ms"] / MS,
        resp.created_at - req.created_at,
    )
    return {k: v * MS for k, v in zip((*OURS, *CLI, *SDK, *INFO), values, strict=True)}


def measure_asks(bench: Bench, count: int, kills: int, tree: Path | None = None) -> dict[str, Any]:
    with bench.team({"alpha": {}, "beta": {}}) as team:
        if tree is not None:  # --ab: this supervisor runs the other checkout's orchestrator
            team.env = {**team.env, "OCTY_BENCH_TREE": str(tree)}
        team.up(traced=True)
        pids = team.wait_ready()
        assert team.proc is not None
        for i in range(2):  # warm-up: a session's first turns do more
            round_trip(team, 1000 + i)
        procs = {
            "supervisor": [psutil.Process(team.proc.pid)],
            "claude": [psutil.Process(p) for p in pids.values()],
            "bench + scripted model": [psutil.Process()],
        }
        before = {k: cpu_s(v) for k, v in procs.items()}
        ids = []
        for i in range(count):
            ids.append((round_trip(team, i), i))
            time.sleep(0.05)
        cpu = {k: (cpu_s(v) - before[k]) * MS / count for k, v in procs.items()}
        last = team.mailbox().find_reply(ids[-1][0])
        assert last is not None
        asks = count + 2  # one ask per round trip, warm-ups included

        def complete(ev: list[dict[str, Any]]) -> bool:
            # Alpha's last turn is logged after its reply is committed; the bench's own
            # markers are logged a little later than what they mark (mark()).
            written = sum(e["event"] == "bench_mcp_call" and e["phase"] == "written" for e in ev)
            return written >= asks and any(
                e["event"] == "turn" and e["ts"] > last.created_at for e in ev
            )

        ev = team.wait_logged(complete)
        trips = [split_round_trip(team, ev, bench.model.requests, rid, i) for rid, i in ids]
        restarts = []
        for _ in range(kills):
            restarts.append(measure_restart(team, "beta"))
            time.sleep(0.3)
        round_trip(team, 2000)  # and it still answers
    return {"round_trips": trips, "cpu_ms_per_round_trip": cpu, "restarts": restarts}


# --- report --------------------------------------------------------------------------


def _med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    cli = bundled_cli() or "claude"
    version = subprocess.run([cli, "--version"], capture_output=True, text=True, check=False)
    return {
        "cpus": str(os.cpu_count()),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "claude_cli": version.stdout.strip(),
    }


def busy_cpu_s() -> tuple[float, float]:
    """(CPU seconds the whole machine was busy, CPU seconds of this process and of every
    child it has waited for, which includes the supervisors and their claude processes)."""
    t = psutil.cpu_times()
    me = psutil.Process().cpu_times()
    return (
        t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0),
        me.user + me.system + me.children_user + me.children_system,
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def report_startup(results: dict[str, Any]) -> list[str]:
    out = [
        "## up -> every agent ready (seconds; medians over runs)",
        "agents runs  ready (min-max)    python+db  launch  connect/agent (max)  CPU: claude"
        " (+children)  supervisor  stop",
    ]
    ready = {}
    for n, runs in sorted(results["startup"].items(), key=lambda kv: int(kv[0])):
        r = [s["ready_s"] for s in runs]
        ready[int(n)] = _med(r)
        conn = [c for s in runs for c in s["connect_s"]]
        out.append(
            f"{int(n):>6} {len(runs):>4}  {_med(r):5.2f} ({min(r):.2f}-{max(r):.2f})"
            f"   {_med([s['supervisor_s'] for s in runs]):5.2f}"
            f"   {_med([_launch(s) for s in runs]):5.2f}"
            f"      {_med(conn):5.2f} ({max(conn):.2f})"
            f"       {_med([c for s in runs for c in s['cli_cpu_s']]):5.2f}"
            f" (+{_med([c for s in runs for c in s.get('cli_children_cpu_s', [])]):4.2f})"
            f"   {_med([s['supervisor_cpu_s'] for s in runs]):5.2f}"
            f"  {_med([s['stop_s'] for s in runs]):5.2f}"
        )
    if 1 in ready and len(ready) > 1:
        big = max(ready)
        ratio = ready[big] / ready[1]
        runs = results["startup"][str(big)]
        cpus = int(results["machine"]["cpus"])
        floor = _med([cpu_floor(s, cpus) for s in runs])
        with_children = _med([cpu_floor(s, cpus, children=True) for s in runs])
        out.append(
            f"CPU floor for {big} agents on {cpus} CPUs (the Python start until the first claude "
            f"starts, then the claude processes' CPU spread over every CPU): {floor:.2f} s; "
            f"{READY_FACTOR:g}x one agent is {READY_FACTOR * ready[1]:.2f} s"
        )
        out.append(
            f"  the same counting what each claude process starts (its sandbox start: npm root "
            f"-g, bwrap --version, socat): {with_children:.2f} s; ready = "
            f"{ready[big] / with_children:.2f}x that"
        )
        out.append(
            f"target: {big} agents ready in < {READY_FACTOR:g}x one agent: {ratio:.2f}x "
            f"({ready[big]:.2f} s vs {ready[1]:.2f} s) -> {verdict(ratio < READY_FACTOR)}"
        )
        out.append(
            f"target (issue 14.5): {big} agents ready within {FLOOR_FACTOR - 1:.0%} of that "
            f"floor: {ready[big]:.2f} s = {ready[big] / floor:.2f}x the floor -> "
            f"{verdict(ready[big] <= FLOOR_FACTOR * floor)}"
        )
    starts = [s["supervisor_s"] for runs in results["startup"].values() for s in runs]
    floor_s = results.get("python_floor") or {}
    if starts:
        start = _med(starts)
        out.append(
            f"target (issue 14.5): the supervisor's Python start (up -> supervisor_started) "
            f"< {PYTHON_START_S:g} s: {start:.2f} s (median of {len(starts)}) -> "
            f"{verdict(start < PYTHON_START_S)}"
        )
    if floor_s:
        out.append("fresh interpreters, same environment (median wall s):")
        out += [f"  {name:<48} {s:5.2f}" for name, s in floor_s.items()]
    return out


def _launch(sample: dict[str, Any]) -> float:
    """up -> the first claude starting (runs recorded before it was measured: the
    supervisor's start, which it then followed by a few ms)."""
    launch = sample.get("launch_s")
    return float(sample["supervisor_s"] if launch is None or math.isnan(launch) else launch)


def cpu_floor(sample: dict[str, Any], cpus: int, *, children: bool = False) -> float:
    """Issue 14.5's CPU floor of one start-up: the Python start every claude waits for, then
    the claude processes' CPU (and, with ``children``, their children's) over ``cpus``."""
    cpu = sum(sample["cli_cpu_s"]) + (sum(sample.get("cli_children_cpu_s", [])) if children else 0)
    return _launch(sample) + cpu / cpus


def report_asks(results: dict[str, Any]) -> list[str]:
    trips = results["round_trips"]
    out = [f"## ask -> reply between two agents ({len(trips)} round trips; median ms)"]

    def line(tag: str, key: str, xs: list[float]) -> None:
        out.append(f"  {tag:<5} {key:<52} {_med(xs):7.2f}")

    for key in OURS:
        line("ours", key, [t[key] for t in trips])
    ours = sorted(sum(t[k] for k in OURS) for t in trips)
    line("ours", "= our overhead per ask->reply", ours)
    for key in CLI:
        line("cli", key, [t[key] for t in trips])
    line("cli", "= CLI + scripted model", [sum(t[k] for k in CLI) for t in trips])
    for key in SDK:
        line("sdk", key, [t[key] for t in trips])
    line(
        "sdk",
        "= the SDK's MCP dispatch, inside our overhead",
        [sum(t[k] for k in SDK) for t in trips],
    )
    for key in INFO:
        line("info", key, [t[key] for t in trips])
    cpu = results["cpu_ms_per_round_trip"]
    out.append("  CPU per round trip (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))
    p90 = ours[int(0.9 * (len(ours) - 1))]
    out.append(
        f"target: our overhead per ask->reply < {OVERHEAD_MS:g} ms: median {_med(ours):.2f} ms "
        f"(p90 {p90:.2f}) -> {verdict(_med(ours) < OVERHEAD_MS)}"
    )
    return out


def report_restarts(results: dict[str, Any]) -> list[str]:
    rs = results["restarts"]
    out = [f"## SIGKILL of an idle agent's claude -> ready again ({len(rs)} kills; median s)"]
    for key in rs[0]["parts"]:
        out.append(f"  {key:<48} {_med([r['parts'][key] for r in rs]):6.3f}")
    out.append(f"  {'= kill -> ready':<48} {_med([r['total_s'] for r in rs]):6.3f}")
    out.append(
        f"  {'backoff chosen (roster 20ms, jitter x0.5-1)':<48} "
        f"{_med([r['backoff_s'] for r in rs]):6.3f}"
    )
    beyond = [r["total_s"] - r["backoff_s"] for r in rs]
    out.append(
        f"target: ready within {RESTART_S:g} s + backoff: {_med(beyond):.3f} s beyond the "
        f"backoff (worst {max(beyond):.3f}) -> {verdict(max(beyond) < RESTART_S)}"
    )
    return out


def report_idle(idle: dict[str, Any]) -> list[str]:
    pct = idle["supervisor_cpu_pct"]
    tick = 100 * 0.01 / idle["seconds"]  # Linux counts process CPU time in 10 ms ticks
    return [
        f"## {idle['agents']} agents ready and idle, {idle['seconds']} s",
        f"  supervisor: {pct:.2f}% of one core (+-{tick:.2f}: CPU time comes in 10 ms ticks); RSS "
        f"{idle['supervisor_rss_mb']:.1f} MB (USS {idle['supervisor_uss_mb']:.1f} MB); "
        f"{idle['supervisor_threads']} threads",
        f"  claude processes ({idle['claude_processes']}): {idle['claude_cpu_pct_total']:.2f}% "
        f"of one core together; RSS {idle['claude_rss_mb_total']:.0f} MB together "
        f"(PSS {idle['claude_pss_mb_total']:.0f} MB: the binary's pages are shared)",
        f"target: idle supervisor < {IDLE_PCT:g}% of a core: {pct:.2f}% -> "
        + (
            "BORDERLINE (within one tick)"
            if abs(pct - IDLE_PCT) <= tick
            else verdict(pct < IDLE_PCT)
        ),
        *report_top(idle),
    ]


def report_top(idle: dict[str, Any]) -> list[str]:
    if "top_cpu_pct" not in idle:
        return []
    pct = idle["top_cpu_pct"]
    tick = 100 * 0.01 / idle["top_seconds"]
    return [
        f"  top ({idle['top_terminal']}, refresh 1 s) watching them, {idle['top_seconds']} s: "
        f"{pct:.2f}% of one core (+-{tick:.2f}); RSS {idle['top_rss_mb']:.0f} MB; the "
        f"supervisor meanwhile: {idle['supervisor_cpu_pct_with_top']:.2f}%",
        f"target: top < {TOP_PCT:g}% of a core: {pct:.2f}% -> "
        + (
            "BORDERLINE (within one tick)" if abs(pct - TOP_PCT) <= tick else verdict(pct < TOP_PCT)
        ),
    ]


def report(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    out = [
        f"machine: {m['cpus']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, "
        f"Python {m['python']}, claude CLI {m['claude_cli']}",
        f"other processes' load during the run: {m['other_load_cpus']:.2f} CPUs on average "
        "(0 on a quiet machine)",
        "",
        *report_startup(results),
        "",
        *report_asks(results),
        "",
        *report_restarts(results),
    ]
    if results.get("idle"):
        out += ["", *report_idle(results["idle"])]
    if results.get("backends"):
        out += ["", *report_backends(results["backends"])]
    return out


# --- entry ---------------------------------------------------------------------------


def traced_supervisor(argv: list[str]) -> int:
    """`octy-orchestrate` with a log event where the SDK receives a tool call from the CLI
    and where it has written the answer back (bench_mcp_call, phase in/out), and where our
    ask handler starts and returns (bench_ask_handler, phase in/out)."""
    import structlog
    from claude_agent_sdk._internal import query as sdk_query  # private: bench only

    log = structlog.get_logger()
    handle = sdk_query.Query._handle_control_request
    import asyncio

    def mark(event: str, **fields: Any) -> None:
        """A log event for a moment on the path, written 20 ms later with the moment in
        `at`: a log line costs 0.1-0.3 ms here, which written at once would be counted in
        'ours' (three of them sit on the ask path)."""
        line = functools.partial(log.info, event, at=time.time(), **fields)
        try:
            asyncio.get_running_loop().call_later(0.02, line)
        except RuntimeError:
            line()

    calls: dict[str, str] = {}  # control request id -> the tool it calls

    async def traced(self: Any, request: Any) -> None:
        message = request.get("request", {}).get("message") or {}
        tool = (message.get("params") or {}).get("name")
        if message.get("method") != "tools/call":
            return await handle(self, request)
        mark("bench_mcp_call", phase="in", tool=tool)
        calls[request.get("request_id")] = tool
        try:
            return await handle(self, request)
        finally:
            mark("bench_mcp_call", phase="out", tool=tool)

    sdk_query.Query._handle_control_request = traced  # type: ignore[method-assign]

    # "Tool result sent" is when the answer's bytes go into the CLI's stdin pipe: from
    # then on the CLI can read it whatever our event loop does. (The "out" event above
    # comes after the SDK's write returns, which yields to other tasks first.)
    write = asyncio.StreamWriter.write

    def traced_write(self: asyncio.StreamWriter, data: Any) -> None:
        write(self, data)
        if calls and b'"control_response"' in data:
            rid = json.loads(data).get("response", {}).get("request_id")
            if rid in calls:
                mark("bench_mcp_call", phase="written", tool=calls.pop(rid))

    asyncio.StreamWriter.write = traced_write  # type: ignore[method-assign]

    from orchestrator.relay import Relay

    ask = Relay.ask

    async def traced_ask(self: Relay, args: dict[str, Any]) -> dict[str, Any]:
        mark("bench_ask_handler", phase="in")
        try:
            return await ask(self, args)
        finally:
            mark("bench_ask_handler", phase="out")

    Relay.ask = traced_ask  # type: ignore[method-assign]
    from orchestrator.cli import main as cli_main

    return cli_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--traced-supervisor"]:
        return traced_supervisor(argv[1:])
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one run per size, fewer samples")
    p.add_argument("--runs", type=int, help="start-up runs per team size (3; quick 1)")
    p.add_argument("--asks", type=int, help="measured ask->reply round trips (30; quick 8)")
    p.add_argument("--kills", type=int, help="SIGKILLs of an idle agent's claude (5; quick 2)")
    p.add_argument("--idle-seconds", type=float, default=10.0, help="idle CPU window (10)")
    p.add_argument("--sizes", default="1,5,10", help="team sizes for start-up (1,5,10)")
    p.add_argument("--json-out", type=Path, help="also write the results as JSON here")
    p.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="queue backends for the side-by-side ask->reply phase (sqlite,nats,nats-cluster)",
    )
    p.add_argument(
        "--backends-only", action="store_true", help="only the side-by-side backends phase"
    )
    p.add_argument(
        "--idle-only",
        action="store_true",
        help="only the idle cost of the biggest team (supervisor, claude processes, top)",
    )
    p.add_argument(
        "--ab",
        type=Path,
        metavar="TREE",
        help="only ask->reply, interleaved: the supervisor from TREE (another checkout, "
        "'before') and from this tree ('after'), --rounds times each",
    )
    p.add_argument(
        "--ab-startup",
        type=Path,
        metavar="TREE",
        help="only start-up (--sizes), interleaved: `up` from TREE (another checkout, "
        "'before') and from this tree ('after'), --rounds times each (bench/team_startup.py)",
    )
    p.add_argument("--rounds", type=int, default=3, help="rounds of --ab and --ab-startup (3)")
    args = p.parse_args(argv)
    if args.ab:
        return ab_asks(args.ab.resolve(), args.rounds, args.asks or 20)
    if args.ab_startup:
        from bench.team_startup import ab_startup

        sizes = [int(s) for s in args.sizes.split(",")]
        return ab_startup(args.ab_startup.resolve(), args.rounds, sizes)
    if args.idle_only:
        return idle_only(max(int(s) for s in args.sizes.split(",")), args.idle_seconds)
    runs = args.runs or (1 if args.quick else 3)
    asks = args.asks or (8 if args.quick else 30)
    kills = args.kills or (2 if args.quick else 5)
    sizes = [int(s) for s in args.sizes.split(",")]
    which = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(which) - set(BACKENDS))
    if unknown:
        p.error(f"unknown backend(s) {', '.join(unknown)}; known: {', '.join(BACKENDS)}")
    if args.backends_only:
        return backends_only(which, asks)

    results: dict[str, Any] = {"machine": machine(), "startup": {}, "idle": None}
    began, (machine0, ours0) = time.monotonic(), busy_cpu_s()
    with tempfile.TemporaryDirectory(prefix="octy-bench-") as tmp, ScriptedModel(SCRIPT) as model:
        bench = Bench(Path(tmp), model)
        measure_startup(bench, 1, 0.0)  # warm-up: page cache, the CLI's first run in HOME
        results["python_floor"] = python_floor(bench.env)
        for run in range(runs):
            for n in sizes:
                last = run == runs - 1 and n == max(sizes)  # idle cost: the biggest team, once
                sample, idle = measure_startup(bench, n, args.idle_seconds if last else 0.0)
                results["startup"].setdefault(str(n), []).append(asdict(sample))
                results["idle"] = idle or results["idle"]
                print(f"  start-up, {n:>2} agents: {sample.ready_s:.2f} s", flush=True)
        asked = measure_asks(bench, asks, kills)
        results.update(asked, restarts=[asdict(r) for r in asked["restarts"]])
        if which:
            results["backends"] = measure_backends(bench.team, round_trip, asks, which)
    results["elapsed_s"] = round(time.monotonic() - began, 1)
    machine1, ours1 = busy_cpu_s()
    others = (machine1 - machine0) - (ours1 - ours0)
    results["machine"]["other_load_cpus"] = round(max(0.0, others) / results["elapsed_s"], 2)
    print("\n" + "\n".join(report(results)))
    print(f"\n(the benchmark took {results['elapsed_s']} s)")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))
    return 0


def ab_asks(tree: Path, rounds: int, asks: int) -> int:
    """Our share of an ask->reply, before (TREE) and after (this tree), interleaved so that
    load from elsewhere on the machine hits both alike."""
    if not (tree / "orchestrator" / "__init__.py").is_file():
        print(f"--ab: {tree} has no orchestrator/ package", file=sys.stderr)
        return 2
    keys = (*OURS, "= ours", *SDK)
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="octy-bench-") as tmp, ScriptedModel(SCRIPT) as model:
        bench = Bench(Path(tmp), model)
        for r in range(rounds):
            for label in ("before", "after") if r % 2 == 0 else ("after", "before"):
                load = os.getloadavg()[0]
                trips = measure_asks(bench, asks, 0, tree if label == "before" else None)
                rows = [{**t, "= ours": sum(t[k] for k in OURS)} for t in trips["round_trips"]]
                med = {k: _med([t[k] for t in rows]) for k in keys}
                med["load"] = load
                med["supervisor CPU per round trip"] = trips["cpu_ms_per_round_trip"]["supervisor"]
                runs[label].append(med)
                print(f"  round {r + 1} {label:<6} ours {med['= ours']:6.2f} ms (load {load:.1f})")
    print(f"\n## ask -> reply, median ms per run ({asks} round trips each), before | after")
    for k in (*keys, "supervisor CPU per round trip"):
        b = " ".join(f"{m[k]:6.2f}" for m in runs["before"])
        a = " ".join(f"{m[k]:6.2f}" for m in runs["after"])
        print(f"  {k:<52} {b} | {a}")
    b, a = (_med([m["= ours"] for m in runs[x]]) for x in ("before", "after"))
    print(f"  median of runs: before {b:.2f} ms, after {a:.2f} ms")
    return 0


def backends_only(which: list[str], asks: int) -> int:
    began, (machine0, ours0) = time.monotonic(), busy_cpu_s()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="octy-bench-") as tmp, ScriptedModel(SCRIPT) as model:
        found = measure_backends(Bench(Path(tmp), model).team, round_trip, asks, which)
    elapsed = time.monotonic() - began
    machine1, ours1 = busy_cpu_s()
    others = max(0.0, (machine1 - machine0) - (ours1 - ours0)) / elapsed
    m = machine()
    print(
        f"machine: {m['cpus']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, "
        f"Python {m['python']}, claude CLI {m['claude_cli']}; other processes' load "
        f"{others:.2f} CPUs on average; 1-min load average {load0:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; {asks} round trips per backend"
    )
    print("\n".join(report_backends(found)))
    return 0


def idle_only(n: int, seconds: float) -> int:
    results: dict[str, Any] = {"machine": machine()}
    began, (machine0, ours0) = time.monotonic(), busy_cpu_s()
    with tempfile.TemporaryDirectory(prefix="octy-bench-") as tmp, ScriptedModel(SCRIPT) as model:
        _, idle = measure_startup(Bench(Path(tmp), model), n, seconds)
    elapsed = time.monotonic() - began
    machine1, ours1 = busy_cpu_s()
    others = max(0.0, (machine1 - machine0) - (ours1 - ours0)) / elapsed
    m = results["machine"]
    print(
        f"machine: {m['cpus']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, "
        f"Python {m['python']}, claude CLI {m['claude_cli']}; other processes' load "
        f"{others:.2f} CPUs on average; 1-min load average {os.getloadavg()[0]:.2f}"
    )
    assert idle is not None
    print("\n".join(report_idle(idle)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
