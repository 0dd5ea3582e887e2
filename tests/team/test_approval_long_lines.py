"""A long line of wrappers is read in work linear in its length (``'sudo ' * 20000``,
100 KB, took 5 s: each wrapper's options were read from a fresh copy of the words after
it), and a command behind more wrappers than are read asks."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from approval_lines import decide

from orchestrator import (
    approve_rules,
    bash_commands,
    command_runners,
    command_wrappers,
    git_state,
    load_paths,
    program_configs,
    shell_marks,
)
from orchestrator.bash_commands import MAX_WRAPPERS, UNSURE
from orchestrator.load_paths import MAX_LOOKUPS


def _copied(monkeypatch: pytest.MonkeyPatch, line: str) -> int:
    """Words handed to the wrapper readers while reading ``line`` (each is handed a copy
    of the words after its wrapper): a count of work done, not of time."""
    total = 0

    def counted(call: Callable[..., Any]) -> Callable[..., Any]:
        def inner(*args: Any) -> Any:
            nonlocal total
            total += sum(len(a) for a in args if isinstance(a, list))
            return call(*args)

        return inner

    monkeypatch.setattr(command_runners, "held", counted(command_runners.held))
    monkeypatch.setattr(command_wrappers, "after_options", counted(command_wrappers.after_options))
    bash_commands.read(line)
    monkeypatch.undo()
    return total


@pytest.mark.parametrize("unit", ["sudo ", "xargs ", "env ", "timeout 1 ", "nice -n 5 "])
def test_wrappers_are_read_in_linear_work(unit: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The words handed on grow with the line's length, not with its square (some
    readers hand theirs on again: a few per wrapper)."""
    for n in (500, 5000):
        words = len((unit * n).split())
        assert _copied(monkeypatch, unit * n) <= 8 * MAX_WRAPPERS * words, (unit, n)


def test_a_command_behind_too_many_wrappers_asks(tmp_path: Path) -> None:
    assert bash_commands.commands("sudo " * MAX_WRAPPERS + "ls") == ["ls"]
    assert bash_commands.commands("sudo " * (MAX_WRAPPERS + 1) + "ls") is UNSURE
    assert decide(tmp_path, "sudo " * MAX_WRAPPERS + "ls", []) == []
    asked = decide(tmp_path, "env " * (MAX_WRAPPERS + 1) + "ls", [])
    assert asked == [
        "matches Bash(git push:*): the line cannot be read with confidence "
        f"(more than {MAX_WRAPPERS} wrappers before a command)"
    ]
    asked = decide(tmp_path, "sudo " * 20_000, [])  # 100 KB: read, under MAX_LINE
    assert len(asked) == 1
    assert f"more than {MAX_WRAPPERS} wrappers" in asked[0]


def test_keywords_and_assignments_are_walked_past() -> None:
    """Read past by an index (they were popped off the front of the list one by one)."""
    assert bash_commands.commands("! " * 40_000 + "git push") == ["git push"]
    assert bash_commands.commands("A=1 " * 20_000 + "git push") == ["git push"]
    assert bash_commands.commands("function f " * 100 + "{ git push; }") == ["git push"]


def test_config_file_names_are_sought_in_linear_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line of many commands reading a config (`gdb; gdb; …`) has its words searched
    for the files' names once per program, not once per command (measured: 32,000
    `tmux s\\;` in 128 KiB took 507 s, each command searching every word)."""
    searched = 0

    def counted(command: str, words: list[str]) -> str:
        nonlocal searched
        searched += len(words)
        return named(command, words)

    named = program_configs.named
    monkeypatch.setattr(program_configs, "named", counted)
    for unit in ("gdb -batch; ", "tmux s\\; ", "vim x; "):
        searched = 0
        line = unit * 2000
        lookup = git_state.Lookup(tmp_path, {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
        approve_rules.bash_reason("git push:*", line, ["gdb:*"], lookup)
        assert 0 < searched <= 3 * len(bash_commands.path_words(line)), unit


def test_a_long_command_is_searched_for_tmux_in_linear_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whether a command's words name tmux (its `';;'` chains) is kept as words are added,
    not sought again at each word (measured: the approval tests took 404 s, not 17 s,
    each of a long line's words searching all before it)."""
    calls = 0
    basename = bash_commands.os.path.basename

    def counted(path: str) -> str:
        nonlocal calls
        calls += 1
        return basename(path)

    monkeypatch.setattr(bash_commands.os.path, "basename", counted)
    bash_commands.read("echo " + "a " * 4000)
    monkeypatch.undo()
    assert 0 < calls <= 4 * 4000


@pytest.mark.parametrize("unit", ["${", "$(", "$(`a` ", "$(case ", "${a;b} ", "${'", "$(${ "])
def test_substitutions_are_scanned_in_linear_work(
    unit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each `${`/`$(` seeks its end (where its word ends, as bash reads it): one never
    closed, or split (a `case`, a `…`), is not sought again from each opening inside."""
    steps = 0
    plain = shell_marks._IN_BRACES  # its steps: the work counted

    class Counted:
        def match(self, line: str, i: int) -> re.Match[str] | None:
            nonlocal steps
            steps += 1
            return plain.match(line, i)

    monkeypatch.setattr(shell_marks, "_IN_BRACES", Counted())
    bash_commands.read("echo " + unit * 4000)
    monkeypatch.undo()
    assert 0 < steps <= 4 * 4000, steps


@pytest.mark.parametrize("unit", ["-c /dev/null ", "a ", "gdb -nx ", "vim --clean "])
def test_words_a_command_may_run_are_sought_in_linear_work(
    unit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command's words are read as a config reader it may run (`setpriv gdb -batch`)
    only where they name one, and a bounded number of times: each reading copies the
    words after it (measured: `pytest -c /dev/null …` of 100 KB, every word read so, took
    7 s)."""
    copied = 0
    reads_any = program_configs.reads_any

    def counted(command: str) -> bool:
        nonlocal copied
        copied += command.count(" ") + 1
        return reads_any(command)

    monkeypatch.setattr(program_configs, "reads_any", counted)
    command = "pytest " + unit * 4000
    words = command.count(" ") + 1
    approve_rules._embedded([command.strip()])
    assert copied <= 20 * words, unit


def test_a_command_naming_many_config_readers_is_read_as_running_one() -> None:
    """Past the words read, the next naming a config reader is taken as run (read then)."""
    assert approve_rules._embedded(["setpriv gdb -nx x"]) == {}
    command = "setpriv " + "gdb -nx " * 40 + "x"
    taken = "gdb -nx " * (40 - approve_rules._MAX_EMBEDDED) + "x"  # the 17th on
    assert approve_rules._embedded([command]) == {command: taken}


def test_env_files_are_read_a_bounded_number_of_times(tmp_path: Path) -> None:
    """`dotenv -f eN run x; …` reads each env file named once, up to the load paths'
    bound; more asks without reading (as many load paths on one line do)."""
    lookup = git_state.Lookup(tmp_path, {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    same = "dotenv run x; " * 5000  # one file: read once, not there, asks nothing
    assert approve_rules.bash_reason("git push:*", same, [], lookup) is None
    line = " ".join(f"dotenv -f e{i} run x;" for i in range(300))
    why = approve_rules.bash_reason("git push:*", line, [], lookup)
    assert why == f"dotenv run names env files in more than {MAX_LOOKUPS} places: cannot be read"


def test_perl_module_words_are_indexed_in_linear_work(tmp_path: Path) -> None:
    """A ``.pm`` word is indexed by each folder above a part named as one of Perl's own
    modules: ``IO/IO/…/x.pm`` (100 KB) made one key per part, each as long as the word
    before it (measured: 28 s for `PERL5LIB=l shasum IO/IO/…/x.pm`, and as long for
    `PYTHONPATH=p pytest …`, as every load variable's line is indexed; 0.15 s before the
    Perl check). A word deeper than the index reads asks when PERL5LIB is set."""
    for n in (500, 5000):
        word = "IO/" * n + "x.pm"
        index = load_paths.word_index([word])
        assert sum(len(key) for key in index) <= 70 * len(word), n
    lookup = git_state.Lookup(tmp_path, {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    deep = "IO/" * (load_paths.MAX_ENTRIES + 1)
    line = f"echo x > {deep}strict.pm; PERL5LIB={deep[:-1]} shasum x"
    why = approve_rules.bash_reason("git push:*", line, [], lookup)
    wrote = f"the line may write a file it loads ({deep}strict.pm): cannot be read"
    assert why == f"PERL5LIB={deep[:-1]}: {wrote}"
    line = f"echo x > {deep}x.pm; PERL5LIB=IO shasum x"  # not under it: asks all the same
    why = approve_rules.bash_reason("git push:*", line, [], lookup)
    assert why == f"PERL5LIB=IO: the line may write a file it loads ({deep}x.pm): cannot be read"
    assert approve_rules.bash_reason("git push:*", "PERL5LIB=lib shasum a/b.pm", [], lookup) is None
