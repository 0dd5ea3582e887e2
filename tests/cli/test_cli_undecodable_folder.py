"""A team folder whose name is not UTF-8 (a byte such as 0xff, as a file copied from an
old Latin-1 system has): `up` refuses it in one line, and paths in messages show the byte
as `\\xff`, never as Python's stand-in `\\udcff`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_runner import octy

from orchestrator.redact import escape_controls, for_people


@pytest.fixture
def odd_folder(tmp_path: Path) -> Path:
    folder = tmp_path / os.fsdecode(b"team\xffdir")
    folder.mkdir()
    (folder / "agents.yaml").write_text("agents:\n  a:\n    prompt: A.\n", encoding="utf-8")
    return folder


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "ANTHROPIC_API_KEY": "test",
        "LANG": "C",
    }


@pytest.mark.parametrize("detach", [False, True])
def test_up_in_a_folder_whose_name_is_not_utf8_is_refused_in_one_line(
    tmp_path: Path, odd_folder: Path, detach: bool
) -> None:
    """Regression: `up` there ended in a traceback (UnicodeEncodeError: surrogates not
    allowed, registering the supervisor, its queue already made); `up -d` said 'the
    supervisor exited at once' with the background supervisor's usage error about its own
    -f argument. Now: exit 2 naming the path and what to do; no queue is made."""
    done = octy(
        "up", *(["-d"] if detach else []), "--no-model-check", cwd=odd_folder, env=_env(tmp_path)
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "team\\xffdir/agents.yaml is not valid UTF-8 text" in lines[0]
    assert "rename its folder" in lines[0]
    assert not (odd_folder / "queue").exists()
    assert not (odd_folder / "logs").exists()


def test_a_verb_names_such_a_path_with_the_byte_it_holds(tmp_path: Path, odd_folder: Path) -> None:
    """Regression: `ps` there said `no team database at /…/team\\udcffdir/queue/team.db`."""
    done = octy("ps", cwd=odd_folder, env=_env(tmp_path))
    assert done.returncode == 3, done.stderr
    assert "team\\xffdir/queue/team.db" in done.stderr
    assert "udcff" not in done.stderr


def test_undecodable_bytes_show_as_the_bytes() -> None:
    text = os.fsdecode(b"a\x80b\xffc")
    assert escape_controls(text) == "a\\x80b\\xffc"
    assert escape_controls(text, multiline=True) == "a\\x80b\\xffc"
    assert for_people(text + "\n\u00e9") == "a\\x80b\\xffc\\n\u00e9"


def test_config_refuses_such_a_folder_as_up_does(tmp_path: Path, odd_folder: Path) -> None:
    """Regression: `config` there printed the roster resolved and ended 0 (`valid`) while
    `up` refused it (exit 2). One rule now: `config` says what `up` says, as one of its
    errors (exit 1, as every problem it finds), beside the file's own problems; `--json`
    shows the byte as `\\xff` too (a lone surrogate is refused by strict JSON readers)."""
    up = octy("up", "--no-model-check", cwd=odd_folder, env=_env(tmp_path))
    done = octy("config", cwd=odd_folder, env=_env(tmp_path))
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert done.stderr.strip() == up.stderr.strip()
    as_json = octy("config", "--json", cwd=odd_folder, env=_env(tmp_path))
    assert as_json.returncode == 1, as_json
    data = json.loads(as_json.stdout)
    assert data["ok"] is False
    assert data["error"] == "invalid_path"
    assert "team\\xffdir/agents.yaml is not valid UTF-8 text" in data["message"]
    assert "rename its folder" in data["message"]
    (odd_folder / "agents.yaml").write_text(
        "agents:\n  a:\n    prompt: A.\n    bogus: 1\n", encoding="utf-8"
    )
    both = octy("config", cwd=odd_folder, env=_env(tmp_path))
    assert both.returncode == 1, both
    assert "2 problem(s) in agents.yaml" in both.stderr
    assert "is not valid UTF-8 text" in both.stderr
    assert "unknown key 'bogus'" in both.stderr


def test_demo_refuses_a_temporary_folder_whose_name_is_not_utf8(tmp_path: Path) -> None:
    """Regression: `demo` with TMPDIR so named ended in a traceback (UnicodeEncodeError
    registering its supervisor, the team's folder being made there). Now: `up`'s rule and
    words, naming TMPDIR, exit 2, before anything starts."""
    odd_tmp = tmp_path / os.fsdecode(b"tmp\xffdir")
    odd_tmp.mkdir()
    done = octy("demo", cwd=tmp_path, env={**_env(tmp_path), "TMPDIR": str(odd_tmp)})
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "the temporary folder " in line
    assert "tmp\\xffdir is not valid UTF-8 text" in line
    assert "set TMPDIR to a folder whose path is UTF-8 text" in line
    assert list(odd_tmp.iterdir()) == []


def test_config_shows_a_value_with_such_a_byte_as_the_byte(tmp_path: Path) -> None:
    """Left open by an earlier session: `config` printed a `${VAR}` value holding a byte
    that is not UTF-8 as `"v\\uDCFF"` (YAML's escape of Python's stand-in), `--json` as
    `"v\\udcff"` (a lone surrogate, which strict JSON readers refuse). Shown now as the
    byte, `\\xff`, as every other message shows it; the rest of the text (a prompt's lines)
    is unchanged."""
    (tmp_path / "agents.yaml").write_text(
        'agents:\n  a:\n    prompt: "line one\\nline two é"\n    env:\n      ODD: ${ODD}\n',
        encoding="utf-8",
    )
    env = {**_env(tmp_path), "ODD": os.fsdecode(b"v\xffw")}
    done = octy("config", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "ODD: v\\xffw\n" in done.stdout
    assert "udcff" not in done.stdout.lower()
    as_json = octy("config", "--json", cwd=tmp_path, env=env)
    assert as_json.returncode == 0, as_json.stderr
    assert "udcff" not in as_json.stdout.lower()
    data = json.loads(as_json.stdout)
    assert data["agents"]["a"]["env"]["ODD"] == "v\\xffw"
    assert data["agents"]["a"]["prompt"] == "line one\nline two é"


def test_a_database_path_that_is_not_utf8_is_one_of_the_rosters_problems(tmp_path: Path) -> None:
    """Regression (review of the folder rule): `database: ${QD}/team.db` with QD naming
    a folder with a byte that is not UTF-8 passed the folder rule; `up` ended in a
    traceback (UnicodeEncodeError opening the budget ledger, the queue already made there)
    and `config` called the roster valid. Now both: exit 1, that problem in one line."""
    odd = tmp_path / os.fsdecode(b"q\xffdir")
    odd.mkdir()
    team = tmp_path / "team"
    team.mkdir()
    (team / "agents.yaml").write_text(
        "database: ${QD}/team.db\nagents:\n  a:\n    prompt: A.\n", encoding="utf-8"
    )
    env = {**_env(tmp_path), "QD": str(odd)}
    up = octy("up", "--no-model-check", cwd=team, env=env)
    assert up.returncode == 1, up
    assert "Traceback" not in up.stderr
    assert up.stderr.strip().splitlines()[1:] == [
        f"the database path {tmp_path}/q\\xffdir/team.db is not valid UTF-8 text: the queue "
        "records the team's paths as text; set 'database' to a path that is"
    ]
    assert list(odd.iterdir()) == []
    assert not (team / "logs").exists()
    config = octy("config", "--json", cwd=team, env=env)
    assert config.returncode == 1, config
    data = json.loads(config.stdout)
    assert data["error"] == "invalid_path"
    assert "q\\xffdir/team.db is not valid UTF-8 text" in data["message"]


def test_agents_whose_folder_is_really_not_utf8_are_refused(tmp_path: Path) -> None:
    """Regression (review of the folder rule): a team folder reached through a symlink to
    a folder named with such a byte passed `up`'s rule (its path is text), and so did a
    `cwd: ${WD}` naming one; the claude CLI, which runs where a folder really is, said
    `Can't access working directory` and the agents restarted until they failed, while
    `config` called it valid. Now `config` and `up` name the folder (and what it really
    is) and its agents, exit 1, before anything starts."""
    real = tmp_path / os.fsdecode(b"real\xffteam")
    real.mkdir()
    link = tmp_path / "team"
    link.symlink_to(real)
    (link / "agents.yaml").write_text("agents:\n  a:\n    prompt: A.\n", encoding="utf-8")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "agents.yaml").write_text(
        "agents:\n  b:\n    prompt: B.\n  c:\n    prompt: C.\n    cwd: ${WD}\n"
        "  d:\n    prompt: D.\n    cwd: ${WD}\n",
        encoding="utf-8",
    )
    env = {**_env(tmp_path), "WD": str(real)}
    roster = str(link / "agents.yaml")  # from outside: a cwd in it is its real path
    expected = {
        roster: [
            f"the team's folder {link} is really {tmp_path}/real\\xffteam, which is not valid "
            "UTF-8 text: the claude CLI cannot start its agents there, nor their sandbox name "
            "what it hides there; move the team to a folder whose real path is UTF-8 text"
        ],
        str(plain / "agents.yaml"): [
            f"the working folder {tmp_path}/real\\xffteam of c, d is not valid UTF-8 text: the "
            "claude CLI cannot start there; set 'cwd' to a folder whose real path is UTF-8 "
            "text, or move the team to one"
        ],
    }
    for path, lines in expected.items():
        config = octy("config", "--json", "-f", path, cwd=tmp_path, env=env)
        assert config.returncode == 1, config
        data = json.loads(config.stdout)
        assert data["error"] == "invalid_path"
        assert data["message"].splitlines() == [f"1 problem(s) in {path}:", *lines]
        said = octy("config", "-f", path, cwd=tmp_path, env=env)
        up = octy("up", "--no-model-check", "-f", path, cwd=tmp_path, env=env, timeout=60)
        assert up.returncode == 1, up
        assert "Traceback" not in up.stderr
        assert up.stderr == said.stderr
        assert len(up.stderr.strip().splitlines()) == 2
    assert sorted(p.name for p in real.iterdir()) == ["agents.yaml"]
    assert sorted(p.name for p in plain.iterdir()) == ["agents.yaml"]


def test_logs_or_state_folders_the_sandbox_cannot_name_are_refused(tmp_path: Path) -> None:
    """Regression (review): `logs: ${QD}/logs` with QD naming a folder with a byte that is
    not UTF-8: `up` started the team, and the agents' sandbox rules named the folder in
    JSON as `q\\udcffdir`, which is no path: an agent's sandboxed Bash listed the real
    logs folder and wrote a file into it (a UTF-8 one is hidden: measured with the real
    CLI sandbox). The same for the state folder under such a HOME (team records). Now
    `config` and `up` refuse them, exit 1."""
    odd = tmp_path / os.fsdecode(b"q\xffdir")
    odd.mkdir()
    team = tmp_path / "team"
    team.mkdir()
    (team / "agents.yaml").write_text(
        "logs: ${QD}/logs\nagents:\n  a:\n    prompt: A.\n", encoding="utf-8"
    )
    env = {**_env(tmp_path), "QD": str(odd)}
    for verb in (("config", "--json"), ("up", "--json", "--no-model-check")):
        done = octy(*verb, cwd=team, env=env, timeout=60)
        assert done.returncode == 1, done
        assert json.loads(done.stdout)["message"].splitlines()[1:] == [
            f"{tmp_path}/q\\xffdir/logs is not valid UTF-8 text: the agents' sandbox and "
            "permission rules cannot name it, to hide it; give the team paths (and real "
            "paths) that are UTF-8 text"
        ]
    assert list(odd.iterdir()) == []
    (team / "agents.yaml").write_text("agents:\n  a:\n    prompt: A.\n", encoding="utf-8")
    home = {**_env(tmp_path), "HOME": str(odd)}
    done = octy("config", "--json", cwd=team, env=home)
    assert done.returncode == 1, done
    assert json.loads(done.stdout)["message"].splitlines()[1:] == [
        f"{tmp_path}/q\\xffdir/.local/state/octy-orchestrate is not valid UTF-8 text: the "
        "agents' sandbox and permission rules cannot name it, to hide it; give the team "
        "paths (and real paths) that are UTF-8 text"
    ]


def test_demo_refuses_a_temporary_folder_that_is_really_not_utf8(tmp_path: Path) -> None:
    """Regression (review): TMPDIR a symlink to a folder so named passed the demo's rule;
    every agent then failed to start (`Can't access working directory`), exit 1."""
    real = tmp_path / os.fsdecode(b"tmp\xffdir")
    real.mkdir()
    link = tmp_path / "tmp"
    link.symlink_to(real)
    done = octy("demo", cwd=tmp_path, env={**_env(tmp_path), "TMPDIR": str(link)})
    assert done.returncode == 2, done
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"octy-orchestrate: the temporary folder {link} is really "), line
    assert line.endswith("set TMPDIR to a folder whose real path is UTF-8 text"), line
    assert list(real.iterdir()) == []


def test_init_refuses_a_folder_where_config_and_up_refuse_a_team(
    tmp_path: Path, odd_folder: Path
) -> None:
    """Regression (review): `init` in a folder named with a byte that is not UTF-8 (or
    through a symlink to one) wrote a starter team and said to check it with `config` and
    start it with `up`, which both refuse it. Now it refuses first (exit 2), writing
    nothing."""
    (odd_folder / "agents.yaml").unlink()
    done = octy("init", cwd=odd_folder, env=_env(tmp_path))
    assert done.returncode == 2, done
    (line,) = done.stderr.strip().splitlines()
    assert "team\\xffdir/agents.yaml is not valid UTF-8 text" in line
    assert line.endswith("rename its folder, or write the team elsewhere with -f"), line
    link = tmp_path / "link"
    link.symlink_to(odd_folder)
    done = octy("init", "-f", "link/agents.yaml", cwd=tmp_path, env=_env(tmp_path))
    assert done.returncode == 2, done
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"octy-orchestrate: the roster's folder {link} is really "), line
    assert line.endswith(
        "the claude CLI cannot start the team's agents there; write the team elsewhere with -f"
    ), line
    assert list(odd_folder.iterdir()) == []


def test_a_lone_surrogate_in_a_setting_is_one_of_the_rosters_problems(tmp_path: Path) -> None:
    """Left open by an earlier session (the queue's TLS paths, which no check covered):
    YAML's `"\\uD800"` is a character that stands for no byte. In `database` it ended
    `config` and `up` in a traceback (UnicodeEncodeError resolving what the sandbox
    hides); in a TLS file's path it was said as "file not found". Now each such value is
    one of the roster's problems, with its line, exit 1, nothing made."""
    team = tmp_path / "team"
    team.mkdir()
    said = "a lone surrogate, which no path, command-line argument or environment value can hold"
    database = f"agents.yaml:1: key 'database': contains the character \\ud800, {said}; remove it"
    rosters = {
        'database: "q\\uD800/team.db"\nagents:\n  a:\n    prompt: A.\n': [database],
        'database: "q\\uD800/team.db"\nqueue:\n  servers: tls://127.0.0.1:4222\n  tls:\n'
        '    ca: "ca\\uDBFF.pem"\nagents:\n  a:\n    prompt: A.\n': [
            database,
            f"agents.yaml:5: key 'queue.tls.ca': contains the character \\udbff, {said}; remove it",
        ],
    }
    for text, lines in rosters.items():
        (team / "agents.yaml").write_text(text, encoding="utf-8")
        for verb in (("config",), ("up", "--no-model-check")):
            done = octy(*verb, cwd=team, env=_env(tmp_path), timeout=60)
            assert done.returncode == 1, done
            assert "Traceback" not in done.stderr
            assert done.stderr.removeprefix("octy-orchestrate: ").splitlines() == [
                f"{len(lines)} problem(s) in agents.yaml:",
                *lines,
            ]
    assert sorted(p.name for p in team.iterdir()) == ["agents.yaml"]


def test_such_a_byte_is_kept_in_the_queues_ca_path_refused_in_its_secret_files(
    tmp_path: Path,
) -> None:
    """Asked of an earlier session: a `${VAR}` putting 0xff into the queue's `tls` (or
    `creds`) file paths passed every check, while `database` and `logs` are refused. The
    public CA (and client certificate) is kept so: nothing records those paths and the
    NATS client opens the files by them (measured: `up`, `up -d`, `ps`, `down` against a
    TLS nats-server whose CA file was under such a folder); `config` shows it with the byte
    as `\\xff`. The `creds` file and the TLS `key` are hidden from agents by their paths
    (sandbox.secret_files), which a rule cannot name so: refused as the `logs` folder is,
    exit 1 (the agents could otherwise read the queue's secret)."""
    odd = tmp_path / os.fsdecode(b"q\xffdir")
    odd.mkdir()
    for name in ("ca.pem", "client.pem", "client.key", "client.creds"):
        (odd / name).write_text("-\n", encoding="utf-8")
    team = tmp_path / "team"
    team.mkdir()
    (team / "agents.yaml").write_text(
        "queue:\n  servers: tls://127.0.0.1:4222\n"
        "  tls:\n    ca: ${QD}/ca.pem\nagents:\n  a:\n    prompt: A.\n",
        encoding="utf-8",
    )
    env = {**_env(tmp_path), "QD": str(odd)}
    done = octy("config", "--json", cwd=team, env=env)
    assert done.returncode == 0, done
    assert json.loads(done.stdout)["queue"]["tls_ca"] == f"{tmp_path}/q\\xffdir/ca.pem"
    (team / "agents.yaml").write_text(
        "queue:\n  servers: tls://127.0.0.1:4222\n  creds: ${QD}/client.creds\n"
        "  tls:\n    ca: ${QD}/ca.pem\n    cert: ${QD}/client.pem\n    key: ${QD}/client.key\n"
        "agents:\n  a:\n    prompt: A.\n",
        encoding="utf-8",
    )
    for verb in (("config", "--json"), ("up", "--json", "--no-model-check")):
        done = octy(*verb, cwd=team, env=env, timeout=60)
        assert done.returncode == 1, done
        assert json.loads(done.stdout)["message"].splitlines()[1:] == [
            f"{tmp_path}/q\\xffdir/{name} is not valid UTF-8 text: the agents' sandbox and "
            "permission rules cannot name it, to hide it; give the team paths (and real "
            "paths) that are UTF-8 text"
            for name in ("client.creds", "client.key")
        ]


def test_a_byte_that_is_not_utf8_in_a_prompt_is_one_of_the_rosters_problems(
    tmp_path: Path,
) -> None:
    """YAML's `"\\uDCFF"`, or 0xff from a `${VAR}`, passed the check above as a byte a path
    can hold; in a prompt (a description, the team's name: all in the system prompt) it
    made each start of the agent's session fail writing that prompt (UnicodeEncodeError,
    measured in a running team: six times, then `failed`). Now a roster problem, with its
    line; an environment value keeps such a byte (it is one)."""
    team = tmp_path / "team"
    team.mkdir()
    (team / "agents.yaml").write_text(
        'name: "t\\uDCFE"\ndefaults:\n  description: "${V}"\nagents:\n  a:\n'
        '    prompt: "A\\uDCFF."\n  b:\n    prompt: B.\n    env:\n      prompt: "${V}"\n',
        encoding="utf-8",
    )
    said = (
        "which is not UTF-8 text (a prompt, a description and the team's name are written "
        "to the model as text); remove it"
    )
    for verb in (("config",), ("up", "--no-model-check")):
        done = octy(*verb, cwd=team, env={**_env(tmp_path), "V": os.fsdecode(b"\xff")})
        assert done.returncode == 1, done
        assert done.stderr.removeprefix("octy-orchestrate: ").splitlines() == [
            "3 problem(s) in agents.yaml:",
            f"agents.yaml:1: key 'name': contains the byte \\xfe, {said}",
            f"agents.yaml:3: key 'defaults.description': contains the byte \\xff, {said}",
            f"agents.yaml:6: key 'agents.a.prompt': contains the byte \\xff, {said}",
        ]
    assert sorted(p.name for p in team.iterdir()) == ["agents.yaml"]


def test_a_queue_secret_file_with_a_second_name_or_a_backslash_is_refused(
    tmp_path: Path,
) -> None:
    """The agents' rules hide the queue's `creds` file and TLS `key` by their paths. A hard
    link to the creds file made before `up` (in the agent's folder) handed it to the real
    CLI's Read tool and to a sandboxed `cat`; a creds file in a folder whose name has a
    backslash was returned by the Read tool, its rule escaped or not (measured on
    2.1.332). `config` and `up` said nothing of either and started the team: now both are
    among the roster's problems."""
    nats = tmp_path / "nats"
    nats.mkdir()
    (nats / "octy.creds").write_text("-\n", encoding="utf-8")
    odd = tmp_path / "k\\x"
    odd.mkdir()
    for name in ("client.pem", "client.key"):
        (odd / name).write_text("-\n", encoding="utf-8")
    team = tmp_path / "team"
    team.mkdir()
    os.link(nats / "octy.creds", team / "copy.creds")
    (team / "agents.yaml").write_text(
        f"queue:\n  servers: tls://127.0.0.1:4222\n  creds: {nats}/octy.creds\n"
        f"  tls:\n    cert: '{odd}/client.pem'\n    key: '{odd}/client.key'\n"
        "agents:\n  a:\n    prompt: A.\n",
        encoding="utf-8",
    )
    for verb in (("config", "--json"), ("up", "--json", "--no-model-check")):
        done = octy(*verb, cwd=team, env=_env(tmp_path), timeout=60)
        assert done.returncode == 1, done
        assert json.loads(done.stdout)["message"].splitlines()[1:] == [
            f"{odd}/client.key has a backslash: the agents' permission rules cannot name it, "
            "to hide it; give the team paths (and real paths) without one",
            f"{nats}/octy.creds has 2 names (hard links): the agents' sandbox hides it by this "
            "one, they could read it by another; give the queue a secret file with one name "
            "(copy it)",
        ]
    assert sorted(p.name for p in team.iterdir()) == ["agents.yaml", "copy.creds"]


def test_a_team_in_a_folder_with_a_backslash_is_refused(tmp_path: Path) -> None:
    """The real CLI's Read tool, with the supervisor's rules, returned a file of the
    database's folder of a team in a `t\\x` folder (measured on 2.1.332): its rule cannot
    name the folder. `config` now says so of each hidden folder and of agents.yaml."""
    team = tmp_path / "t\\x"
    team.mkdir()
    (team / "agents.yaml").write_text("agents:\n  a:\n    prompt: A.\n", encoding="utf-8")
    done = octy("config", "--json", cwd=team, env=_env(tmp_path))
    assert done.returncode == 1, done
    said = json.loads(done.stdout)["message"].splitlines()[1:]
    assert [line.split(" has a backslash:")[0] for line in said] == [
        f"{team}/{name}" for name in ("queue", "logs", "agents.yaml")
    ], said
