"""A FIFO or a link planted in the logs folder (review B.3): `logs`, `logs -f` and `trace`
refuse it by name in one line, instead of hanging on the FIFO or following the link (to
/dev/zero: gigabytes read)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_runner import octy

from orchestrator.mailbox import Mailbox

# A safety net: before the fix the FIFO hung the verb until this ran out.
WEDGED_S = 60.0


def _fifo(path: Path) -> None:
    os.mkfifo(path, 0o600)


def _link_to_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _link_to_file(path: Path) -> None:
    real = path.parent.parent / "elsewhere.jsonl"
    real.write_text("", encoding="utf-8")
    path.symlink_to(real)


PLANTS: dict[str, Callable[[Path], None]] = {
    "fifo": _fifo,
    "link to /dev/zero": _link_to_zero,
    "link to a file": _link_to_file,
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "agents.yaml").write_text("agents:\n  a:\n    prompt: A.\n", encoding="utf-8")
    with Mailbox(tmp_path / "queue" / "team.db") as mb:
        mb.register("a")
    (tmp_path / "logs").mkdir(mode=0o700)
    return tmp_path


@pytest.mark.parametrize("plant", PLANTS)
@pytest.mark.parametrize("argv", [["logs", "a"], ["logs", "-f", "a"], ["trace", "ID"]])
def test_a_planted_log_file_is_refused_by_name(folder: Path, plant: str, argv: list[str]) -> None:
    with Mailbox(folder / "queue" / "team.db") as mb:
        message_id = mb.send("user", "a", "hi").id
    name = "supervisor" if argv[0] == "trace" else "a"
    planted = folder / "logs" / f"{name}.jsonl"
    PLANTS[plant](planted)
    argv = [message_id if a == "ID" else a for a in argv]
    try:
        done = octy(*argv, cwd=folder, timeout=WEDGED_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(argv)}` hung on a {plant} in the logs folder")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert f"log file {planted}:" in line
