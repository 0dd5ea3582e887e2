"""The stale git locks a worktree agent's start clears (workspaces.clear_stale_locks) are
found in folders its shell (and its mates') can write: ``octy-refs/<team>``, the
repository's ``worktrees/``, its own ``.git`` file. The supervisor, which runs outside
every sandbox, must not follow a link planted there into a folder the agent could not
touch itself, nor block on what it reads there. Real git, real files."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from gitrepo import make_repo

from orchestrator import workspaces


def trees(tmp_path: Path) -> tuple[Path, workspaces.Worktree, workspaces.Worktree]:
    repo = make_repo(tmp_path / "repo")
    made = []
    for agent in ("a", "b"):
        tree = workspaces.Worktree(
            agent, repo, repo / workspaces.FOLDER / "t" / agent, f"octy/t/{agent}", None,
            Path(), "t",
        )  # fmt: skip
        made.append(workspaces.ensure(tree))
    return repo / ".git", made[0], made[1]


def admin_of(common: Path, tree: workspaces.Worktree) -> Path:
    gitdir = (tree.path / ".git").read_text().split("gitdir:", 1)[1].strip()
    return Path(gitdir)


def test_the_agents_own_locks_are_cleared_and_no_one_elses(tmp_path: Path) -> None:
    common, a, b = trees(tmp_path)
    locks = [common / "octy-refs" / "t" / "a.lock", admin_of(common, a) / "index.lock"]
    locks.append(admin_of(common, a) / "HEAD.lock")
    keep = [common / "octy-refs" / "t" / "b.lock", admin_of(common, b) / "index.lock"]
    keep.append(common / "index.lock")
    for path in locks + keep:
        path.write_text("")
    assert len(workspaces._clear_locks(a)) == len(locks)
    assert not any(p.exists() for p in locks)
    assert all(p.exists() for p in keep)


def test_a_team_folder_swapped_for_a_link_sends_no_removal_elsewhere(tmp_path: Path) -> None:
    """The store is writable to a worktree agent at its worktree's top: its shell can put
    a link where the team's folder was. The supervisor removed ``<agent>.lock`` in
    whatever folder the link named (another team's, the operator's)."""
    common, a, _ = trees(tmp_path)
    victim = tmp_path / "elsewhere"
    victim.mkdir()
    (victim / "a.lock").write_text("someone else's lock")
    team = common / "octy-refs" / "t"
    team.rename(common / "octy-refs" / "t.moved")
    team.symlink_to(victim)
    workspaces._clear_locks(a)
    assert (victim / "a.lock").exists()


def test_a_worktree_git_file_swapped_for_a_link_clears_no_mates_lock(tmp_path: Path) -> None:
    """The agent can replace its worktree's ``.git`` by a link to a mate's: the admin
    folder was matched against the link's target, so the mate's ``index.lock`` (a commit
    of the mate's under way) was removed at the agent's start."""
    common, a, b = trees(tmp_path)
    mates = admin_of(common, a) / "index.lock"
    mates.write_text("")
    own = admin_of(common, b) / "index.lock"
    own.write_text("")
    dot_git = b.path / ".git"
    dot_git.unlink()
    dot_git.symlink_to(a.path / ".git")  # b's shell, toward its mate a
    workspaces._clear_locks(b)
    assert mates.exists()
    assert not own.exists()


def test_a_fifo_planted_as_a_gitdir_does_not_block_the_start(tmp_path: Path) -> None:
    """A FIFO at ``worktrees/<x>/gitdir`` (the agent's shell can write ``worktrees/``):
    reading it blocked the agent's start for good, in a worker thread of the supervisor."""
    common, a, _ = trees(tmp_path)
    planted = common / "worktrees" / "0-planted"
    planted.mkdir()
    os.mkfifo(planted / "gitdir")
    lock = admin_of(common, a) / "index.lock"
    lock.write_text("")
    done = threading.Event()

    def clear() -> None:
        workspaces._clear_locks(a)
        done.set()

    worker = threading.Thread(target=clear, daemon=True)
    worker.start()
    try:
        # A deadlock guard, not a timing assertion: the clear reads no FIFO at all.
        finished = done.wait(60)
    finally:
        if not finished:  # let the blocked reader go: a writer opens and closes the FIFO
            os.close(os.open(planted / "gitdir", os.O_WRONLY))
            worker.join()
    assert finished, "the clear blocked on the planted FIFO"
    assert not lock.exists()
