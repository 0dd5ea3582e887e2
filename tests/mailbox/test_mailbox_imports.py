"""Writing one row must not import what only event loops and logging need (issue 14:
scripts and hooks call the CLI on every event; asyncio, anyio, structlog and rich
were 150 of the 230 ms of CPU that `from orchestrator.mailbox import Mailbox` took)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("asyncio", "anyio", "sniffio", "structlog", "rich")


def _loaded_after(code: str, tmp_path: Path) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        timeout=60,
    )
    return out.stdout.split()


def test_a_send_imports_no_event_loop_and_no_logging(tmp_path: Path) -> None:
    db = tmp_path / "team.db"
    code = (
        "from orchestrator.mailbox import Mailbox\n"
        f"mb = Mailbox({str(db)!r}); mb.register('bob'); mb.send('user', 'bob', 'hi')\n"
        "mb.wait_for_messages('bob', timeout_s=0.01); mb.close()"
    )
    assert _loaded_after(code, tmp_path) == []


def test_the_async_client_is_still_there_on_first_use(tmp_path: Path) -> None:
    loaded = _loaded_after("from orchestrator.mailbox import AsyncMailbox", tmp_path)
    assert "anyio" in loaded
