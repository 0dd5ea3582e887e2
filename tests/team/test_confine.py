"""Where the file tools may write (orchestrator/confine.py): the rules on their own, then a
real claude CLI whose Write calls outside its folder are refused by the policy hook (found
by review: Write rewrote the supervisor's launcher and the next start ran it unsandboxed)."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from team_harness import Team, agent_rule

from orchestrator import confine
from orchestrator.cli.team_record import record_dir, state_dir
from orchestrator.roster import load_roster
from orchestrator.sandbox import missing_programs
from orchestrator.scripted_model import tool_results


def _roster(folder: Path, owns: str = "") -> Any:
    (folder / "prompts").mkdir(exist_ok=True)
    (folder / "prompts" / "b.md").write_text("You are b.", encoding="utf-8")
    text = f"""\
    agents:
      a:
        prompt: p
        {owns}
      b:
        prompt_file: prompts/b.md
    """
    path = folder / "agents.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_roster(path, {})


def test_without_owns_only_the_agents_folder_and_temp_are_writable(tmp_path: Path) -> None:
    """``owns`` unset: the agent's folder and its own temp folder; not a sibling folder,
    not through ``..``, not through a symlink in its folder, not another agent's temp or
    the launcher beside it, not the CLI's settings copy in its own temp."""
    team, launcher = tmp_path / "team", tmp_path / "octy-x"
    team.mkdir()
    roster = _roster(team)
    spec, temp = roster.agents["a"], launcher / "tmp" / "a"
    (launcher / "tmp" / "b").mkdir(parents=True)
    temp.mkdir()
    (tmp_path / "other").mkdir()
    (team / "link").symlink_to(tmp_path / "other")

    def refused(path: str) -> bool:
        return confine.refusal(spec, team, temp, roster, path) is not None

    assert not refused("src/new.py")
    assert not refused(str(team / "notes.md"))
    assert not refused(str(temp / "scratch.txt"))
    assert refused(str(tmp_path / "other" / "x"))
    assert refused("../other/x")
    assert refused("link/x")
    assert refused(str(launcher / "claude"))
    assert refused(str(launcher / "tmp" / "b" / "x"))
    assert refused(str(temp / "claude-0" / "claude-settings-0123.json"))
    assert refused("")
    assert refused(".octy/worktrees/t/b/src/x.py")  # another agent's worktree under the repo
    own_tree = team / ".octy" / "worktrees" / "t" / "a"
    own_tree.mkdir(parents=True)
    assert confine.refusal(spec, own_tree, temp, roster, "src/x.py") is None
    assert confine.refusal(spec, own_tree, temp, roster, "../b/src/x.py") is not None
    why = confine.refusal(spec, team, temp, roster, str(tmp_path / "other" / "x"))
    assert why is not None
    assert f"may write only in {team}" in why


def test_the_teams_own_files_git_and_the_install_are_refused_even_with_owns(
    tmp_path: Path,
) -> None:
    """With ``owns`` its globs decide (checked after), but never the database or logs
    folder, agents.yaml or a prompt file, a .git folder, the Python install, the team
    record folder, whatever ``owns`` says."""
    roster = _roster(tmp_path, owns='owns: ["/**"]')
    spec = roster.agents["a"]
    (tmp_path / ".git" / "hooks").mkdir(parents=True)
    for path in [
        tmp_path / "queue" / "team.db",
        tmp_path / "logs" / "a.log",
        tmp_path / "agents.yaml",
        tmp_path / "prompts" / "b.md",
        tmp_path / ".git" / "hooks" / "post-merge",
        Path(sys.prefix) / "lib" / "evil.pth",
        Path(confine.__file__),
        (record_dir() or Path(confine.__file__)) / "x.json",
        (state_dir() or Path(confine.__file__)) / "rosters" / "x.json",  # the roster cache
    ]:
        assert confine.refusal(spec, tmp_path, None, roster, str(path)) is not None, path
    # Outside its folder is the globs' call once owns is set (policy.owner_check).
    assert confine.refusal(spec, tmp_path, None, roster, "/srv/elsewhere/x") is None


def test_the_queues_secret_files_are_refused_even_with_owns(tmp_path: Path) -> None:
    """The queue's ``creds`` and TLS ``key`` files (sandbox.secret_files), reached by any
    path, are never written by a file tool, whatever ``owns`` says; its public CA is the
    globs' call."""
    nats = tmp_path / "nats"
    nats.mkdir()
    for name in ("octy.creds", "client.key", "client.pem", "ca.pem"):
        (nats / name).write_text("-\n", encoding="utf-8")
    (tmp_path / "via").symlink_to(nats)
    queue = (
        "queue:\n  servers: tls://127.0.0.1:4222\n  creds: via/octy.creds\n"
        "  tls: {ca: nats/ca.pem, cert: nats/client.pem, key: nats/client.key}\n"
    )
    (tmp_path / "agents.yaml").write_text(
        queue + 'agents:\n  a:\n    prompt: p\n    owns: ["/**"]\n', encoding="utf-8"
    )
    roster = load_roster(tmp_path / "agents.yaml", {})
    spec = roster.agents["a"]
    for path in (nats / "octy.creds", tmp_path / "via" / "client.key", "nats/../via/octy.creds"):
        said = confine.refusal(spec, tmp_path, None, roster, str(path))
        assert said is not None, path
        assert "queue's credentials" in said, path
    assert confine.refusal(spec, tmp_path, None, roster, str(nats / "ca.pem")) is None


@pytest.mark.cli
@pytest.mark.skipif(bool(missing_programs()), reason="the CLI's sandbox needs bubblewrap")
def test_a_real_agents_write_tool_cannot_leave_its_folder(team: Any, tmp_path: Path) -> None:
    """The reviewer's escape, through the real CLI: an agent with Bash, Write and Read
    finds the supervisor's launcher from CLAUDE_CODE_TMPDIR and writes it, writes outside
    its folder (absolute, ``..``, a symlink) and into a .git/hooks; each is refused by the
    hook and nothing changes. Writes in its folder and its temp folder go through."""
    me = agent_rule("mallory")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (tmp_path / "link").symlink_to(outside)
    (tmp_path / "repo" / ".git" / "hooks").mkdir(parents=True)
    find = 'echo "STEP1 L=${CLAUDE_CODE_TMPDIR%/tmp/*}/claude T=$CLAUDE_CODE_TMPDIR"'
    targets = [
        "{l}",
        str(outside / "abs.txt"),
        "sub/../../" + outside.name + "/dotdot.txt",
        "link/symlinked.txt",
        "repo/.git/hooks/post-merge",
        "inside.txt",
        "{t}/scratch.txt",
    ]
    writes = [
        {"name": "Write", "input": {"file_path": p, "content": "#!/bin/sh\necho PWNED\n"}}
        for p in targets
    ]
    t: Team = team(
        [
            {"agent": me, "tool_result": "hook error|File created", "text": "done"},
            {"agent": me, "tool_result": r"STEP2 L=(?P<l>\S+) T=(?P<t>\S+)", "tool_use": writes},
            {
                # The CLI refuses to overwrite a file the session has not read.
                "agent": me,
                "tool_result": r"STEP1 L=(?P<l>\S+) T=(?P<t>\S+)",
                "tool_use": [
                    {"name": "Read", "input": {"file_path": "{l}"}},
                    {"name": "Bash", "input": {"command": "echo STEP2 L={l} T={t}"}},
                ],
            },
            {
                "agent": me,
                "match": "GO-CONFINE",
                "tool_use": {"name": "Bash", "input": {"command": find}},
            },
        ],
        {"mallory": {"tools": ["Bash", "Write", "Read"]}},
    )
    t.up()
    t.wait_ready("mallory")
    assert t.ask("mallory", "GO-CONFINE", timeout=120) == "done"
    results = [str(r["content"]) for req in t.model.requests for r in tool_results(req)]
    found = next(m for r in results if (m := re.search(r"STEP1 L=(\S+) T=(\S+)", r)))
    launcher = Path(found[1])
    assert not launcher.exists()  # the launcher is in no folder (a sealed memory file)
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "repo" / ".git" / "hooks" / "post-merge").exists()
    assert (tmp_path / "inside.txt").read_text(encoding="utf-8").startswith("#!/bin/sh")
    refused = [r for r in results if "may not write it" in r or "outside this agent's folder" in r]
    assert len(refused) == 5, results
    assert sum("File created" in r for r in results) == 2, results
    assert "write_denied" in (tmp_path / "logs" / "mallory.jsonl").read_text(encoding="utf-8")


def _with_prompt_files(t: Team, files: dict[str, str]) -> None:
    """agents.yaml rewritten so that the agents in ``files`` read their prompt from there."""
    data = yaml.safe_load(t.roster_path.read_text(encoding="utf-8"))
    for name, path in files.items():
        spec = data["agents"].setdefault(name, {"description": f"{name} agent"})
        spec.pop("prompt", None)
        spec["prompt_file"] = path
    t.roster_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


@pytest.mark.cli
@pytest.mark.skipif(bool(missing_programs()), reason="the CLI's sandbox needs bubblewrap")
def test_a_prompt_file_added_by_reload_is_read_only_to_running_agents(
    team: Any, tmp_path: Path
) -> None:
    """Found by review: the sandbox's read-only list is fixed when a CLI connects, so an
    agent already running could rewrite the prompt file of an agent a reload added. Now
    a reload that changes the list restarts the running agents (before the new one
    starts), and their shell finds the new prompt file read-only."""
    me = agent_rule("a")
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "b.md").write_text("You are b.", encoding="utf-8")
    (tmp_path / "prompts" / "c.md").write_text("You are c.", encoding="utf-8")
    hijack = "echo 'HIJACKED by a' > prompts/c.md; echo c_rc=$?; echo STEP1"
    t: Team = team(
        [
            {"agent": me, "tool_result": "STEP1", "text": "done"},
            {
                "agent": me,
                "match": "GO-RELOAD",
                "tool_use": {"name": "Bash", "input": {"command": hijack}},
            },
        ],
        {"a": {"tools": ["Bash"]}, "b": {}},
    )
    _with_prompt_files(t, {"b": "prompts/b.md"})
    t.up()
    t.wait_ready("a", "b")
    before = t.agent_pid("a")
    _with_prompt_files(t, {"b": "prompts/b.md", "c": "prompts/c.md"})
    t.wait_for(lambda: t.states().get("c") == "ready", what="c added by the reload")
    t.wait_ready("a", "b", "c")
    assert t.agent_pid("a") != before  # restarted with the new read-only list
    assert t.ask("a", "GO-RELOAD", timeout=120) == "done"
    results = [str(r["content"]) for req in t.model.requests for r in tool_results(req)]
    assert any("STEP1" in r and "c_rc=1" in r for r in results), results
    assert (tmp_path / "prompts" / "c.md").read_text(encoding="utf-8") == "You are c."


@pytest.mark.cli
@pytest.mark.skipif(bool(missing_programs()), reason="the CLI's sandbox needs bubblewrap")
def test_a_reload_that_moves_the_database_keeps_the_running_ones_hidden(
    team: Any, tmp_path: Path
) -> None:
    """Found by review: a reload that changed `database` and `logs` restarted the agents it
    changed with a sandbox hiding the new folders, while the team's database stayed in the
    old one, open to their shell. Team settings take effect at the next `up`: the running
    team keeps its own, and a restarted agent's shell still cannot see the queue folder."""
    me = agent_rule("a")
    look = "test -e queue/team.db && echo DB=SEEN || echo DB=HIDDEN; echo STEP1"
    t: Team = team(
        [
            {"agent": me, "tool_result": r"(DB=\w+)", "text": "{1}"},
            {
                "agent": me,
                "match": "GO-LOOK",
                "tool_use": {"name": "Bash", "input": {"command": look}},
            },
        ],
        {"a": {"tools": ["Bash"]}},
    )
    t.up()
    t.wait_ready("a")
    assert (tmp_path / "queue" / "team.db").exists()
    assert t.ask("a", "GO-LOOK", timeout=120) == "DB=HIDDEN"
    before = t.agent_pid("a")
    data = yaml.safe_load(t.roster_path.read_text(encoding="utf-8"))
    data["database"], data["logs"] = "moved/team.db", "moved-logs"
    data["agents"]["a"]["description"] = "a, changed so the reload restarts it"
    t.roster_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    t.wait_for(lambda: t.agent_pid("a") not in (None, before), what="a restarted by the reload")
    t.wait_ready("a")
    assert t.ask("a", "GO-LOOK", timeout=120) == "DB=HIDDEN"
    assert not (tmp_path / "moved").exists()
    log = (tmp_path / "logs" / "supervisor.jsonl").read_text(encoding="utf-8")
    assert "reload_partial" in log


@pytest.mark.cli
@pytest.mark.skipif(bool(missing_programs()), reason="the CLI's sandbox needs bubblewrap")
def test_an_agent_working_in_home_cannot_write_the_state_folder(team: Any, tmp_path: Path) -> None:
    """Review H: an agent whose folder is HOME wrote a roster-cache entry naming a decoy
    database, and `down` then said "no team running" while the team ran on. The state
    folder (team records, roster cache) is now refused to its Write tool and hidden from its
    sandboxed Bash; `down` still stops the team."""
    home = tmp_path / "home"
    rosters = home / ".local" / "state" / "octy-orchestrate" / "rosters"
    me = agent_rule("mole")
    # Through python, so that the CLI's own reading of the command (its permission rules
    # see `mkdir DIR`) cannot refuse it first: the sandbox's denyWrite is what holds it.
    forge = (
        "python3 -c \"import os; p = os.path.expanduser('~/.local/state/octy-orchestrate/"
        "rosters'); os.makedirs(p, exist_ok=True); open(p + '/bash.json', 'w').write('{}')\""
        '; echo "rc=$?"'
    )
    t: Team = team(
        [
            {"agent": me, "tool_result": "rc=|denied|may not write", "text": "done"},
            {
                "agent": me,
                "match": "GO-FORGE",
                "tool_use": [
                    {"name": "Bash", "input": {"command": forge}},
                    {
                        "name": "Write",
                        "input": {"file_path": str(rosters / "write.json"), "content": "{}"},
                    },
                ],
            },
        ],
        {"mole": {"tools": ["Bash", "Write", "Read"], "cwd": str(home)}},
    )
    t.env.pop("XDG_STATE_HOME", None)
    t.up()
    t.wait_ready("mole")
    assert t.ask("mole", "GO-FORGE", timeout=120) == "done"
    results = [str(r["content"]) for req in t.model.requests for r in tool_results(req)]
    assert len(results) == 2, results
    # The sandbox hides the folder behind an empty tmpfs: the write lands there, not here.
    # Its last line: on a loaded machine (5 runs in 5 beside two busy loops, none without)
    # the CLI's sandboxed bash first says "/bin/bash: HOME/.bashrc: Permission denied"
    # twice (the agent's folder is HOME, whose .bashrc the sandbox keeps from it), then
    # runs the command; the CLI's doing, not the supervisor's.
    assert results[0].splitlines()[-1].startswith("rc="), results
    assert "denied" in results[1] or "may not write" in results[1], results
    assert not (rosters / "bash.json").exists()
    assert not (rosters / "write.json").exists()
    assert (home / ".local" / "state" / "octy-orchestrate").is_dir()  # no placeholder file
    assert "stopped" in t.octy("down").stdout
    assert t.proc.wait(timeout=60) == 0  # a safety net, not a measurement
