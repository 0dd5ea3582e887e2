"""Test modules take their helpers from uniquely named modules, never from a conftest:
every test folder's conftest is a module named `conftest`, and `from conftest import X`
gets whichever one is imported (or on sys.path) first. One pytest run given
tests/cli/ and tests/mailbox/contract/ files stopped at collection, `cannot import name
'Opener' from 'conftest' (tests/cli/conftest.py)`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def test_no_test_module_imports_from_a_conftest() -> None:
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n.split(".")[-1] == "conftest" for n in names):
                found.append(f"{path.relative_to(TESTS)}:{node.lineno}")
    assert found == []


def test_one_run_collects_the_cli_and_the_queue_contract_tests_together() -> None:
    """The run that failed: a contract test module collected after a CLI one."""
    files = ["mailbox/contract/test_contract_races.py", "cli/test_roster_cache.py"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only"]
        + [str(TESTS / f) for f in files],
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "ImportError" not in done.stdout
