"""`octy-orchestrate init` where the starter cannot simply be written (reviewer G, 8 and 9)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_runner import octy


def test_a_file_named_prompts_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """Finding 8: with a file named prompts, init wrote agents.yaml and then failed with
    "[Errno 17] File exists: 'prompts'"; the retry refused to overwrite agents.yaml. Now
    nothing is written, the message names prompts and what to do, and a retry works."""
    (tmp_path / "prompts").write_text("notes\n", encoding="utf-8")
    for force in ((), ("--force",)):
        done = octy("init", *force, cwd=tmp_path)
        assert done.returncode == 1, done
        assert "Errno" not in done.stderr
        assert "Traceback" not in done.stderr
        assert "not writing prompts: it is a file where init makes a folder" in done.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["prompts"]
        assert (tmp_path / "prompts").read_text(encoding="utf-8") == "notes\n"
    (tmp_path / "prompts").unlink()
    octy("init", cwd=tmp_path, check=True)
    assert (tmp_path / "prompts" / "lead.md").is_file()


def test_a_file_in_the_way_of_the_roster_folder_is_refused(tmp_path: Path) -> None:
    """`-f team/agents.yaml` where team is a file: a clear refusal, nothing written."""
    (tmp_path / "team").write_text("", encoding="utf-8")
    done = octy("init", "-f", "team/agents.yaml", cwd=tmp_path)
    assert done.returncode == 1, done
    assert "not writing team: it is a file where init makes a folder" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["team"]


def test_a_path_ending_in_a_slash_is_a_folder_made_for_the_team(tmp_path: Path) -> None:
    """Finding 9: `init -f myteam/` wrote a roster file named myteam and prompts/ in the
    current folder. A trailing slash names a folder: made, with the starter inside."""
    done = octy("init", "-f", "myteam/", cwd=tmp_path, check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["myteam"]
    team = tmp_path / "myteam"
    assert sorted(p.name for p in team.iterdir()) == ["agents.yaml", "prompts"]
    assert (team / "prompts" / "lead.md").is_file()
    assert "wrote myteam/agents.yaml" in done.stdout
    octy("config", "-f", "myteam/agents.yaml", cwd=tmp_path, check=True)
    # The same with -f before the verb (the shared top-level option dropped the slash).
    top = octy("-f", "other/", "init", cwd=tmp_path, check=True)
    assert "wrote other/agents.yaml" in top.stdout
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["agents.yaml", "prompts"]
    octy("-f", "other/", "config", cwd=tmp_path, check=True)


def test_a_read_only_folder_is_not_told_to_remove_what_is_not_there(tmp_path: Path) -> None:
    """Found walking the README: `init` on a read-only file system said "not writing
    prompts: it cannot be made (Read-only file system); remove it, or write elsewhere with
    -f", and there is no prompts to remove. A real read-only bind mount, in a private mount
    namespace."""
    import subprocess

    from cli_runner import CLI, RUN_TIMEOUT_S

    probe = subprocess.run(
        ["unshare", "-rm", "true"], capture_output=True, timeout=RUN_TIMEOUT_S, check=False
    )
    if probe.returncode != 0:
        pytest.skip("no unprivileged mount namespace here (unshare -rm)")
    team = tmp_path / "team"
    team.mkdir()
    script = f'mount --bind -o ro "{team}" "{team}" && cd "{team}" && exec "{CLI}" init'
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 1, done
    assert "not writing prompts: it cannot be made (Read-only file system)" in done.stderr
    assert "remove it" not in done.stderr
    assert "write elsewhere with -f" in done.stderr
    assert list(team.iterdir()) == []
