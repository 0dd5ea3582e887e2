"""hold_scope: which folders decide where a write lands (symlinks, ``..``, folders the
write makes), and where an agent's commands may write, read from its running claude (a
real process with a claude's command line, environment and folder). Real files, real
processes; tests/team/test_write_hold_scope.py runs the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator import hold_scope
from orchestrator.roster import AgentSpec, load_roster

SANDBOXED = {"sandbox": {"enabled": True, "filesystem": {"allowWrite": ["//opt/extra"]}}}


def real(path: Path) -> str:
    return os.path.realpath(path)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ("a", "b/d", "c"):
        (tmp_path / name).mkdir(parents=True)
    return tmp_path


def test_a_plain_path_is_looked_up_in_its_folder_and_every_one_above(tree: Path) -> None:
    dirs = hold_scope.lookup_dirs("a/f", real(tree))
    assert dirs is not None
    assert real(tree / "a") in dirs
    assert real(tree) in dirs
    assert "/" in dirs
    assert real(tree / "b") not in dirs


def test_a_symlink_on_the_path_counts_both_where_it_is_and_where_it_leads(tree: Path) -> None:
    """Whoever can repoint the link (in a/) and whoever can swap the folder it leads to
    (in b/ or b/d/) could send the write elsewhere."""
    (tree / "a" / "link").symlink_to(tree / "b" / "d")
    dirs = hold_scope.lookup_dirs(str(tree / "a" / "link" / "f"), "/")
    assert dirs is not None
    assert {real(tree / "a"), real(tree / "b"), real(tree / "b" / "d")} <= dirs
    assert real(tree / "c") not in dirs


def test_dotdot_is_read_both_after_the_link_and_lexically(tree: Path) -> None:
    """a/link/../g is b/g to the kernel (``..`` of the link's target) and a/g to a
    lexical reading (the CLI's path.resolve): both count."""
    (tree / "a" / "link").symlink_to(tree / "b" / "d")
    dirs = hold_scope.lookup_dirs("link/../g", real(tree / "a"))
    assert dirs is not None
    assert {real(tree / "a"), real(tree / "b"), real(tree / "b" / "d")} <= dirs


def test_folders_the_write_makes_are_looked_up_in_the_last_that_exists(tree: Path) -> None:
    dirs = hold_scope.lookup_dirs("a/new/deeper/f", real(tree))
    assert dirs is not None
    assert {real(tree / "a"), real(tree / "a" / "new"), real(tree / "a" / "new" / "deeper")} <= (
        dirs
    )


def test_a_path_that_cannot_be_worked_out_holds_everyone(tree: Path) -> None:
    (tree / "a" / "loop").symlink_to(tree / "a" / "loop")
    assert hold_scope.lookup_dirs("a/loop/f", real(tree)) is None
    clis = {"x": 11, "y": 12}
    assert hold_scope.racers("a/loop/f", real(tree), clis, lambda n, p: []) == {11, 12}


def test_only_agents_whose_areas_hold_a_folder_on_the_path_are_held(tree: Path) -> None:
    (tree / "a" / "link").symlink_to(tree / "b" / "d")
    areas = {
        "own-a": [str(tree / "a")],  # can repoint the link
        "own-b": [str(tree / "b")],  # can swap d
        "own-c": [str(tree / "c")],  # neither
        "inside": [str(tree / "b" / "d" / "sub")],  # below the written folder: no entry of it
        "unknown": None,
        "above": [str(tree)],
    }
    pids = {name: i for i, name in enumerate(areas, start=100)}
    held = hold_scope.racers("a/link/f", real(tree), pids, lambda n, p: areas[n])
    assert sorted(n for n, p in pids.items() if p in held) == sorted(
        ["own-a", "own-b", "unknown", "above"]
    )


def test_an_area_not_made_yet_holds_the_folders_the_write_makes_in_it(tree: Path) -> None:
    """An area that does not exist (an ``allowWrite`` folder not made yet) is judged by
    its path: it covers the folders the write itself makes there, and nothing else."""
    new = str(tree / "a" / "new")
    assert hold_scope.racers("a/new/sub/f", real(tree), {"x": 1}, lambda n, p: [new]) == {1}
    assert hold_scope.racers("a/f", real(tree), {"x": 1}, lambda n, p: [new]) == set()
    elsewhere = [str(tree / "c" / "new")]
    assert hold_scope.racers("a/new/f", real(tree), {"x": 1}, lambda n, p: elsewhere) == set()


def test_an_area_reached_through_a_symlink_is_still_found(tree: Path) -> None:
    (tree / "c" / "alias").symlink_to(tree / "a")
    held = hold_scope.racers("a/f", real(tree), {"x": 1}, lambda n, p: [str(tree / "c" / "alias")])
    assert held == {1}


# --- an agent's areas, read from its running claude -------------------------------


@pytest.fixture
def spec(tmp_path: Path) -> Callable[..., AgentSpec]:
    def make(**fields: object) -> AgentSpec:
        roster = tmp_path / "roster" / "agents.yaml"
        roster.parent.mkdir(exist_ok=True)
        agent = {"prompt": "p", "tools": ["Bash"], **fields}
        roster.write_text(json.dumps({"name": "t", "agents": {"x": agent}}), encoding="utf-8")
        return load_roster(roster).agents["x"]

    return make


@pytest.fixture
def claude(tmp_path: Path) -> Iterator[Callable[..., int]]:
    """A process started as the supervisor starts a claude: ``--settings`` on its command
    line, its temp folder and HOME in its environment, its folder as its cwd."""
    started: list[subprocess.Popen[bytes]] = []

    def start(settings: object = SANDBOXED, cwd: Path | None = None, **env: str) -> int:
        folder = cwd or tmp_path / "work"
        folder.mkdir(exist_ok=True)
        base = {"HOME": str(tmp_path / "home"), "CLAUDE_CODE_TMPDIR": str(tmp_path / "tmp")}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; sys.stdin.read()",
                "--settings",
                json.dumps(settings),
            ],
            cwd=folder,
            env={k: v for k, v in {**base, **env}.items() if v},
            stdin=subprocess.PIPE,
        )
        started.append(proc)
        # Read from /proc as it execs, its command line is empty for a moment (held then).
        cmdline = Path(f"/proc/{proc.pid}/cmdline")
        deadline = time.monotonic() + 30
        while b"--settings" not in cmdline.read_bytes():
            assert time.monotonic() < deadline, "the process never started"
            time.sleep(0.01)
        return proc.pid

    yield start
    for proc in started:
        proc.kill()
        proc.communicate()


def test_a_sandboxed_agent_writes_its_folder_temp_and_allowed_folders(
    tmp_path: Path, spec: Callable[..., AgentSpec], claude: Callable[..., int]
) -> None:
    areas = hold_scope.areas(spec(), claude())
    assert areas is not None
    assert {
        str(tmp_path / "work"),
        str(tmp_path / "tmp"),
        str(tmp_path / "home" / ".npm" / "_logs"),
        "/opt/extra",
    } <= set(areas)
    assert "/tmp" not in areas


def test_without_its_own_temp_folder_an_agent_shares_the_systems(
    spec: Callable[..., AgentSpec], claude: Callable[..., int]
) -> None:
    areas = hold_scope.areas(spec(), claude(CLAUDE_CODE_TMPDIR=""))
    assert areas is not None
    assert "/tmp" in areas


def test_an_agent_without_the_sandbox_or_unknown_is_held_everywhere(
    spec: Callable[..., AgentSpec], claude: Callable[..., int]
) -> None:
    assert hold_scope.areas(spec(sandbox=False), claude()) is None
    assert hold_scope.areas(spec(disallowed_tools=["Bash"]), claude()) is None
    assert hold_scope.areas(spec(), claude(settings={"permissions": {}})) is None  # no sandbox
    assert hold_scope.areas(spec(), claude(HOME="")) is None
    assert hold_scope.areas(None, claude()) is None  # not in the roster (any more)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert hold_scope.areas(spec(), gone.pid) is None


@pytest.mark.parametrize(
    ("text", "held_everywhere"),
    [
        ("", False),  # the sandbox's placeholder: no settings
        ('{"sandbox": {"filesystem": {"allowWrite": ["~/more"]}}}', False),
        ('{"permissions": {"additionalDirectories": ["../shared"]}}', False),
        ('{"hooks": {"PreToolUse": []}}', True),  # hooks run outside the sandbox
        ('{"sandbox": {"excludedCommands": ["docker"]}}', True),
        ('{"sandbox": {"enabled": false}}', True),
        ("{not json", True),
        ("null", True),  # JSON, but no settings object: not read as "no file"
        ("[]", True),
    ],
)
def test_the_projects_settings_widen_the_areas_or_hold_everywhere(
    tmp_path: Path,
    spec: Callable[..., AgentSpec],
    claude: Callable[..., int],
    text: str,
    held_everywhere: bool,
) -> None:
    (tmp_path / "work" / ".claude").mkdir(parents=True)
    (tmp_path / "work" / ".claude" / "settings.local.json").write_text(text, encoding="utf-8")
    areas = hold_scope.areas(spec(), claude())
    if held_everywhere:
        assert areas is None
        return
    assert areas is not None
    if "~/more" in text:
        assert str(tmp_path / "home" / "more") in areas
    if "shared" in text:
        assert any(real(Path(a)) == real(tmp_path / "shared") for a in areas)


def test_settings_read_once_per_write_stay_each_folders_own(
    tmp_path: Path, spec: Callable[..., AgentSpec], claude: Callable[..., int]
) -> None:
    """A Write reads each settings file once for all agents (``seen``): an agent whose
    folder's settings run hooks is held everywhere, one in another folder is not, in
    either order."""
    (tmp_path / "work" / ".claude").mkdir(parents=True)
    (tmp_path / "work" / ".claude" / "settings.json").write_text('{"hooks": {}}')
    (tmp_path / "other").mkdir()
    hooked = claude()
    plain = claude(cwd=tmp_path / "other")
    for order in ((hooked, plain), (plain, hooked)):
        seen: dict[str, object] = {}
        found = {pid: hold_scope.areas(spec(), pid, None, seen) for pid in order}
        assert found[hooked] is None
        assert found[plain] is not None


def test_a_projects_mcp_servers_hold_it_everywhere(
    tmp_path: Path, spec: Callable[..., AgentSpec], claude: Callable[..., int]
) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / ".mcp.json").write_text("", encoding="utf-8")  # placeholder
    assert hold_scope.areas(spec(), claude()) is not None
    (tmp_path / "work" / ".mcp.json").write_text('{"mcpServers": {}}', encoding="utf-8")
    assert hold_scope.areas(spec(), claude()) is None


def test_a_worktrees_git_folders_are_its_areas(tmp_path: Path) -> None:
    """As the CLI's sandbox binds them: the worktree's own git folder and the common one."""
    common = tmp_path / "repo" / ".git"
    own = common / "worktrees" / "x"
    own.mkdir(parents=True)
    (own / "commondir").write_text("../..\n", encoding="utf-8")
    tree = tmp_path / "repo" / ".octy" / "worktrees" / "t" / "x"
    (tree / "sub").mkdir(parents=True)
    (tree / ".git").write_text(f"gitdir: {own}\n", encoding="utf-8")
    found = [real(Path(d)) for d in hold_scope._git_dirs(str(tree / "sub"))]
    assert found == [real(own), real(common)]
    assert [real(Path(d)) for d in hold_scope._git_dirs(str(tmp_path / "repo"))] == [real(common)]


# --- the hook's hold: worked out again once the first ones stand still ------------

STAND_IN = """
import subprocess, sys
subprocess.Popen([sys.executable, "-c", sys.argv[1]])
sys.stdin.read()
"""
# In c's folder: d flips between a folder and a symlink into y's folder, thousands of
# times a second (renameat2 RENAME_EXCHANGE: never missing), as test_write_race's racer.
FLIPPER = """
import ctypes, os, random, time
libc = ctypes.CDLL(None, use_errno=True)
os.symlink(os.path.realpath("../y/e"), "l")
open("flipping", "w").close()
while True:
    libc.renameat2(-100, b"d", -100, b"l", 2)
    time.sleep(random.uniform(0, 0.001))
"""
SLEEPER = "import time; time.sleep(600)"


def test_the_hold_takes_in_whoever_the_path_leads_to_while_it_was_being_stopped(
    tmp_path: Path,
) -> None:
    """``w`` writes ``link/x``; ``link`` leads to ``c/d``, which ``c``'s command keeps
    swapping for a symlink into ``y``'s folder. Whatever the flip was when the hook
    looked, after its hold ``d`` stands still, and if it is the symlink, ``y``'s
    commands are stopped too: whoever can change the path as it now resolves is held."""
    from orchestrator import hold_procs, policy, write_hold

    for name in ("w", "c/d", "y/e", "z", "home", "pids"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "w" / "link").symlink_to(tmp_path / "c" / "d")
    roster_file = tmp_path / "agents.yaml"
    agents = {n: {"prompt": "p", "tools": ["Bash", "Write"], "cwd": n} for n in "wcyz"}
    roster_file.write_text(json.dumps({"name": "t", "agents": agents}), encoding="utf-8")
    roster = load_roster(roster_file)
    settings = json.dumps(SANDBOXED)
    hook = policy.Policy("w", lambda: roster, lambda: tmp_path / "w", None)  # type: ignore[arg-type]
    procs = {}
    try:
        for name, child in (("w", SLEEPER), ("c", FLIPPER), ("y", SLEEPER), ("z", SLEEPER)):
            procs[name] = subprocess.Popen(
                [sys.executable, "-c", STAND_IN, child, "--settings", settings],
                cwd=tmp_path / name,
                env={"HOME": str(tmp_path / "home"), "CLAUDE_CODE_TMPDIR": str(tmp_path / name)},
                stdin=subprocess.PIPE,
            )
            (tmp_path / "pids" / name).write_text(f"{procs[name].pid}\n")
        deadline = time.monotonic() + 30
        while not (tmp_path / "c" / "flipping").exists() or not all(
            write_hold.descendants([p.pid]) for p in procs.values()
        ):
            assert time.monotonic() < deadline, "the stand-ins never started"
            time.sleep(0.01)
        child = {n: next(iter(write_hold.descendants([p.pid]))) for n, p in procs.items()}
        hook.pids = tmp_path / "pids"
        seen = {"folder": 0, "symlink": 0, "z held": 0}
        for k in range(40):
            hook._hold(f"k{k}", "link/x")
            try:
                assert hold_procs.run_state(child["c"]) == "T"  # its folder holds c/d
                if (tmp_path / "c" / "d").is_symlink():
                    seen["symlink"] += 1
                    assert hold_procs.run_state(child["y"]) == "T", k
                else:
                    seen["folder"] += 1
                assert hold_procs.run_state(child["w"]) == "T"  # w's folder holds the link
                # z's folder has none of the path, but a hook that looked mid-swap (c/d
                # gone for an instant) cannot work the path out and holds everyone, as it
                # must (seen once in a CI rehearsal under load): z is spared, not always.
                seen["z held"] += hold_procs.run_state(child["z"]) == "T"
            finally:
                hook.hold.release(f"k{k}")
        print("FLIP-HOLD", seen)
        assert seen["symlink"] > 0
        assert seen["z held"] < 40
    finally:
        hook.hold.release_all()
        for p in procs.values():
            for pid in write_hold.descendants([p.pid]):
                subprocess.run(["kill", "-KILL", str(pid)], check=False)
            p.kill()
            p.communicate()


def test_git_folders_found_once_per_write_stay_each_folders_own(tmp_path: Path) -> None:
    """What each folder on the way up gave is kept for the Write's other agents: a
    folder in the repository finds its git folder, one beside it none, in either order."""
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    inside = tmp_path / "repo" / "sub" / "deep"
    outside = tmp_path / "other" / "deep"
    for folder in (inside, outside):
        folder.mkdir(parents=True)
    want = {str(inside): [str(tmp_path / "repo" / ".git")], str(outside): []}
    for order in ((inside, outside), (outside, inside)):
        seen: dict[str, object] = {}
        for _ in range(2):
            assert {str(f): hold_scope._git_dirs(str(f), seen) for f in order} == want
