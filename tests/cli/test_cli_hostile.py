"""Hostile input through the real `octy-orchestrate` command (issue 16, points 15, 16, 20, 21):
terminal escapes in bodies and names, secrets in bodies and rosters, reserved names, and
input that used to end in a traceback. Each runs the console script in a subprocess."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from cli_runner import RUN_TIMEOUT_S
from cli_runner import octy_bytes as octy

from orchestrator import logconfig
from orchestrator.mailbox import USER, Mailbox

# Retitle the terminal, clear the screen, return to column 0, a C1 CSI and a bidi override.
EVIL = "hi\x1b]0;pwned\x07\x1b[2J\rgone\x9b31m\u202eevil"
SECRETS = {
    "key": "sk-ant-api03-abcdefghijklmnopqrstuvwx",
    "bearer": "Bearer abcdefghijklmnopqrstuvwxyz0123",
    "url": "postgres://app:hunter2hunter2@db.internal/prod",
}


def no_raw_controls(data: bytes) -> None:
    text = data.decode("utf-8")
    bad = [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F]
    assert not bad, f"raw control characters {bad!r} reached the terminal:\n{text!r}"
    assert "\u202e" not in text


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "agents.yaml").write_text(
        "agents:\n  a:\n    prompt: A.\n  b:\n    prompt: B.\n", encoding="utf-8"
    )
    with Mailbox(tmp_path / "queue" / "team.db") as mb:
        mb.register("a")
        mb.register("b")
    return tmp_path


# --- 15: escapes ------------------------------------------------------------------------


def test_escape_sequences_in_bodies_and_names_never_reach_the_terminal(folder: Path) -> None:
    """Regression (issue 16.15): bodies and registered names holding `\\e]0;…\\a`, `\\e[2J`,
    `\\r`, C1 and bidi controls reached the terminal raw through send, ask, inbox, queue ls,
    queue show, ps, logs and trace (--mermaid too). Every human output escapes them; --json
    stays exact."""
    db = folder / "queue" / "team.db"
    with Mailbox(db) as mb:
        request = mb.request(USER, "a", EVIL)
        mb.reply(request.id, "a", EVIL)
        mb.send("b", "a", {"text": EVIL})
    # A name written by plain SQL (another language's client) escapes the registry's rule.
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO agents (name, description, state, registered_at) VALUES (?, ?, ?, 0)",
            (f"x{EVIL}", EVIL, EVIL),
        )
    logconfig.configure(folder / "logs")
    try:
        structlog.get_logger().info("received", agent="a", body=EVIL, sender=f"x{EVIL}")
    finally:
        logconfig.shutdown()
        structlog.reset_defaults()
    with (folder / "logs" / "supervisor.jsonl").open("a", encoding="utf-8") as f:
        f.write(f"a foreign line, not JSON {EVIL}\n")

    outputs = {
        "send": octy("send", "a", EVIL.encode(), cwd=folder),
        "inbox": octy("inbox", "a", cwd=folder),
        "queue ls": octy("queue", "ls", cwd=folder),
        "queue show": octy("queue", "show", request.id, cwd=folder),
        "ps": octy("ps", cwd=folder),
        "logs": octy("logs", cwd=folder),
        "logs --full": octy("logs", "--full", cwd=folder),
        "trace": octy("trace", request.id, cwd=folder),
        "trace --mermaid": octy("trace", request.id, "--mermaid", cwd=folder),
        "reply (error names it)": octy("reply", request.id, "x", "--as", f"x{EVIL}", cwd=folder),
    }
    for verb, done in outputs.items():
        assert b"Traceback" not in done.stderr, verb
        no_raw_controls(done.stdout)
        no_raw_controls(done.stderr)
    assert "\\x1b]0;pwned" in outputs["queue show"].stdout.decode()  # visible, not dropped
    assert "\\x1b[2J" in outputs["inbox"].stdout.decode()

    exact = json.loads(octy("queue", "show", request.id, "--json", cwd=folder).stdout)
    assert exact["message"]["body"] == EVIL


def test_ask_prints_an_escaped_reply(folder: Path) -> None:
    """`ask` prints the reply a peer wrote: escaped for the terminal, newlines kept."""
    db = folder / "queue" / "team.db"
    answer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from orchestrator.mailbox import Mailbox\n"
            "with Mailbox(sys.argv[1]) as mb:\n"
            "    while not (got := mb.claim('a', owner='w')):\n"
            "        mb.wait_for_messages('a', 5)\n"
            "    mb.reply(got[0].id, 'a', sys.argv[2])\n"
            "    mb.ack([got[0].id], owner='w')\n",
            str(db),
            "line one\n" + EVIL,
        ],
    )
    try:
        done = octy("ask", "a", "question", "--timeout", "30", cwd=folder)
    finally:
        answer.wait(RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    no_raw_controls(done.stdout)
    assert done.stdout.decode().startswith("line one\nhi\\x1b]0;pwned\\x07")


# --- 16: secrets ------------------------------------------------------------------------


def test_config_masks_secrets_wherever_they_hide(tmp_path: Path) -> None:
    """Regression (issue 16.16): `config` printed a token interpolated into a prompt, env
    values whose names do not look secret, and a database URL's password."""
    (tmp_path / "agents.yaml").write_text(
        "agents:\n"
        "  a:\n"
        "    prompt: 'Use ${TEAM_SERVICE_TOKEN} and ${PLAIN_VALUE} to log in.'\n"
        "    env:\n"
        "      DB_URL: " + SECRETS["url"] + "\n"
        "      SOMETHING: " + SECRETS["key"] + "\n"
        "      GH: ${TEAM_SERVICE_TOKEN}\n"
        "      MY_PASSWORD: swordfish-42\n",
        encoding="utf-8",
    )
    token = "tok-7f3a9c1e5b2d"  # not shaped like any known key: only its name gives it away
    env = {"TEAM_SERVICE_TOKEN": token, "PLAIN_VALUE": "harmless"}
    for args in (("config",), ("config", "--json")):
        done = octy(*args, cwd=tmp_path, env={**os.environ, **env})
        assert done.returncode == 0, done.stderr
        out = done.stdout.decode()
        for secret in (token, "hunter2hunter2", SECRETS["key"], "swordfish-42"):
            assert secret not in out, (args, secret, out)
        assert "harmless" in out  # what is not secret stays readable
        assert "postgres://app:***@db.internal/prod" in out


def test_trace_and_logs_redact_keys_bearer_tokens_and_url_passwords(folder: Path) -> None:
    """Regression (issue 16.16): `trace` printed `sk-ant-…` and `Bearer …` from bodies, and
    a URL's password reached the logs. The same redaction applies to every human output."""
    db = folder / "queue" / "team.db"
    body = " ".join(SECRETS.values())
    with Mailbox(db) as mb:
        request = mb.request(USER, "a", body)
    logconfig.configure(folder / "logs")
    try:
        structlog.get_logger().info("received", agent="a", body=body, message_id=request.id)
    finally:
        logconfig.shutdown()
        structlog.reset_defaults()
    stored = (folder / "logs" / "supervisor.jsonl").read_text()
    assert "hunter2hunter2" not in stored
    assert "sk-ant-api03" not in stored
    for args in (("trace", request.id), ("trace", request.id, "--mermaid"), ("queue", "ls")):
        out = octy(*args, cwd=folder).stdout.decode()
        assert "sk-ant-api03" not in out, args
        assert "abcdefghijklmnopqrstuvwxyz0123" not in out, args
        assert "hunter2hunter2" not in out, args
        assert "***" in out, args


def test_init_writes_the_roster_private(tmp_path: Path) -> None:
    """Regression (issue 16.16): init wrote agents.yaml 0644; it holds env values (tokens),
    so it is 0600, also when --force replaces an existing one."""
    assert octy("init", cwd=tmp_path).returncode == 0
    assert stat.S_IMODE((tmp_path / "agents.yaml").stat().st_mode) == 0o600
    (tmp_path / "agents.yaml").chmod(0o644)
    assert octy("init", "--force", cwd=tmp_path).returncode == 0
    assert stat.S_IMODE((tmp_path / "agents.yaml").stat().st_mode) == 0o600


# --- 20: reserved names -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["supervisor", "user", "a/b", "../../etc", "UPPER", "a" * 64, "a" * 300]
)
def test_register_refuses_reserved_and_malformed_names(folder: Path, name: str) -> None:
    """Regression (issue 16.20): `register supervisor` / `register user` / names with `/`
    overwrote or created reserved rows. Refused as the roster does: exit 2, nothing written.
    Names over 63 characters too: a 300-character one was registered and broke `ps`'s
    table (and as a roster agent, its log file name was too long to create)."""
    db = folder / "queue" / "team.db"
    with Mailbox(db) as mb:
        mb.register_supervisor(4242, {"instance": "real"})
        before = {a.name: a for a in mb.agents()}
    done = octy("register", name, cwd=folder)
    assert done.returncode == 2, done.stderr
    assert b"cannot register" in done.stderr
    with Mailbox(db) as mb:
        assert {a.name: a for a in mb.agents()} == before


def test_a_refused_register_leaves_no_database_behind(tmp_path: Path) -> None:
    """`register` is the one verb that creates the queue; with a name it refuses (too long,
    reserved, a path) it used to create queue/team.db first, in whatever folder it ran."""
    for name in ("a" * 64, "user", "../x"):
        done = octy("register", name, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert b"cannot register" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_register_refuses_to_take_over_a_roster_agent(folder: Path) -> None:
    """A script cannot register over an agent the supervisor manages (its row would lose
    the supervisor's marks)."""
    db = folder / "queue" / "team.db"
    with Mailbox(db) as mb:
        mb.update_agent("a", meta={"supervised": True})
    done = octy("register", "a", cwd=folder)
    assert done.returncode == 2
    assert b"roster" in done.stderr


# --- 21: tracebacks on bad input ----------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ("ask", "a", "hi", "--timeout", "nan"),
        ("ask", "a", "hi", "--timeout", "inf"),
        ("ask", "a", "hi", "--timeout", "-1"),
        ("send", "a", "hi", "--ttl", "1e400"),
        ("queue", "ls", "--limit", "99999999999999999999"),
        ("queue", "ls", "--limit", "-5"),
        ("inbox", "a", "--wait", "nan"),
        ("down", "--timeout", "nan"),
        ("send", "a", b"caf\xe9"),
        ("send", b"\xff\xfe", "hi"),
        ("queue", "show", b"\xc3("),
        ("logs", "--tail", "99999999999999999999"),
        ("scripted-model", "--script", "s.yaml", "--port", "99999999999999999999"),
    ],
)
def test_bad_input_is_a_usage_error_not_a_traceback(
    folder: Path, argv: tuple[str | bytes, ...]
) -> None:
    """Regression (issue 16.21): `--timeout nan`, a limit past 64 bits, invalid UTF-8 in
    argv each ended in a traceback. Each is a usage error: exit 2, one clear line."""
    done = octy(*argv, cwd=folder)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert b"Traceback" not in done.stderr
    assert done.stderr.strip()


def test_invalid_utf8_on_stdin_is_a_usage_error(folder: Path) -> None:
    """`send a -` with bytes that are not UTF-8 on stdin: exit 2, nothing sent."""
    done = octy("send", "a", "-", cwd=folder, stdin=b"ok \xff\xfe not text")
    assert done.returncode == 2, done.stderr
    assert b"not UTF-8" in done.stderr
    with Mailbox(folder / "queue" / "team.db") as mb:
        assert mb.list(recipient="a") == []


LONG = "a" * 5000


@pytest.mark.parametrize(
    "argv",
    [
        ("logs", LONG),
        ("logs", "a" * 300),
        ("logs", "../secret"),
        ("queue", "show", LONG),
        ("trace", LONG),
        ("reply", LONG, "x"),
        ("send", LONG, "hi"),
        ("inbox", LONG),
    ],
)
def test_a_long_or_impossible_name_or_id_is_not_found_in_one_short_line(
    folder: Path, argv: tuple[str, ...]
) -> None:
    """`logs` with a 5,000- (or 300-) character name ended in a traceback (the file name
    was too long for the file system), and `logs ../../etc/passwd` was looked up as a
    file; every verb echoed a 5,000-character id or name whole. Each is "not found",
    exit 3 (an id longer than any message's, exit 2: bad input), on one line cut in the
    middle that still says what to do."""
    (folder / "logs").mkdir()
    (folder / "logs" / "supervisor.jsonl").write_text("", encoding="utf-8")
    (folder / "secret.jsonl").write_text("{}\n", encoding="utf-8")  # what ../ would reach
    done = octy(*argv, cwd=folder)
    an_id = argv[0] in ("queue", "trace", "reply")
    assert done.returncode == (2 if an_id else 3), (done.stdout, done.stderr[:500])
    assert b"Traceback" not in done.stderr
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert len(lines[0]) < 400, lines[0]
    if len(argv[-1]) > 300 or (argv[0] == "reply" and len(argv[1]) > 300):
        assert "characters left out" in lines[0]
    if argv[0] == "logs":
        assert "(agents: a, b" in lines[0]  # the end of the line, kept: the known names


def test_an_os_error_no_check_foresaw_is_one_line(folder: Path) -> None:
    """The last net under every verb: an OSError escaping a verb (here `logs --logs` with a
    folder name too long for the file system) is one line naming it, exit 1, no traceback."""
    done = octy("logs", "--logs", str(folder / LONG), cwd=folder)
    assert done.returncode == 1, done.stderr[:500]
    assert b"Traceback" not in done.stderr
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "File name too long" in lines[0]


def test_deeply_nested_bodies_are_refused_or_shown_never_a_traceback(folder: Path) -> None:
    """Regression: `send a - --json-body` with a body 100,000 levels deep ended in a
    traceback (RecursionError reading it), one 900 deep was stored and then its own send,
    `queue ls`, `queue ls --json`, `inbox --json` and `queue show` ended in RecursionError.
    Now the first is a usage error, the second refused by the queue (InvalidBody, exit 2
    too), and one written by plain SQL (which the limit cannot stop) is shown by every reader."""
    deep = "[" * 100_000 + "]" * 100_000
    done = octy("send", "a", "-", "--json-body", cwd=folder, stdin=deep.encode())
    assert done.returncode == 2, done.stderr[-500:]
    assert b"Traceback" not in done.stderr
    done = octy("send", "a", "-", "--json-body", cwd=folder, stdin=("[" * 900 + "]" * 900).encode())
    assert done.returncode == 2, done.stderr[-500:]  # bad input, as the README's exit codes
    assert b"levels deep" in done.stderr
    assert b"Traceback" not in done.stderr
    db = folder / "queue" / "team.db"
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute(
            "INSERT INTO messages (sender, recipient, body) VALUES ('user', 'a', ?) RETURNING id",
            ("[" * 900 + "]" * 900,),
        ).fetchone()
    for argv in (
        ("queue", "ls"),
        ("queue", "ls", "--json"),
        ("inbox", "a"),
        ("inbox", "a", "--json"),
        ("queue", "show", stored),
        ("queue", "show", stored, "--json"),
        ("trace", stored, "--json"),
    ):
        done = octy(*argv, cwd=folder)
        assert done.returncode == 0, (argv, done.stderr[-500:])
        assert stored.encode() in done.stdout, argv
        if "--json" in argv:
            json.loads(done.stdout)
    # The same for a registry row's meta (`register` prints the row it refreshed).
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE agents SET meta = ? WHERE name = 'b'", ('{"x":' + "[" * 900 + "]" * 900 + "}",)
        )
    for argv in (("register", "b"), ("register", "b", "--json"), ("ps", "--json")):
        done = octy(*argv, cwd=folder)
        assert done.returncode == 0, (argv, done.stderr[-500:])


def test_nobody_speaks_for_the_supervisor_through_the_queue_verbs(folder: Path) -> None:
    """Regression: `send supervisor hi` was taken by a running supervisor as a command with
    none (and `ask supervisor hi` printed its error with exit 0); `send a hi --as supervisor`
    posed as the supervisor; `reply ID` to a control request answered as the supervisor;
    `inbox supervisor --ack` took the supervisor's commands (an operator's `down` lost).
    Each is a usage error naming the verbs, and nothing is written."""
    db = folder / "queue" / "team.db"
    with Mailbox(db) as mb:
        mb.register_supervisor(4242, {"instance": "real"})
        command = mb.request(USER, "supervisor", {"command": "down"})
    for argv in (
        ("send", "supervisor", "hi"),
        ("ask", "supervisor", "hi", "--timeout", "1"),
        ("send", "a", "hi", "--as", "supervisor"),
        ("ask", "a", "hi", "--as", "supervisor", "--timeout", "1"),
        ("reply", command.id, "done"),
        ("inbox", "supervisor", "--ack"),
    ):
        done = octy(*argv, cwd=folder)
        assert done.returncode == 2, (argv, done.stderr)
        assert b"'supervisor' is reserved" in done.stderr, argv
        assert b"Traceback" not in done.stderr
    with Mailbox(db) as mb:
        assert [m.id for m in mb.list()] == [command.id]
        assert mb.get(command.id).status == "pending"
    assert octy("inbox", "supervisor", cwd=folder).returncode == 0  # a peek is harmless
