"""The symlink race under a Write (issue: identity and confinement, point 2).

The policy hook resolves a Write's path and checks it; then the CLI, which runs its file
tools outside the sandbox, writes. A background command of the agent's own sandboxed
Bash that swaps a folder of its ``cwd`` for a symlink between the two sends the write
anywhere the user can write. The CLI's background
tasks are off (session_options), so the racer is another agent's Bash in a shared folder.
Real CLI, real bubblewrap sandbox, real files: 200 writes through a folder the racer keeps
flipping (renameat2 exchange)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from team_harness import Team, agent_rule

from orchestrator.prompts import text_of
from orchestrator.sandbox import missing_programs
from orchestrator.scripted_model import tool_results

pytestmark = [
    pytest.mark.cli,
    pytest.mark.slow,
    pytest.mark.skipif(bool(missing_programs()), reason="the CLI's sandbox needs bubblewrap"),
]

BATCHES, PER_BATCH = 8, 25  # 200 writes
REFUSALS = (
    "hook error",  # the supervisor's hook (the flip was there when it looked)
    "Refusing to write",  # the CLI: the folder changed between its check and its write
    "has been denied",  # the CLI's deny rules
    "needs a permission",  # the CLI would ask a person (outside the cwd, .git)
)

# The racer: flips `d` between a real folder and a symlink to the victim until `stop`
# appears (or 5 minutes pass). Run by the agent's own Bash, in its sandbox, in background.
RACER = """\
import ctypes, os, random, sys, time
libc = ctypes.CDLL(None, use_errno=True)
victim = sys.argv[1]
os.makedirs("d", exist_ok=True)
os.symlink(victim, "l")
open("racing", "w").close()
end = time.monotonic() + 300
flips = 0
while time.monotonic() < end and not os.path.exists("stop"):
    # d and l exchanged atomically (renameat2 RENAME_EXCHANGE): d is the folder, then
    # the symlink, then the folder again; never missing.
    if libc.renameat2(-100, b"d", -100, b"l", 2) != 0:
        print("SWAP FAILED", ctypes.get_errno(), flush=True)
        break
    flips += 1
    time.sleep(random.uniform(0, 0.003))
print("FLIPS", flips, flush=True)
"""


@pytest.fixture
def victim() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="race-victim-"))  # outside the agent's folder
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def writer_rules(agent: str, cwd: Path) -> list[dict[str, Any]]:
    """``agent`` writes ``d/x0`` ... through the real CLI, in batches of Write calls."""
    me = agent_rule(agent)

    def batch(k: int) -> list[dict[str, Any]]:
        return [
            {
                "name": "Write",
                "input": {"file_path": f"{cwd}/d/x{k * PER_BATCH + i}", "content": "ESCAPED\n"},
            }
            for i in range(PER_BATCH)
        ]

    rules: list[dict[str, Any]] = [
        {"agent": me, "tool_result": r"(?s).", "tool_use": batch(k), "times": 1}
        for k in range(1, BATCHES)
    ]
    rules.append({"agent": me, "tool_result": r"(?s).", "text": "written", "times": 1})
    rules.append({"agent": me, "match": "GO-WRITE", "tool_use": batch(0)})
    return rules


def racer_rules(agent: str, victim: Path) -> list[dict[str, Any]]:
    """``agent`` runs the racer in its sandboxed Bash (in the foreground: the CLI's
    background tasks are off) until the test stops it."""
    me = agent_rule(agent)
    return [
        {"agent": me, "tool_result": r"(?s)FLIPS (\d+)", "text": "flips={1}"},
        {
            "agent": me,
            "match": "GO-RACE",
            "tool_use": {
                "name": "Bash",
                "input": {"command": f"python3 racer.py {victim}", "timeout": 600000},
            },
        },
    ]


@pytest.mark.parametrize("target", ["outside", "git-hooks", "owned"])
def test_another_agents_symlink_flip_cannot_send_a_write_elsewhere(
    team: Any, tmp_path: Path, victim: Path, target: str
) -> None:
    """Two agents share a folder: ``r`` (Bash, sandboxed) flips ``d`` between a folder
    and a symlink to a place ``w``'s file tools are refused: a folder outside, a
    repository's ``.git/hooks`` in the shared folder, the folder a third agent owns.
    ``w`` (Write, no Bash) writes into ``d``. No write may land there.

    Measured before orchestrator/write_hold.py: outside, 1 of 200 in one run of five
    (the CLI checks its own rules at the write and pins the folder, which catches most);
    .git/hooks 0 (the CLI guards it); the owned folder 24 of 200 (only the hook knows
    that rule)."""
    dest = {
        "outside": victim,
        "git-hooks": tmp_path / "repo" / ".git" / "hooks",
        "owned": tmp_path / "owned",
    }[target]
    dest.mkdir(parents=True, exist_ok=True)
    (tmp_path / "racer.py").write_text(RACER, encoding="utf-8")
    t: Team = team(
        racer_rules("r", dest) + writer_rules("w", tmp_path),
        {
            "r": {"tools": ["Bash"]},
            "w": {"tools": ["Write", "Read"]},
            "o": {"tools": ["Write"], "owns": ["owned/"]},
        },
    )
    t.up()
    t.wait_ready("r", "w")
    race = t.request("r", "GO-RACE")
    t.wait_for(
        (tmp_path / "racing").exists,
        what="the racer flipping",
    )
    assert t.ask("w", "GO-WRITE", timeout=300) == "written"
    (tmp_path / "stop").write_text("", encoding="utf-8")
    with t.mailbox() as mb:
        flips = text_of(mb.wait_for_reply(race.id, 120).body)
    results = [str(r["content"]) for req in t.model.requests for r in tool_results(req)]
    created = sum("File created" in r for r in results)
    # The CLI's own rule, checked on the path as it is when the CLI writes.
    at_write = sum("Permission to edit" in r and "has been denied" in r for r in results)
    refused = sum(any(why in r for why in REFUSALS) for r in results)
    escaped = sorted(p.name for p in dest.iterdir())
    print(
        f"RACE {target} {flips} writes={BATCHES * PER_BATCH} created={created} "
        f"refused={refused} caught_at_write={at_write} escaped={len(escaped)}"
    )
    assert created > 0, results[:5]
    assert refused > 0, results[:5]
    assert escaped == []
