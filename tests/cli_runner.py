"""``octy-orchestrate ARGV`` in a fresh process, as a person's shell or a script runs it:
the installed console script, its output captured, a timeout as a safety net.

One runner for the tests of every folder (each had its own copy). Standard input is
/dev/null unless ``stdin`` is given: a verb that would ask on a terminal (``queue
purge``) or needs one (``top``) sees none, whatever terminal pytest was started from.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

CLI = Path(sys.executable).parent / "octy-orchestrate"
RUN_TIMEOUT_S = 120.0  # a safety net for a wedged subprocess, not a measurement


def octy(
    *argv: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = RUN_TIMEOUT_S,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run the CLI; its output as text. ``env``: the whole environment (None: this
    process's). ``check``: a non-zero exit fails the test, with what the verb printed."""
    done = subprocess.run(
        [str(CLI), *argv],
        cwd=cwd,
        env=None if env is None else dict(env),
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"octy-orchestrate {' '.join(argv)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
    return done


def octy_bytes(
    *argv: str | bytes,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float = RUN_TIMEOUT_S,
) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI with arguments or input that need not be text (invalid UTF-8), and
    its output as bytes; ``NO_COLOR`` set, over ``env`` (None: this process's)."""
    return subprocess.run(
        [str(CLI), *argv],
        cwd=cwd,
        env={**(os.environ if env is None else env), "NO_COLOR": "1"},
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def octy_bg(*argv: str, cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start the CLI and return at once (a verb that waits: ``ask``, ``logs -f``)."""
    return subprocess.Popen(
        [str(CLI), *argv],
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
