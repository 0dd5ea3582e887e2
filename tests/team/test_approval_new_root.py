"""A wrapper running its command under another root (`chroot R`, `unshare -R R`, `nsenter
-m`): the HOME it keeps is a folder of that root, whose config files the program reads
(measured: `chroot R gdb -batch` ran `R/$HOME/.gdbinit`'s shell command, unasked: the
hook read the agent's HOME only). Its HOME is known only at run time: the line asks."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from approval_lines import RULE, answer

TOOLS = ["Bash", "Bash(gdb:*)", "Bash(chroot:*)", "Bash(tmux:*)"]


def _root(tmp_path: Path) -> Path | None:
    """A root whose /usr is this machine's (bind-mounted, in a mount namespace of the
    run's own), or None where that cannot be made (not root, no unshare)."""
    if os.getuid() != 0 or not shutil.which("unshare") or not shutil.which("gdb"):
        return None
    root = tmp_path / "root"
    (root / "usr").mkdir(parents=True)
    for name in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink(f"/{name}"):
            (root / name).symlink_to(os.readlink(f"/{name}"))
    return root


def test_chroot_reads_the_config_of_the_home_under_its_root(tmp_path: Path) -> None:
    home = tmp_path / "home"  # the agent's HOME: nothing there
    home.mkdir()
    root = _root(tmp_path)
    line = "chroot {} gdb -batch"
    if root is not None:
        planted = root / str(home).lstrip("/") / ".gdbinit"
        planted.parent.mkdir(parents=True)
        planted.write_text("shell touch /ran-it\n")
        script = f"mount --bind /usr {root}/usr && {line.format(root)}"
        env = {**os.environ, "HOME": str(home)}
        run = ["unshare", "-m", "bash", "-c", script]
        done = subprocess.run(run, env=env, capture_output=True, check=False, cwd=home)
        if done.returncode == 0 or (root / "ran-it").exists():
            assert (root / "ran-it").exists(), done.stderr
    root_shown = root or tmp_path / "root"
    why = f"gdb reads its config in a HOME known only at run time (HOME=chroot {root_shown})"
    assert answer(home, line.format(root_shown), TOOLS, home=home)[0] == [
        f"matches {RULE}: {why}: cannot be read"
    ]


# (the line, how its new root is shown)
ROOTED = [
    ("chroot --skip-chdir /srv/r gdb -batch", "chroot /srv/r"),
    ("chroot --userspec=1:1 /srv/r tmux new -d", "chroot /srv/r"),
    ("unshare -R /srv/r gdb -batch", "unshare -R"),
    ("nsenter -t 1 -m gdb -batch", "nsenter -m"),
]


@pytest.mark.parametrize(("line", "shown"), ROOTED)
def test_other_new_roots_ask(line: str, shown: str, tmp_path: Path) -> None:
    program = line.split(" ")[-2] if line.endswith("-d") else "gdb"
    program = "tmux" if "tmux" in line else program
    why = f"{program} reads its config in a HOME known only at run time (HOME={shown})"
    assert answer(tmp_path, line, TOOLS, home=tmp_path)[0] == [
        f"matches {RULE}: {why}: cannot be read"
    ]


def test_everyday_wrappers_keep_the_home(tmp_path: Path) -> None:
    for line in ("unshare -r gdb -batch", "nsenter -t 1 -n gdb -batch", "chroot /srv/r ls"):
        assert answer(tmp_path, line, TOOLS, home=tmp_path)[0] == [], line
