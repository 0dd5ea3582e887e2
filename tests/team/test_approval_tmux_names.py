"""tmux commands named by an alias or a unique prefix (`run` is run-shell, `ru` and
`run-s` prefixes of it), and those chained after `\\;` (`tmux new -d \\; if …`): read as
tmux reads them (its 3.3a `list-commands`), so they ask under `Bash(tmux:*)` (`approve:
["Bash(git push:*)"]`) as the full names do. Each line is first run for real (bash, no
terminal, a server of its own) to show it runs its command."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from approval_lines import asks_unread
from approval_lines import decide as _decide

BROAD = ["Bash", "Bash(tmux:*)"]


@pytest.fixture(autouse=True)
def _a_bare_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent's HOME holds no startup file of a shell: `tmux new -d` opens one, which
    would run a `~/.bashrc` (asked apart: test_approval_shell_startup), and the runner's
    own HOME may hold one."""
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))


RUN = "gives tmux the command {} (run-shell), which may run programs"
# (the commands after `tmux -L SOCKET new -d`, why the line asks)
CHAINED = [
    ("\\; run 'touch ran-it'", RUN.format("run")),
    ("\\; ru 'touch ran-it'", RUN.format("ru")),
    ("';' run-s 'touch ran-it'", RUN.format("run-s")),
    (
        "\\; if true 'run \"touch ran-it\"'",
        "gives tmux the command if (if-shell), which may run programs",
    ),
    # tmux ends a command at any word ending in `;` (not `\\;`): bash gives `300;`.
    ("sleep 300\\; run 'touch ran-it'", RUN.format("run")),
    # A word of `;|&` ending in `;` is no operator of bash's here (the shell gives tmux
    # `;;`, `|;`): it was split as one, and `run` read as a program of that name.
    ("';;' run 'touch ran-it'", RUN.format("run")),
    ("\\;\\; run 'touch ran-it'", RUN.format("run")),
    ("'|;' run 'touch ran-it'", RUN.format("run")),
]
# Lines not run here: `new -d |` starts a session whose shell fails at once, as `new -d
# sleep` did (that case is `sleep 300` now), and under load such a tmux client hung for
# good (measured: one in 37 runs, and once in the full suite with a second session kept
# alive); run by hand, it ran its command.
NOT_RUN = ("'|;' run 'touch ran-it'",)


@pytest.mark.parametrize(("chained", "why"), CHAINED)
def test_a_tmux_command_by_its_alias_or_prefix_asks(chained: str, why: str, tmp_path: Path) -> None:
    socket = str(tmp_path / "tmux.sock")  # a server of its own, its socket in the test's folder
    line = f"tmux -S {socket} new -d {chained}"
    try:
        ran = True if shutil.which("tmux") and chained not in NOT_RUN else None
        asks_unread(tmp_path, line, ran, why, BROAD)
    finally:
        subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True, check=False)
    # A rule naming the command as written exempts it, as `Bash(tmux send-keys:*)` does.
    name = chained.split()[2 if chained.startswith("sleep") else 1]  # after the chain
    assert _decide(tmp_path, line, [*BROAD, f"Bash(tmux {name}:*)"]) == []


def test_a_shell_command_of_a_new_window_by_its_alias_is_read(tmp_path: Path) -> None:
    for line in ("tmux new -d \\; neww 'git push'", "tmux new-s -d 'git push'"):
        (asked,) = _decide(tmp_path, line, BROAD)
        assert asked == "matches Bash(git push:*): the command is on the line", line


def test_quiet_commands_by_prefix_ask_for_nothing(tmp_path: Path) -> None:
    for line in (
        "tmux kill-ses -t w",
        "tmux has -t w",
        "tmux new -d -s w \\; ls",
        "find . -name '*.o' -exec rm {} \\;",
        "echo \\; ';'",
    ):
        assert _decide(tmp_path, line, BROAD) == [], line


def test_a_tmux_format_running_a_command_asks(tmp_path: Path) -> None:
    """`#(CMD)` in a format (here the working folder of `-c`) runs CMD, later, as a job of
    the server (measured by hand: `-c` and `-n`; not run here, as for `new-session -d`
    elsewhere: the job is the server's to start); it asked for nothing when read as
    new-session's line only."""
    line = f"tmux -L appr8 new -d -c '#(touch {tmp_path}/ran-it)' 'sleep 5'"
    why = "gives tmux a format running a command, #(…)"
    assert _decide(tmp_path, line, BROAD) == [f"matches Bash(git push:*): {why}: cannot be read"]


def test_a_split_filter_is_read_as_a_line(tmp_path: Path) -> None:
    """coreutils `split --filter=CMD` writes each piece to a shell running CMD (measured)."""
    (tmp_path / "f").write_text("a\n")
    line = """split --filter='python3 -c "open(\\"ran-it\\",\\"w\\")"; cat >/dev/null' f"""
    asks_unread(tmp_path, line, True, "runs code given to python3 -c", ["Bash", "Bash(split:*)"])


def test_a_word_ending_in_a_semicolon_ends_a_tmux_command(tmp_path: Path) -> None:
    """tmux splits its arguments at a word ending in `;` (cmd_parse_from_arguments), so
    `'sleep 1;' run CMD` is new-session's `sleep 1`, then run-shell CMD (measured: it ran
    CMD; it asked for nothing, read as new-session's line `sleep 1; run CMD`). A word
    ending in `\\;` is a plain `;` to tmux: `'a\\;'` splits nothing (measured)."""
    socket = str(tmp_path / "tmux.sock")
    line = f"tmux -S {socket} new -d 'sleep 1;' ru 'touch ran-it'"
    try:
        asks_unread(tmp_path, line, True if shutil.which("tmux") else None, RUN.format("ru"), BROAD)
    finally:
        subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True, check=False)
    (asked,) = _decide(tmp_path, "tmux new -d 'sleep 1;' neww 'git push'", BROAD)
    assert asked == "matches Bash(git push:*): the command is on the line"
    for quiet in ("tmux new -d -s w 'sleep 9\\;'", "tmux new -d -s w 'sleep 9;'", "tmux ls\\;"):
        assert _decide(tmp_path, quiet, BROAD) == [], quiet


def test_control_mode_asks_for_the_commands_on_its_input(tmp_path: Path) -> None:
    """`tmux -C` (control mode; `-CC`, `-vC` too) runs the tmux commands it reads from its
    input (measured: `printf 'run-shell CMD' | tmux -C attach` ran CMD; it asked for
    nothing, `attach` being quiet). A `-C` that is a value (`-LC`, `-S C`) is none."""
    socket = str(tmp_path / "tmux.sock")
    line = f"printf 'run-shell \"touch {tmp_path}/ran-it\"\\n' | tmux -S {socket} -C attach"
    # run-shell may end just after the client: waited for (up to 10 s) before the check
    line += " -t keep >/dev/null; for i in $(seq 100); do [ -e ran-it ] && break; sleep .1; done"
    if shutil.which("tmux"):  # its own session, so that there is one to attach to
        keep = ["tmux", "-S", socket, "new", "-d", "-s", "keep", "sleep", "300"]
        subprocess.run(keep, cwd=tmp_path, capture_output=True, check=True)
    try:
        why = "runs the tmux commands tmux -C reads from its input"
        asks_unread(tmp_path, line, True if shutil.which("tmux") else None, why, BROAD)
    finally:
        subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True, check=False)
    for option in ("-CC", "-vC"):
        (asked,) = _decide(tmp_path, f"tmux {option} new", BROAD)
        assert f"tmux {option} reads from its input" in asked, asked
    for quiet in ("tmux -LC ls", "tmux -S C ls", "tmux -2u ls"):
        assert _decide(tmp_path, quiet, BROAD) == [], quiet


def test_a_case_items_end_is_the_shells_not_a_tmux_chain(tmp_path: Path) -> None:
    """`;;` unquoted ends a `case` item (elsewhere bash refuses it): `tmux ls;; esac` was
    read as tmux's `;` chain, `esac` a tmux command unknown here, and asked. Quoted, `';;'`
    is tmux's word and still chains (`tmux new -d ';;' run CMD` asks, above)."""
    socket = tmp_path / "s"
    for line in (
        f"x=a; case $x in a) tmux -S {socket} ls;; esac",
        f"case $x in a) tmux -S {socket} ls ;; b) tmux -S {socket} ls;;& esac",
    ):
        ran = subprocess.run(["bash", "-n", "-c", line], capture_output=True, check=False)
        assert ran.returncode == 0, line  # bash reads it: a case, no syntax error
        assert _decide(tmp_path, line, BROAD) == [], line
    chained = f"case $x in a) tmux -S {socket} new -d ';;' run 'touch x';; esac"
    (asked,) = _decide(tmp_path, chained, BROAD)
    assert "run-shell" in asked, asked


# A word the shell builds may end in `;` (tmux then ends its command there): each ran CMD
# with no terminal, unasked (measured, tmux 3.3a): `${u:-;}` was split at its `;` as an
# operator of the shell's (bash reads a `${…}` as one word), `$s` read as new-session's line.
BUILT = [
    "tmux -S {s} new -d 'sleep 300' ${{u:-;}} run 'touch ran-it'",
    "tmux -S {s} new -d 'sleep 300' ${{u:-;;}} run 'touch ran-it'",  # asked before `;;`
    "tmux -S {s} new -d 'sleep 300' \"${{u:-;}}\" run 'touch ran-it'",
    "s=';'; tmux -S {s} new -d 'sleep 300' $s run 'touch ran-it'",
    "tmux -S {s} new -d 'sleep 300' $(echo ';') run 'touch ran-it'",
    # a `$(…)` ended tmux's words: the `\\;` after it was read as the shell's, `run` a program
    "tmux -S {s} new -d 'sleep 300' $(true) \\; run 'touch ran-it'",
]


@pytest.mark.parametrize("built", BUILT)
def test_a_built_word_may_end_a_tmux_command(built: str, tmp_path: Path) -> None:
    socket = str(tmp_path / "tmux.sock")
    line = built.format(s=socket)
    try:
        asks_unread(
            tmp_path, line, True if shutil.which("tmux") else None, RUN.format("run"), BROAD
        )
    finally:
        subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True, check=False)


def test_built_words_of_quiet_tmux_commands_ask_nothing(tmp_path: Path) -> None:
    """After a built word, words beginning with an option are no tmux command (tmux
    refuses the whole line, measured: `tmux new -d x \\; -c y run CMD` ran nothing); nor
    is a `${…}`'s inside split as the shell's operators."""
    for quiet in (
        'tmux kill-session -t "$S"',
        'tmux capture-pane -p -t "$S" -S -50',
        "tmux has -t ${S:-main} 2>/dev/null",
        'tmux new -d -s "$S" -c "$d" -x 200',
        'echo "${x:-a;b}" ${y:-c | d}; tmux ls',
    ):
        assert _decide(tmp_path, quiet, BROAD) == [], quiet


def test_a_substitution_is_read_inside_its_word(tmp_path: Path) -> None:
    """A `${…}` or `$(…)` is one word (its commands still read); one holding a `case`
    (whose `)` is not its end) or a `…` is split as before, its commands read too."""
    for line in (
        "echo ${u:-$(git push; ls)} x",
        'echo "$(echo "a;b") $(git push)"',
        "echo $(case x in a) git push;; esac)",
        "echo ${b:-`git push`}",
    ):
        (asked,) = _decide(tmp_path, line, BROAD)
        assert asked == "matches Bash(git push:*): the command is on the line", line
