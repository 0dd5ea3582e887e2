"""The roster's limits: depth, size and the kind of file read (issue 16, A.3 and A.5).

A running supervisor re-reads the roster on every edit, so no file content may
hang it or end it: each case is an ordinary roster error with file, line and key.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from orchestrator.errors import RosterErrors
from orchestrator.roster import (
    MAX_DEPTH,
    MAX_INTERPOLATION_DEPTH,
    MAX_PROMPT_BYTES,
    MAX_ROSTER_BYTES,
    load_roster,
    parse_roster,
)


def problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(RosterErrors) as info:
        load_roster(path, {} if environ is None else environ)
    return [str(e) for e in info.value.errors]


def write(folder: Path, text: str) -> Path:
    path = folder / "agents.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_yaml_nested_600_deep_is_a_roster_error(tmp_path: Path) -> None:
    """A value nested ~600 levels deep (flow or block style) used to raise RecursionError
    in the watcher; it is now one error naming line and key, and the limit."""
    flow = write(tmp_path, "agents:\n  a:\n    prompt: hi\n    x-deep: " + "[" * 600 + "]" * 600)
    [flow_error] = problems(flow)
    assert flow_error.startswith(f"{flow}:4: key 'agents.a.x-deep[0][0]")
    assert f"nested more than {MAX_DEPTH} levels deep" in flow_error

    block = "agents:\n  a:\n    prompt: hi\n" + "".join(
        "  " * (i + 2) + f"k{i}:\n" for i in range(300)
    )
    path = write(tmp_path, block)
    [block_error] = problems(path)
    assert block_error.startswith(f"{path}:{MAX_DEPTH + 3}: key 'agents.a.k0.k1.k2")
    assert "levels deep" in block_error


def test_a_roster_at_the_depth_limit_still_loads(tmp_path: Path) -> None:
    """The bound is a limit, not a ban on nesting: an extension value nested just below
    it loads."""
    inner = MAX_DEPTH - 3  # top mapping, 'x-deep' value: the lists inside it count too
    path = write(
        tmp_path, "x-deep: " + "[" * inner + "]" * inner + "\nagents:\n  a:\n    prompt: hi\n"
    )
    assert list(load_roster(path, {}).agents) == ["a"]


def test_interpolation_chain_2000_deep_is_a_roster_error(tmp_path: Path) -> None:
    """`${A:-${A:-...}}` 2,000 deep used to raise RecursionError; defaults nest at most
    MAX_INTERPOLATION_DEPTH levels, and the error names the key."""
    chain = "${A:-" * 2000 + "x" + "}" * 2000
    path = write(tmp_path, f"agents:\n  a:\n    prompt: '{chain}'\n")
    found = problems(path)
    assert any(
        p.startswith(
            f"{path}:3: key 'agents.a.prompt': ${{...}} defaults nested more than "
            f"{MAX_INTERPOLATION_DEPTH} levels deep"
        )
        for p in found
    ), found
    ok = "${A:-" * MAX_INTERPOLATION_DEPTH + "deep enough" + "}" * MAX_INTERPOLATION_DEPTH
    fine = write(tmp_path, f"agents:\n  a:\n    prompt: '{ok}'\n")
    assert load_roster(fine, {}).agents["a"].prompt == "deep enough"


def test_an_oversized_roster_is_refused_before_parsing(tmp_path: Path) -> None:
    """A roster over MAX_ROSTER_BYTES is refused with the limit, not parsed for seconds."""
    path = write(tmp_path, "agents:\n  a:\n    prompt: hi\n# " + "x" * MAX_ROSTER_BYTES + "\n")
    [error] = problems(path)
    assert error.startswith(f"{path}: {path} is ")
    assert f"the limit is {MAX_ROSTER_BYTES // 1024} KiB" in error
    with pytest.raises(RosterErrors, match="over the limit"):
        parse_roster("x" * (MAX_ROSTER_BYTES + 1), tmp_path / "agents.yaml", {})


def test_hundreds_of_errors_are_listed_as_a_hundred_and_a_count(tmp_path: Path) -> None:
    """A generated file with the same mistakes on every agent (a typo'd key, no prompt):
    the first 100 problems, then how many more."""
    body = "agents:\n" + "".join(f"  a{i}:\n    modle: x\n" for i in range(100))
    found = problems(write(tmp_path, body))
    assert len(found) == 101
    assert found[-1].endswith("... and 100 more problem(s)")


@pytest.mark.timeout(30)
def test_a_fifo_as_prompt_file_is_refused_without_hanging(tmp_path: Path) -> None:
    """A FIFO nobody writes to as prompt_file used to block the reading thread forever;
    it is refused at once as 'not a regular file'."""
    fifo = tmp_path / "prompt.md"
    os.mkfifo(fifo)
    path = write(tmp_path, "agents:\n  a:\n    prompt_file: prompt.md\n")
    result: list[list[str]] = []
    reader = threading.Thread(target=lambda: result.append(problems(path)), daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "reading a FIFO prompt file hung"
    assert result[0] == [
        f"{path}:3: key 'agents.a.prompt_file': prompt file refused: {fifo} is a FIFO "
        f"(named pipe), not a regular file; a prompt file is a UTF-8 text file of at most "
        f"{MAX_PROMPT_BYTES // 1024} KiB"
    ]


def test_dev_zero_and_huge_prompt_files_are_refused(tmp_path: Path) -> None:
    """/dev/zero (endless) and a file over MAX_PROMPT_BYTES (sparse: no disk used) are
    refused without being read into memory."""
    huge = tmp_path / "huge.md"
    with huge.open("wb") as f:
        f.truncate(8 * 1024**3)  # 8 GiB, sparse
    path = write(
        tmp_path,
        """\
        agents:
          zero:
            prompt_file: /dev/zero
          huge:
            prompt_file: huge.md
        """,
    )
    zero_error, huge_error = problems(path)
    assert "/dev/zero is a device, not a regular file" in zero_error
    assert f"{huge} is 8388608 KiB; the limit is {MAX_PROMPT_BYTES // 1024} KiB" in huge_error


def test_agents_yaml_as_a_fifo_is_refused(tmp_path: Path) -> None:
    """The roster itself replaced by a FIFO (the watcher re-reads it) is an error too."""
    fifo = tmp_path / "agents.yaml"
    os.mkfifo(fifo)
    [error] = problems(fifo)
    assert "is a FIFO (named pipe), not a regular file" in error


@pytest.mark.parametrize("verb", ["config", "ps", "down"])
def test_verbs_print_no_traceback_on_a_hostile_roster(tmp_path: Path, verb: str) -> None:
    """`config`, `ps` and `down` on a 600-deep roster: exit 1 with the roster error,
    no traceback."""
    (tmp_path / "agents.yaml").write_text(
        "agents:\n  a:\n    prompt: hi\n    x-deep: " + "[" * 600 + "]" * 600 + "\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", verb],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr
    assert "RecursionError" not in done.stderr
    assert "levels deep" in done.stderr
    assert done.returncode == 1


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("2001-13-45", "'2001-13-45' reads as a date but is not a valid one (month must be"),
        ("9" * 5000, "reads as a number but is not a valid one (Exceeds the limit (4300 digits)"),
    ],
)
def test_values_that_only_look_like_dates_or_numbers(tmp_path: Path, value: str, says: str) -> None:
    """A value YAML takes for a date or a number but cannot build (month 13, an integer
    of 5,000 digits) raised a bare ValueError: a traceback in `config`, a dead reload.
    It is a roster error at its line, with the fix (quotes)."""
    path = write(tmp_path, f"agents:\n  a:\n    prompt: hi\n    max_turns: {value}\n")
    [error] = problems(path)
    assert error.startswith(f"{path}:4: invalid YAML at column 16: ")
    assert says in error
    assert error.endswith("put quotes around it to keep it as text")


NINES = "9" * 400  # a number past any float: 1e400 is inf


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        (f"log_max_bytes: {NINES}", "the most is 1024GiB"),
        (f'log_max_bytes: "{NINES}GiB"', "the most is 1024GiB"),
        ("log_max_bytes: 2000GiB", "the most is 1024GiB"),
        ("log_backups: 100000000", "must be at most 1,000 (each rotation renames every backup)"),
        (f'budget: {{tokens: 5, per: "{NINES}d"}}', "finite, non-negative time"),
        ("budget: {tokens: 5, per: 4000d}", "longer than ten years"),
        ("defaults: {turn_timeout: 1e300}", "longer than ten years"),
        (f'defaults: {{approval_timeout: "{NINES}s"}}', "finite, non-negative time"),
        (f"defaults: {{max_turns: {NINES}}}", "must be at most 9,007,199,254,740,992"),
        (f"defaults: {{budget: {{tokens: {NINES}}}}}", "must be at most"),
    ],
)
def test_numbers_past_any_sane_bound_are_roster_errors(
    tmp_path: Path, setting: str, says: str
) -> None:
    """Regression: `log_max_bytes: "999…GiB"` ended the parse in OverflowError (`config` and
    `ps` printed a traceback, the running team's reload crashed); a budget window of 10**400
    days parsed as inf, and every budget check of the running team then failed (its meta was
    not JSON); `log_backups: 100000000` passed, and the stdlib rotating handler then checks
    every backup number at each rotation, holding the supervisor's logging for minutes; a
    duration of 1e300 s passed. Each is an error at its line, quoting the value short."""
    path = write(tmp_path, setting + "\nagents:\n  a:\n    prompt: hi\n")
    [error] = problems(path)
    assert error.startswith(f"{path}:1: key '"), error
    assert says in error, error
    assert NINES not in error  # quoted short: the reason stays readable


def test_numbers_at_their_bounds_still_load(tmp_path: Path) -> None:
    """The bounds are limits, not bans: the largest allowed values load."""
    path = write(
        tmp_path,
        """\
        log_max_bytes: 1024GiB
        log_backups: 1000
        budget: {tokens: 9007199254740992, per: 3650d}
        defaults: {turn_timeout: 87600h, restart_window: 315360000}
        agents:
          a:
            prompt: hi
        """,
    )
    roster = load_roster(path, {})
    assert roster.log_max_bytes == 2**40
    assert roster.log_backups == 1000
    assert roster.agents["a"].turn_timeout_s == 87600 * 3600


def test_a_nul_character_anywhere_an_agent_uses_is_a_roster_error(tmp_path: Path) -> None:
    """Regression: YAML's "\\0" passed validation. `logs: "a\\0b"` then ended `up` in a
    traceback (ValueError: embedded null byte), and a NUL in an agent's env or model made
    it fail at each launch until it was marked failed. Each string holding one is an error
    at its line, interpolated ones too; an `x-` extension (never used as such) is not."""
    path = write(
        tmp_path,
        """\
        x-anchor: "kept\\0here"
        logs: "lo\\0gs"
        agents:
          a:
            prompt: hi
            model: "son\\0net"
            env: {TOKEN: "${FROM_ENV}"}
            tools: [Read, "Gr\\0ep"]
        """,
    )
    found = problems(path, {"FROM_ENV": "a\0b"})
    assert [e.split(": key ")[0] for e in found] == [f"{path}:{n}" for n in (2, 6, 7, 8)]
    assert [e.split("'")[1] for e in found] == [
        "logs",
        "agents.a.model",
        "agents.a.env.TOKEN",
        "agents.a.tools[1]",
    ]
    assert all("contains a NUL character" in e for e in found)


def test_a_roster_of_more_agents_than_the_limit_is_one_error(tmp_path: Path) -> None:
    """10,000 agents validated (and `up` tried to start a claude of ~200 MiB for each): past
    MAX_AGENTS the roster is refused with one error saying the limit and what to do, not
    one per agent; at the limit it loads."""
    from orchestrator.roster import MAX_AGENTS

    for count in (MAX_AGENTS + 1, 10_000):
        body = "defaults:\n  prompt: hi\nagents:\n" + "".join(f"  a{i}:\n" for i in range(count))
        [error] = problems(write(tmp_path, body))
        assert error.startswith(f"{tmp_path / 'agents.yaml'}:3: key 'agents'")
        assert f"{count} agents defined; a roster holds at most {MAX_AGENTS}" in error
        assert "split it into several teams" in error
    body = "defaults:\n  prompt: hi\nagents:\n" + "".join(f"  a{i}:\n" for i in range(MAX_AGENTS))
    assert len(load_roster(write(tmp_path, body), {}).agents) == MAX_AGENTS
