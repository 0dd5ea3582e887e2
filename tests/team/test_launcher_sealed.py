"""What the supervisor starts each claude through cannot be changed by an agent.

The launcher was a script in the supervisor's private folder, beside the agents' temp
folders, put back before each start: an agent that rewrote it between that check and the
exec had its code run outside the sandbox, with the team's database at hand, at the next
start of any agent. Now it is a sealed memory file (orchestrator/launcher.py). Real `up`,
the real CLI, real signals: an agent without the sandbox (the strongest: its shell is this
user) rewrites the old launcher's path and the memory file in a loop while another
agent's claude is restarted, and a third agent's Write tool aims at the memory file."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from team_harness import Team, agent_rule

from orchestrator import procid
from orchestrator.launcher import bundled_cli
from orchestrator.prompts import text_of

pytestmark = [pytest.mark.cli, pytest.mark.slow]

RESTARTS = 3

# Rewrites, until `stop` appears: the launcher's old path (the private folder, found from
# CLAUDE_CODE_TMPDIR = <folder>/tmp/<agent>) and every memory file the supervisor holds
# (the claude's parent, found up the process tree), with a script that leaves a mark.
RACER = """\
import os, sys, time
cli, mark = sys.argv[1], sys.argv[2]
folder = os.path.dirname(os.path.dirname(os.environ["CLAUDE_CODE_TMPDIR"]))
evil = f'#!/bin/sh\\ntouch "{mark}"\\nexec "{cli}" "$@"\\n'.encode()
pid = os.getppid()
while os.path.realpath(f"/proc/{pid}/exe") != cli:
    pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
sup = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
open("racing", "w").close()
old = tries = written = 0
end = time.monotonic() + 300
while time.monotonic() < end and not os.path.exists("stop"):
    try:  # replaced whole (a rename), never seen half-written
        with open(os.path.join(folder, "claude.new"), "wb") as f:
            f.write(evil)
        os.chmod(os.path.join(folder, "claude.new"), 0o700)
        os.replace(os.path.join(folder, "claude.new"), os.path.join(folder, "claude"))
        old += 1
    except OSError:
        pass
    for fd in os.listdir(f"/proc/{sup}/fd"):
        path = f"/proc/{sup}/fd/{fd}"
        try:
            if not os.readlink(path).startswith("/memfd:octy"):
                continue
            tries += 1
            with open(path, "r+b") as f:
                f.write(evil)
                f.flush()
            written += 1
        except OSError:
            pass
print(f"OLD={old} TRIES={tries} WRITTEN={written}", flush=True)
"""


def test_no_agent_can_change_what_the_next_start_executes(team: Any, tmp_path: Path) -> None:
    cli = os.path.realpath(str(bundled_cli()))
    mark = tmp_path / "PWNED"
    (tmp_path / "racer.py").write_text(RACER, encoding="utf-8")
    t: Team = team(
        [
            {
                "agent": agent_rule("m"),
                "tool_result": r"(OLD=\d+ TRIES=\d+ WRITTEN=\d+)",
                "text": "{1}",
            },
            {
                "agent": agent_rule("m"),
                "match": "GO-RACE",
                "tool_use": {
                    "name": "Bash",
                    "input": {"command": f"python3 racer.py {cli} {mark}", "timeout": 600000},
                },
            },
            {"agent": agent_rule("w"), "tool_result": r"(?s)(.+)", "text": "{1}"},
            {
                "agent": agent_rule("w"),
                "match": r"WRITE (\S+)",
                "tool_use": [
                    {"name": "Read", "input": {"file_path": "{1}"}},  # the CLI's rule
                    {"name": "Write", "input": {"file_path": "{1}", "content": "echo PWNED\n"}},
                ],
            },
        ],
        {
            "m": {"tools": ["Bash"], "sandbox": False},
            "v": {},
            "w": {"tools": ["Read", "Write"], "owns": ["/**"]},  # the hook's folder rule off
        },
    )
    t.up()
    t.wait_ready("m", "v", "w")
    race = t.request("m", "GO-RACE")
    t.wait_for((tmp_path / "racing").exists, what="the racer running")
    for _ in range(RESTARTS):
        pid = t.agent_pid("v")
        assert pid
        os.kill(pid, signal.SIGKILL)
        t.wait_for(
            lambda old=pid: mark.exists() or t.agent_pid("v") not in (None, old),
            what="v restarted",
        )
        assert not mark.exists()  # the start did not run the agent's script
        t.wait_ready("v")
    (tmp_path / "stop").write_text("", encoding="utf-8")
    with t.mailbox() as mb:
        counts = dict(kv.split("=") for kv in text_of(mb.wait_for_reply(race.id, 120).body).split())
    assert not mark.exists()  # no start ran the agent's script
    assert int(counts["TRIES"]) > 0  # it found the memory file, and
    assert counts["WRITTEN"] == "0"  # could not change it
    supervisor = procid.parent(t.agent_pid("v") or 0)
    assert supervisor
    [launcher] = [
        f"/proc/{supervisor}/fd/{fd}"
        for fd in os.listdir(f"/proc/{supervisor}/fd")
        if os.readlink(f"/proc/{supervisor}/fd/{fd}").startswith("/memfd:octy")
    ]
    before = Path(launcher).read_bytes()
    answer = t.ask("w", f"WRITE {launcher}", timeout=120)
    print("WRITE ANSWER", answer)
    assert Path(launcher).read_bytes() == before
    assert b"PWNED" not in before
    assert "File created" not in answer
    assert "updated successfully" not in answer
