"""The queue's secret files (``creds``, the TLS client ``key``) are out of every agent's
reach, as the database and logs are: README (NATS, Security) tells users to prefer a
``creds:`` file where agents must not see the queue's secret, and the agents' rules
(orchestrator/sandbox.py) named only the database folder, the logs and the state folder:
the real CLI's Read tool and a sandboxed ``cat`` handed the model both files (measured).
The real CLI with the settings the supervisor gives it, the scripted model driving it."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import ClaudeSDKClient, ResultMessage

from orchestrator import sandbox
from orchestrator.roster import Roster, parse_roster
from orchestrator.scripted_model import tool_results

CREDS = "creds-secret-nkey-SUAOCTYSEED0000"
TLS_KEY = "tls-secret-client-key-0000"
CERT = "public-client-cert-0000"
FILES = {"octy.creds": CREDS, "client.key": TLS_KEY, "client.pem": CERT, "ca.pem": CERT}

ROSTER = """\
queue:
  servers: tls://127.0.0.1:4222
  creds: nats/octy.creds
  tls:
    ca: nats/ca.pem
    cert: nats/client.pem
    key: nats/client.key
agents:
  a:
    prompt: p
    tools: [Read, Bash]
"""


def _team(tmp_path: Path) -> tuple[Roster, Path, Path]:
    """A roster whose queue files are in ``team/nats``, a symlink to ``real``."""
    real = tmp_path / "real"
    real.mkdir()
    for name, text in FILES.items():
        (real / name).write_text(text + "\n", encoding="utf-8")
    team = tmp_path / "team"
    team.mkdir()
    (team / "nats").symlink_to(real)
    return parse_roster(ROSTER, team / "agents.yaml", {}), team / "nats", real


def test_the_queues_secret_files_are_denied_by_their_real_paths(tmp_path: Path) -> None:
    """The creds file and the TLS key are named by their real paths in the Read/Edit deny
    rules and the sandbox's denyRead/denyWrite; the CA and the client certificate are
    public and stay readable."""
    roster, link, real = _team(tmp_path)
    out = sandbox.settings(roster.agents["a"], roster)
    deny = out["permissions"]["deny"]
    fs = out["sandbox"]["filesystem"]
    for name in ("octy.creds", "client.key"):
        path = f"/{real / name}"
        assert {f"Read({path})", f"Edit({path})"} <= set(deny)
        assert path in fs["denyRead"]
        assert path in fs["denyWrite"]
    shown = json.dumps(out)
    assert "client.pem" not in shown
    assert "ca.pem" not in shown
    assert str(link) not in shown
    # An agent opted out of the sandbox keeps the permission rules.
    bare = dataclasses.replace(roster.agents["a"], sandbox=False)
    assert sandbox.settings(bare, roster) == {"permissions": {"deny": deny}}


@pytest.mark.cli
@pytest.mark.skipif(shutil.which("socat") is None, reason="the CLI's sandbox needs socat")
async def test_an_agent_can_neither_read_nor_change_the_creds_file_or_the_tls_key(
    scripted_model: Any, claude_options: Any, tmp_path: Path
) -> None:
    """Its Read tool and ``cat`` are asked for each file by the path the roster gives (through
    the symlinked folder); then one command whose words do not name the files (the CLI's
    own check of a command's paths cannot see them, so the sandbox must) reads, copies,
    hard-links, overwrites, removes and moves them; Grep and Glob search their folder. The
    public certificate is read each time; neither secret reaches the model, and both files
    are left as they were."""
    roster, link, real = _team(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    names = ("octy.creds", "client.key", "client.pem")
    hidden = (
        f"cd {link.parent} && D=na; D=$D'ts'; for f in octy.cr''eds client.k''ey client.pem; "
        'do cat $D/$f; done; C=$D/octy.cr""eds; '
        f"cp $C x; cat x; ln $C {work}/h; cat {work}/h; echo hi > $C; rm -f $C; "
        f"mv $D/client.k''ey {work}/k; cat {work}/k; echo END"
    )
    rules: list[dict[str, Any]] = [{"tool_result": r"(?s).", "text": "done"}]
    for n in names:
        read = {"name": "Read", "input": {"file_path": str(link / n)}}
        rules.append({"match": f"^READ {n}$", "tool_use": read})
        cat = {"name": "Bash", "input": {"command": f"cat {link / n}"}}
        rules.append({"match": f"^CAT {n}$", "tool_use": cat})
    rules.append({"match": "^HIDDEN$", "tool_use": {"name": "Bash", "input": {"command": hidden}}})
    # Over the real folder (ripgrep does not follow the symlinked one): the secret files are
    # left out of what Grep and Glob find.
    grep = {"pattern": "secret|cert", "path": str(real), "output_mode": "content"}
    rules.append({"match": "^GREP$", "tool_use": {"name": "Grep", "input": grep}})
    glob = {"pattern": "*", "path": str(real)}
    rules.append({"match": "^GLOB$", "tool_use": {"name": "Glob", "input": glob}})
    model = scripted_model(rules)
    options = claude_options(
        model,
        cwd=work,
        settings=json.dumps(sandbox.settings(roster.agents["a"], roster)),
        tools=["Read", "Bash", "Grep", "Glob"],
        allowed_tools=["Read", "Bash", "Grep", "Glob"],
    )
    async with ClaudeSDKClient(options) as client:
        for prompt in [
            *(f"{v} {n}" for n in names for v in ("READ", "CAT")),
            "HIDDEN",
            "GREP",
            "GLOB",
        ]:
            await client.query(prompt)
            async for message in client.receive_response():
                if isinstance(message, ResultMessage):
                    break
    seen = [str(r["content"]) for q in model.requests for r in tool_results(q)]
    assert len(seen) == 9, seen
    for s in seen:
        assert CREDS not in s, seen
        assert TLS_KEY not in s, seen
    assert [CERT in s for s in seen[:7]] == [False, False, False, False, True, True, True], seen
    assert "\nEND\n" in seen[6], seen  # the sandboxed command ran to its end
    assert seen[7].count(CERT) == 2, seen  # Grep: ca.pem and client.pem
    globbed = sorted(Path(p).name for p in seen[8].split())
    assert globbed == ["ca.pem", "client.pem"], seen
    for name, text in FILES.items():
        assert (real / name).read_text(encoding="utf-8") == text + "\n"
    assert not {"x", "h", "k"} & {p.name for p in work.iterdir()}


async def _tool_results(
    scripted_model: Any, claude_options: Any, roster: Roster, cwd: Path, calls: list[Any]
) -> list[str]:
    """What the real CLI, run with ``roster``'s settings for agent ``a``, hands the model
    for each tool call of ``calls``, one prompt each."""
    rules: list[dict[str, Any]] = [{"tool_result": r"(?s).", "text": "done"}]
    rules += [{"match": f"^STEP{i}$", "tool_use": c} for i, c in enumerate(calls)]
    model = scripted_model(rules)
    tools = ["Read", "Bash", "Grep", "Glob"]
    settings = json.dumps(sandbox.settings(roster.agents["a"], roster))
    options = claude_options(model, cwd=cwd, settings=settings, tools=tools, allowed_tools=tools)
    async with ClaudeSDKClient(options) as client:
        for i in range(len(calls)):
            await client.query(f"STEP{i}")
            async for message in client.receive_response():
                if isinstance(message, ResultMessage):
                    break
    return [str(r["content"]) for q in model.requests for r in tool_results(q)]


@pytest.mark.cli
@pytest.mark.skipif(shutil.which("socat") is None, reason="the CLI's sandbox needs socat")
async def test_a_glob_character_in_a_hidden_path_does_not_open_it_to_the_read_tool(
    scripted_model: Any, claude_options: Any, tmp_path: Path
) -> None:
    """A permission rule is a gitignore-style pattern: the creds file in a ``n[a]ts`` folder,
    and a team whose folder is ``t[1]`` (its database folder and logs under it), were named
    as they are, ``[a]`` matching only ``a``, and the Read tool returned the creds file and
    a text file in the database's folder (measured). The rules escape such characters; a
    ``*`` folder's rule still refuses its own file, and a ``?`` one, which an escape
    would not (measured)."""
    team = tmp_path / "t[1]"
    work = team / "work"
    work.mkdir(parents=True)
    for folder in ("n[a]ts", "n*ts", "n?ts"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "octy.creds").write_text(CREDS + "\n", encoding="utf-8")
    for folder in ("n[a]ts", "n*ts", "n?ts"):
        roster = parse_roster(
            f"queue:\n  servers: nats://127.0.0.1:4222\n  creds: ../{folder}/octy.creds\n"
            "agents:\n  a:\n    prompt: p\n",
            team / "agents.yaml",
            {},
        )
        roster.database.parent.mkdir(parents=True, exist_ok=True)
        private = roster.database.parent / "queue.txt"
        private.write_text(CREDS + " in the queue\n", encoding="utf-8")
        files = (tmp_path / folder / "octy.creds", private)
        calls = [{"name": "Read", "input": {"file_path": str(p)}} for p in files]
        seen = await _tool_results(scripted_model, claude_options, roster, work, calls)
        assert len(seen) == 2, seen
        for s in seen:
            assert CREDS not in s, (folder, seen)
            assert "denied by your permission settings" in s, (folder, seen)
