"""`up -d`: the background supervisor gets every option `up` was given, and a child that
exits at once is reported with its own lines only. Real `octy-orchestrate` processes, the
real claude CLI against the scripted model."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cli_runner
import pytest
from team_harness import Team

from orchestrator.cli import build_parser
from orchestrator.cli.up_detach import UP_OPTIONS
from orchestrator.lockfile import holder_pid

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]

# What the parent itself handles: the roster's path, its own output, --db (unused by `up`).
PARENT_ONLY = {"-h", "--help", "-f", "--file", "--json", "--db"}


def up_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices["up"]


def test_every_option_of_up_is_in_the_table_the_child_is_built_from() -> None:
    """An option added to `up` outside UP_OPTIONS would reach the parent and not the child."""
    declared = {flag for option in UP_OPTIONS for flag in option.flags}
    given = {flag for action in up_parser()._actions for flag in action.option_strings}
    assert given - PARENT_ONLY == declared


def test_up_d_passes_every_option_to_the_background_supervisor(team: TeamFactory) -> None:
    """Review F, M1: `up -d --no-memory-check` started its child without the flag, and the
    child then refused for want of memory. The child's argv, read from /proc, carries each
    option the table forwards (all of them given here), and the agents named."""
    t = team([{"text": "ok"}], {"a": {}, "b": {}})
    given = {"--grace": ["--grace", "7.5"]}
    forwarded = [o for o in UP_OPTIONS if o.to_child]
    argv: list[str] = []
    for option in forwarded:
        argv += given.get(option.flags[-1], [option.flags[-1]])
    assert {o.flags[-1] for o in forwarded} == {"--grace", "--no-model-check", "--no-memory-check"}
    started = json.loads(t.octy("up", "-d", "--json", *argv, "a").stdout)
    child = Path(f"/proc/{started['pid']}/cmdline").read_bytes().decode().split("\0")[:-1]
    for option in forwarded:
        flag = option.flags[-1]
        assert flag in child, (flag, child)
    assert child[child.index("--grace") + 1] == "7.5"
    assert child[-2:] == ["--", "a"]
    # `up -d` holds Ctrl-C blocked across its fork; the child lifted the block it inherits
    # (a supervisor with SIGINT blocked never sees it).
    status = Path(f"/proc/{started['pid']}/status").read_text()
    [blocked] = [line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")]
    assert not int(blocked, 16) & (1 << (2 - 1)), status  # SIGINT is signal 2
    t.wait_ready("a")
    assert t.states()["b"] == "stopped"  # not started: only `a` was named
    t.octy("down")


def test_a_failed_up_d_shows_only_what_its_own_child_wrote(team: TeamFactory) -> None:
    """Review F, L1: supervisor.out is appended by every run; a failed `up -d` showed its
    last 10 lines, earlier runs' errors first. Here an earlier run's lines are in the file,
    and this child fails its model check (a closed port): only its own lines are shown."""
    t = team([{"text": "ok"}], {"a": {}})
    logs = t.folder / "logs"
    logs.mkdir(mode=0o700)
    earlier = "".join(f"an earlier run's line {i}\n" for i in range(20))
    (logs / "supervisor.out").write_text(earlier)
    (logs / "supervisor.out").chmod(0o600)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    done = t.octy("up", "-d", check=False, env={"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{closed}"})
    assert done.returncode == 1, done.stderr
    assert "the supervisor exited at once:" in done.stderr
    assert f"127.0.0.1:{closed}" in done.stderr  # its own reason
    assert "earlier run" not in done.stderr
    assert (logs / "supervisor.out").read_text().startswith(earlier)  # nothing lost


def test_a_supervisor_that_never_started_does_not_say_it_stopped(team: TeamFactory) -> None:
    """Found as a new user: a failed model check in `up -d` showed "supervisor |
    supervisor_stopped" above the reason, as if a team had run and stopped; the supervisor
    logged it in a `finally` whether or not it had logged `supervisor_started`."""
    t = team([{"text": "ok"}], {"a": {}})
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    done = t.octy("up", "-d", check=False, env={"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{closed}"})
    assert done.returncode == 1, done.stderr
    assert f"127.0.0.1:{closed}" in done.stderr  # its reason
    assert "supervisor_stopped" not in done.stderr
    assert "supervisor_stopped" not in (t.folder / "logs" / "supervisor.out").read_text()


def test_up_d_shows_that_the_team_could_not_be_recorded(team: TeamFactory) -> None:
    """README: when the user's team list cannot be written, `up` warns. `up -d` did not:
    its child's warning reached only logs/supervisor.out. Here the list's folder is under
    a file (XDG_STATE_HOME names one, as a HOME that is a file does)."""
    t = team([{"text": "ok"}], {"a": {}})
    state = t.folder / "state-is-a-file"
    state.write_text("")
    done = t.octy("up", "-d", env={"XDG_STATE_HOME": str(state)})
    said = [line for line in done.stderr.splitlines() if "could not record the team" in line]
    assert len(said) == 1, done.stderr
    assert said[0].startswith(f"octy-orchestrate: warning: could not record the team in {state}/")
    assert "(Not a directory)" in said[0]
    assert "started in the background" in done.stdout
    # The supervisor itself could not either, and its log says so as before.
    assert "could not record the team" in (t.folder / "logs" / "supervisor.out").read_text()
    t.octy("down")


def _up_on_a_full_disk(tmp_path: Path, *up_args: str) -> tuple[Path, Any]:
    """`up ARGS` in a team folder on a real full tmpfs, in a private mount namespace
    (skipped where unprivileged mount namespaces are not allowed)."""
    import os
    import subprocess

    from cli_runner import CLI, RUN_TIMEOUT_S

    probe = subprocess.run(
        ["unshare", "-rm", "true"], capture_output=True, timeout=RUN_TIMEOUT_S, check=False
    )
    if probe.returncode != 0:
        pytest.skip("no unprivileged mount namespace here (unshare -rm)")
    team = tmp_path / "team"
    team.mkdir()
    script = (
        f'mount -t tmpfs -o size=64k tmpfs "{team}" && cd "{team}" && '
        "printf 'agents:\\n  a:\\n    prompt: A.\\n' > agents.yaml && "
        "(dd if=/dev/zero of=filler bs=4k count=64 2>/dev/null; true) && "
        f'exec "{CLI}" up {" ".join(up_args)} --no-model-check --no-memory-check'
    )
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "ANTHROPIC_API_KEY": "test",
        "NO_COLOR": "1",
    }
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    return team, done


def test_a_child_that_could_not_write_on_a_full_disk_is_said_to_be(tmp_path: Path) -> None:
    """Found walking the README: on a full file system the child's one line (`No space left
    on device`) could not be written to supervisor.out either, and `up -d` said only "the
    supervisor exited at once: (it wrote nothing)". Now it gives the child's exit status and
    that the logs' file system is full. A real full tmpfs, in a private mount namespace."""
    team, done = _up_on_a_full_disk(tmp_path, "-d")
    assert done.returncode == 1, done
    assert "the supervisor exited at once:" in done.stderr
    assert "exit status 1" in done.stderr
    assert f"the file system holding {team}/logs is full" in done.stderr
    assert "Traceback" not in done.stderr


def test_up_on_a_full_disk_names_the_file_it_could_not_write(tmp_path: Path) -> None:
    """Found walking the README (walk5): a foreground `up` on a full file system said only
    `[Errno 28] No space left on device`: writing its pid into the supervisor's lock file
    failed. Now it names that file and says the disk is full."""
    team, done = _up_on_a_full_disk(tmp_path)
    assert done.returncode != 0, done
    assert "cannot write the supervisor's pid to" in done.stderr, done.stderr
    assert f"{team}/queue/team.db.supervisor" in done.stderr
    assert "the disk is full" in done.stderr
    assert "Errno" not in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_ctrl_c_while_up_d_waits_stops_the_supervisor_it_started(
    team: TeamFactory, how: str
) -> None:
    """Walking the README: Ctrl-C while `up -d` waited for its supervisor exited 130 with
    nothing said, and the supervisor went on starting in the background: the team came up
    although the operator had cancelled. Now it is stopped, and `up -d` says so. The model
    endpoint here takes connections and never answers, so the child is held in its model
    check, before it could register, when SIGINT comes. SIGTERM (`timeout 30 … up -d` in a
    cron job, a `kill`) cancels the same way: it ended `up -d` with 143, unsaid, and the
    team came up anyway."""
    import os
    import signal

    from cli_runner import octy_bg
    from polling import until

    from orchestrator import procid

    t = team([{"text": "ok"}], {"a": {}})
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        parent = octy_bg("up", "-d", cwd=t.folder, env={**t.env, "ANTHROPIC_BASE_URL": url})

        def child() -> int | None:
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        stat = (entry / "stat").read_text()
                    except OSError:
                        continue
                    if int(stat.rpartition(")")[2].split()[1]) == parent.pid:
                        return int(entry.name)
            return None

        pid = until(child, "up -d to start its supervisor")
        os.kill(parent.pid, signal.Signals[how])
        _, err = parent.communicate(timeout=120)
    assert parent.returncode == 128 + signal.Signals[how], err
    said = "interrupted" if how == "SIGINT" else "terminated (SIGTERM)"
    assert f"{said}: stopping the supervisor it was starting (pid {pid})" in err
    assert "Traceback" not in err
    assert not procid.running(pid)


def _detach_in_process(
    t: Team, monkeypatch: pytest.MonkeyPatch, ctrl_c_at: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """`up -d` run here (its child a real supervisor), with a real SIGINT sent to this
    process from inside ``ctrl_c_at`` of up_detach (``popen`` once the child is forked,
    before Popen returns; ``time`` for the wait's deadline, taken right after the child
    started; ``for_people`` for the line said once it registered): the KeyboardInterrupt
    lands in that window. Returns the child's pid and
    what was written to stderr."""
    import signal
    import subprocess

    from orchestrator.cli import up_detach
    from orchestrator.roster import load_roster

    for key, value in t.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(t.folder)
    children: list[int] = []
    real_popen = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> Any:
        proc = real_popen(*args, **kwargs)
        children.append(proc.pid)
        if ctrl_c_at == "popen":  # after the fork, before Popen returns
            ctrl_c()
        return proc

    def ctrl_c() -> None:
        signal.raise_signal(signal.SIGINT)  # raised as KeyboardInterrupt in this window

    class Time:
        first = True

        @staticmethod
        def monotonic() -> float:
            if Time.first:
                Time.first = False
                ctrl_c()
            return time.monotonic()

        sleep = staticmethod(time.sleep)

    real_for_people = up_detach.for_people

    def for_people(text: str) -> str:
        ctrl_c()
        return real_for_people(text)

    monkeypatch.setattr(subprocess, "Popen", popen)
    if ctrl_c_at == "time":
        monkeypatch.setattr(up_detach, "time", Time)
    elif ctrl_c_at == "for_people":
        monkeypatch.setattr(up_detach, "for_people", for_people)
    args = build_parser().parse_args(["up", "-d"])
    with pytest.raises(KeyboardInterrupt):
        up_detach.detach(args, load_roster(t.folder / "agents.yaml"))
    (pid,) = children
    return pid, capsys.readouterr().err


def test_ctrl_c_as_up_d_starts_its_wait_stops_the_supervisor(
    team: TeamFactory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review: a Ctrl-C between the child's start and the start of the wait exited 130
    with nothing said, the supervisor starting on in the background."""
    from orchestrator import procid

    t = team([{"text": "ok"}], {"a": {}})
    pid, err = _detach_in_process(t, monkeypatch, "time", capsys)
    assert f"interrupted: stopping the supervisor it was starting (pid {pid})" in err
    assert not procid.running(pid)


def test_ctrl_c_right_after_the_supervisor_registered_stops_it(
    team: TeamFactory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review: a Ctrl-C once the child had registered, before `up -d` said so, exited 130
    with nothing said, and the team stayed up."""
    from orchestrator import procid

    t = team([{"text": "ok"}], {"a": {}})
    pid, err = _detach_in_process(t, monkeypatch, "for_people", capsys)
    assert f"interrupted: stopping the supervisor it was starting (pid {pid})" in err
    assert not procid.running(pid)


def test_ctrl_c_inside_popen_after_the_fork_stops_the_supervisor(
    team: TeamFactory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Left open by the last session: a Ctrl-C landing inside `subprocess.Popen` once the
    child was forked, before Popen returned, raised with no `proc` to stop: exit 130,
    nothing said, the supervisor starting on in the background. SIGINT is now held (blocked)
    across the Popen and lands once the child is known."""
    from orchestrator import procid

    t = team([{"text": "ok"}], {"a": {}})
    pid, err = _detach_in_process(t, monkeypatch, "popen", capsys)
    assert f"interrupted: stopping the supervisor it was starting (pid {pid})" in err
    assert not procid.running(pid)


def test_a_supervisor_that_does_not_register_in_time_is_stopped_and_said(
    team: TeamFactory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Left open by the last session: `up -d` that gave up waiting for its supervisor to
    register said "did not start ... see supervisor.out" and left it running: the team
    came up later behind a failed `up -d`, or a second `up` found it "already running".
    Now it is stopped, as `down` would, and said, with what it wrote. The child is held in
    its model check (an endpoint that takes connections and never answers), the wait
    shortened to a second."""
    import subprocess

    from orchestrator import procid
    from orchestrator.cli import up_detach
    from orchestrator.cli.common import CliFailure
    from orchestrator.roster import load_roster

    t = team([{"text": "ok"}], {"a": {}})
    children: list[int] = []
    real_popen = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> Any:
        proc = real_popen(*args, **kwargs)
        children.append(proc.pid)
        return proc

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        for key, value in t.env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.chdir(t.folder)
        monkeypatch.setattr(subprocess, "Popen", popen)
        monkeypatch.setattr(up_detach, "START_WAIT_S", 1.0)
        args = build_parser().parse_args(["up", "-d"])
        with pytest.raises(CliFailure) as failed:
            up_detach.detach(args, load_roster(t.folder / "agents.yaml"))
    (pid,) = children
    assert f"the supervisor (pid {pid}) did not register within 1 s; it was stopped" in str(
        failed.value
    )
    assert str(t.folder / "logs" / "supervisor.out") in str(failed.value)
    assert not procid.running(pid)
    assert "Traceback" not in capsys.readouterr().err


def test_down_right_after_up_d_logs_the_supervisor_stopped(team: TeamFactory) -> None:
    """The other side of the test above: a supervisor that logged `supervisor_started`
    logs its stop, even stopped by `down` the moment `up -d` returned (during its first
    agent's start)."""
    t = team([{"text": "ok"}], {"a": {}})
    t.octy("up", "-d")
    assert t.octy("down").returncode == 0
    names = [e["event"] for e in t.log_events("supervisor_stopped")]
    assert names == ["supervisor_stopped"]


def test_the_loser_of_two_up_d_at_once_names_the_winner(team: TeamFactory) -> None:
    """Two `up -d` started together in one folder (both past the "already running" check
    before either child holds the team): the loser printed "the supervisor exited at
    once" and the winner's log lines from the shared supervisor.out as if they were its
    own failure, then its child's "already running". It says plainly now that another
    `up` started the team, naming its supervisor. Both wait on a FIFO: one open of it
    for writing lets them go at the same moment."""
    t = team([{"text": "ok"}], {"a": {}})
    barrier = t.folder / "go"
    os.mkfifo(barrier)
    # Each opens the FIFO read-write (never blocks; the pipe lives while either holds it),
    # says it waits, and reads one byte: the two bytes written below let both go at once.
    wait_then_up = (
        "import os, sys; fd = os.open(sys.argv[1], os.O_RDWR); "
        "open(sys.argv[2], 'w').close(); os.read(fd, 1); os.close(fd); "
        "os.execv(sys.argv[3], [sys.argv[3], 'up', '-d'])"
    )
    both = [
        subprocess.Popen(
            [sys.executable, "-c", wait_then_up, str(barrier), f"waiting{i}", str(cli_runner.CLI)],
            cwd=t.folder,
            env=t.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    t.wait_for(lambda: all((t.folder / f"waiting{i}").exists() for i in range(2)), 30, "both")
    fd = os.open(barrier, os.O_WRONLY)
    os.write(fd, b"go")
    os.close(fd)
    done = [(p.returncode, out, err) for p in both for out, err in [p.communicate(60)]]
    assert sorted(code for code, _, _ in done) == [0, 1], done
    (loser,) = [err for code, _, err in done if code == 1]
    winner = holder_pid(t.db_path)
    assert winner is not None
    assert f"another `up` started this team (supervisor pid {winner})" in loser, loser
    assert "supervisor_started" not in loser  # the winner's lines are not the loser's
    assert "Traceback" not in loser
