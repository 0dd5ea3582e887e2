"""Programs that run their arguments as a command (`watch`, `script -c`, `su -c`,
`runuser`, `flock`, `setsid`, `chroot`, `unshare`, `parallel`, `trap`…): under an agent's
broad allow rule on the program (`Bash(watch:*)`) the command it runs is read as a
command, so `python3 -c` code there asks (`approve: ["Bash(git push:*)"]`), as it does
alone. The real hook; each line that runs its command without a terminal is first run for
real (bash, no terminal) to show it does."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from approval_lines import RULE, asks_unread
from approval_lines import decide as _decide
from approval_lines import runs as _runs

PROGRAMS = ("watch", "script", "su", "runuser", "flock", "setsid", "chroot", "unshare")
BROAD = [
    "Bash",
    *(f"Bash({p}:*)" for p in PROGRAMS),
    *(f"Bash({p}:*)" for p in ("systemd-run", "sudo", "xargs", "time", "parallel", "trap")),
    "Bash(echo:*)",
]
ROOT = os.geteuid() == 0  # su, runuser, chroot run their command for root only
# Code that leaves a file behind: as one shell word, and as a quoted line of a shell.
CODE = """python3 -c 'open("ran-it","w")'"""
LINE = r"""'python3 -c "open(\"ran-it\",\"w\")"'"""
PY = "runs code given to python3 -c"


# (the line, whether it runs the code with no terminal (None: not run here), why it asks)
LINES = [
    (f"watch -g -n 0.1 {LINE[:-2]};import time;print(time.time())\"'", True, PY),
    (f"watch -x -e {CODE[:-1]};exit(1)'", True, PY),
    (f"script -qc {LINE} /dev/null", True, PY),
    (f"script --command {LINE} /dev/null", True, PY),
    (f"su -c {LINE}", ROOT, PY),
    (f"su root -c {LINE}", ROOT, PY),  # su reads its options after the user too
    (f"runuser -u root -- {CODE}", ROOT, PY),
    (f"runuser root -c {LINE}", ROOT, PY),
    (f"flock lockf -c {LINE}", True, PY),
    (f"flock -w 5 lockf {CODE}", True, PY),
    (f"setsid -w {CODE}", True, PY),
    (f"chroot --skip-chdir / {CODE}", ROOT, PY),
    (f"unshare --propagation private {CODE}", True, PY),
    (f"systemd-run --user --unit x {CODE}", None, PY),
    (f"sudo -iu root {CODE}", None, PY),  # a cluster ending with -u: the user follows
    (f"sudo --user root {CODE}", None, PY),
    (f"echo x | xargs --max-args 1 {CODE}", True, PY),
    (f"/usr/bin/time -o timings {CODE}", True, PY),
    (f"trap {LINE} EXIT", True, PY),
    (f"parallel -j2 {LINE} ::: a", None, PY),
    (f"parallel ::: {LINE}", None, PY),  # with no command, each input is one
    (
        f"echo {LINE} | su",
        ROOT,
        "runs commands the shell of su reads from its input",
    ),
    (  # ran by hand; not here: at its input's end script may stop its shell before it reads
        f"echo {LINE} | script -q /dev/null",
        None,
        "runs commands the shell of script reads from its input",
    ),
    (
        f"su -s /usr/bin/python3 -c {CODE[10:]} root",
        ROOT,
        "runs code with the shell /usr/bin/python3 of su -s",
    ),
    ("echo x | parallel", None, "runs the commands parallel reads from its input or a file"),
    (
        "parallel --ssh x echo ::: a",
        None,
        "gives parallel the option --ssh, which may run programs",
    ),
]


@pytest.mark.parametrize(("line", "runs", "why"), LINES)
def test_the_command_a_program_runs_is_read_as_one(
    line: str, runs: bool | None, why: str, tmp_path: Path
) -> None:
    asks_unread(tmp_path, line, runs, why, BROAD)


def test_everyday_uses_ask_for_nothing(tmp_path: Path) -> None:
    for line in (
        "watch -n 5 git status",
        "flock /tmp/x.lock git status",
        "flock -x 9",
        "script -qc 'ls -la' /dev/null",
        "su -c 'ls' root",
        "runuser -u nobody -- ls",
        "setsid -f sleep 1",
        "chroot / ls",
        "sudo -iu root ls",
        "trap 'rm -f \"$tmp\"' EXIT",
        "parallel -j4 gzip ::: a b",
        "echo a | xargs --max-args 1 ls",
    ):
        assert _decide(tmp_path, line, BROAD) == [], line


def test_what_was_read_already_still_asks(tmp_path: Path) -> None:
    """sudo, timeout, nice, nohup, stdbuf, doas, time, xargs, env -S (and env -C with -S)
    were read before this: what they run asks."""
    for line in (
        f"sudo -D /tmp {CODE}",
        f"sudo -i {CODE}",
        f"timeout -k 5 10 {CODE}",
        f"nice -n 5 {CODE}",
        f"nohup {CODE}",
        f"stdbuf -oL {CODE}",
        f"doas -u root {CODE}",
        f"time -p {CODE}",
        f"echo x | xargs -0 -r {CODE}",
        f"env -S {LINE}",
        f"env -C . -S {LINE}",
    ):
        assert _decide(tmp_path, line, [*BROAD, "Bash(env:*)", "Bash(nice:*)"]) == [
            f"matches {RULE}: {PY}: cannot be read"
        ], line


def test_git_runs_where_the_wrapper_takes_it(tmp_path: Path) -> None:
    """`sudo -D DIR`, `unshare --wd DIR`, `systemd-run --working-directory DIR` run git in
    DIR: its config is read there, as for `env -C DIR` (an alias there runs code); a login
    shell (`sudo -i`, `su - USER -c`) or `chroot` starts in a folder known only at run time."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    alias = """!python3 -c 'open("ran-it","w")'"""
    subprocess.run(["git", "-C", str(repo), "config", "alias.st", alias], check=True)
    in_repo = f"alias.st in git's config ({repo}) runs code given to python3 -c: cannot be read"
    _runs(f"unshare --wd {repo} git st", tmp_path)
    assert (repo / "ran-it").exists()  # the alias of repo's config ran
    for line, why in (
        (f"unshare --wd {repo} git st", in_repo),
        (f"sudo -D {repo} git st", in_repo),
        (f"sudo --chdir={repo} git st", in_repo),
        (f"systemd-run --working-directory {repo} git st", in_repo),
        ("sudo -i git st", "git may run in a folder known only at run time (git -C sudo -i)"),
        ("chroot / git st", "git may run in a folder known only at run time (git -C chroot /)"),
        ("su - root -c 'git st'", "git may run in a folder known only at run time (cd ~root)"),
    ):
        asked = _decide(tmp_path, line, BROAD)
        assert len(asked) == 1, (line, asked)
        assert why in asked[0], (line, asked)
    for line in ("chroot --skip-chdir / git st", "sudo -u root git st", "su -c 'git st'"):
        assert _decide(tmp_path, line, BROAD) == [], line


def test_commands_nested_as_words_ask_without_a_crash(tmp_path: Path) -> None:
    """`find . -exec find . -exec …`, `flock f flock f …` (a command given as words, read
    as a command): past 8 deep the line asks; before, 3000 deep overflowed Python's stack
    (RecursionError in the hook)."""
    for line in ("find . -exec " * 3000, "flock f " * 3000, "watch " * 3000):
        (asked,) = _decide(tmp_path, line, BROAD)
        assert "commands nested more than 8 deep" in asked, asked


def _unknown(name: str, option: str) -> str:
    why = f"gives {name} the option {option}, unknown here (the command may follow it)"
    return f"matches {RULE}: {why}: cannot be read"


# An option the runner does not know may take the next word as its value (a newer
# version's, a typo): then the command is not where it is read. Before, each was skipped
# and the line read as running `x`, `lockf`, `true`: the python3 code was not seen.
UNKNOWN = [
    (f"watch --new-option x {LINE}", "watch", "--new-option"),
    (f"watch -Z x {LINE}", "watch", "-Z"),
    (f"flock --new-option x lockf {CODE}", "flock", "--new-option"),
    (f"flock -nZ x lockf {CODE}", "flock", "-Z (in -nZ)"),
    (f"script -c true --new-option {LINE} /dev/null", "script", "--new-option"),
    (f"script -qZ {LINE} -c true /dev/null", "script", "-Z (in -qZ)"),
    (f"su -c true --new-option {LINE}", "su", "--new-option"),
    (f"su -c true -Z {LINE} root", "su", "-Z"),
    (f"runuser --new-option x -u root {CODE}", "runuser", "--new-option"),
    (f"runuser -Z x -u root {CODE}", "runuser", "-Z"),
]


@pytest.mark.parametrize(("line", "name", "option"), UNKNOWN)
def test_an_option_a_runner_does_not_know_asks(
    line: str, name: str, option: str, tmp_path: Path
) -> None:
    assert _decide(tmp_path, line, BROAD) == [_unknown(name, option)]


def test_the_options_a_runner_knows_ask_nothing_more(tmp_path: Path) -> None:
    """Each runner's own options (its --help and man page), flags and values, short and
    long, clustered and attached (`-dpermanent`: watch's -d takes no next word)."""
    for line in (
        "watch -b -c -d -e -g -p -t -w -n 1 ls",
        "watch -bcegptw -q 3 --interval=2 ls",
        "watch --beep --color --differences=permanent --errexit --chgexit ls",
        "watch --precise --no-title --no-wrap --equexit 2 --interval 1 ls",
        "watch -dpermanent -n1 ls",
        "watch -x --exec ls -l",
        "flock -s -x -e -n -o -F -u -w 5 -E 3 /tmp/x.lock ls",
        "flock -snoF /tmp/x.lock -c 'ls -l'",
        "flock --shared --exclusive --unlock --nonblock --nb --close /tmp/x.lock ls",
        "flock --no-fork --verbose --timeout 5 --conflict-exit-code=3 /tmp/x.lock ls",
        "script -a -e -f -q -t/tmp/t -c ls /dev/null",
        "script -I in -O out -B io -T t -m advanced -E never -o 1m -c ls",
        "script --append --return --flush --force --quiet --timing=/tmp/t -c ls log",
        "script --log-in i --log-out o --log-io b --log-timing t --logging-format classic -c ls",
        "script --echo auto --output-limit 1m --command ls /dev/null",
        "su -m -p -f -P -c ls root",
        "su -mpfP -g root -G root -w PATH -s /bin/bash -c ls root",
        "su --preserve-environment --fast --pty --group root --supp-group root -c ls",
        "su --whitelist-environment PATH --shell /bin/sh --session-command ls root",
        "su -l -c ls root",
        "su --login root --command ls",
        "runuser -p -u nobody -- ls",
        "runuser --user nobody -- ls",
        "runuser -l nobody -c ls",
        "su --help",
        "watch --version",
    ):
        assert _decide(tmp_path, line, BROAD) == [], line


def test_a_rule_naming_the_unknown_option_exempts_it(tmp_path: Path) -> None:
    for line, rule in (
        ("watch --new-option x ls", "Bash(watch --new-option:*)"),
        ("watch -Z x ls", "Bash(watch -Z:*)"),
        ("flock -nZ x lockf ls", "Bash(flock -nZ:*)"),  # the cluster as written
        ("sudo -nZ x ls", "Bash(sudo -nZ:*)"),  # and so for a wrapper
        ("script --new-option x -c ls /dev/null", "Bash(script --new-option:*)"),
        ("su --new-option x -c ls", "Bash(su --new-option:*)"),
        ("runuser -Z x -u root ls", "Bash(runuser -Z:*)"),
    ):
        assert _decide(tmp_path, line, BROAD) != [], line
        assert _decide(tmp_path, line, [*BROAD, rule]) == [], line
