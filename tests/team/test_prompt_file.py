"""The system prompt reaches the CLI through a private file, never argv (issue 16 point 12)."""

from __future__ import annotations

import stat
import textwrap
from pathlib import Path

from claude_agent_sdk import ClaudeAgentOptions

from orchestrator.roster import load_roster
from orchestrator.session_options import discard_prompt_file, write_prompt_file


def test_the_prompt_file_is_private_replaces_stale_ones_and_is_discarded(tmp_path: Path) -> None:
    """0600 in the database's 0700 folder; a file left by a killed supervisor for the same
    agent is removed, another agent's (even one whose name starts the same) is not;
    discard_prompt_file deletes it once the CLI has read it."""
    (tmp_path / "agents.yaml").write_text(
        textwrap.dedent(
            """\
            agents:
              a: {prompt: p}
              a-b: {prompt: p}
            """
        ),
        encoding="utf-8",
    )
    roster = load_roster(tmp_path / "agents.yaml", {})
    other = write_prompt_file(roster.agents["a-b"], roster, "B's prompt")
    stale = write_prompt_file(roster.agents["a"], roster, "old")
    path = write_prompt_file(roster.agents["a"], roster, "You are a. token=s3cr3t")

    assert path.parent == roster.database.parent
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="utf-8") == "You are a. token=s3cr3t"
    assert not stale.exists()
    assert other.read_text(encoding="utf-8") == "B's prompt"

    discard_prompt_file(ClaudeAgentOptions(system_prompt={"type": "file", "path": str(path)}))
    assert not path.exists()
    assert other.exists()
