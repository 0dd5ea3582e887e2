"""End to end: an agent under `approve: ["Bash(git push:*)"]` whose model hands the push to
an interpreter (`python3 -c`, a here-document into `python3 -`, `perl -e`) is asked first,
and the approver reads why. Real CLI, scripted model, a real git push to a bare remote:
approved, it lands; denied, nothing is pushed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_runner import octy
from gitrepo import git_run as _git
from team_harness import Team, agent_rule, release_agent

TeamFactory = Callable[..., Team]

COMMANDS = {
    "py": "python3 -c \"import subprocess; subprocess.run(['git', 'pu' + 'sh', '-q', "
    "'origin', 'HEAD:refs/heads/py'], check=True); print('PUSHED-py')\"",
    "heredoc": "python3 - <<'EOF'\nimport subprocess\n"
    "subprocess.run(['git', 'pu' + 'sh', '-q', 'origin', 'HEAD:refs/heads/heredoc'], "
    "check=True)\nprint('PUSHED-heredoc')\nEOF",
    "perl": """perl -e 'system("git", "pu"."sh", "-q", "origin", "HEAD:refs/heads/perl")"""
    """ == 0 and print "PUSHED-perl\\n"'""",
}


def _push_rules(lines: dict[str, str]) -> list[dict[str, Any]]:
    """`rel` runs line NAME when asked "push NAME", and says what came of it."""
    return [
        {"agent": agent_rule("rel"), "tool_result": r"PUSHED-(\w+)", "text": "done {1}"},
        {"agent": agent_rule("rel"), "tool_result": r"(?s)^(.+)$", "text": "REFUSED {1}"},
        *(
            {
                "agent": agent_rule("rel"),
                "match": rf"push {name}\b",
                "tool_use": {"name": "Bash", "input": {"command": line}},
            }
            for name, line in lines.items()
        ),
    ]


def _pending(t: Team, n: int) -> list[dict[str, Any]]:
    def rows() -> list[dict[str, Any]] | None:
        out = octy("approvals", "--json", cwd=t.folder)
        assert out.returncode == 0, out.stderr
        found: list[dict[str, Any]] = json.loads(out.stdout)["approvals"]
        return found if len(found) >= n else None

    result: list[dict[str, Any]] = t.wait_for(rows, 90, f"{n} pending approval(s)")
    return result


@pytest.mark.cli
def test_a_push_handed_to_an_interpreter_waits_for_the_approver(
    team: TeamFactory, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    repo = tmp_path / "repo"
    _git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    _git("init", "-q", str(repo), cwd=tmp_path)
    (repo / "a.txt").write_text("a\n")
    _git("add", "a.txt", cwd=repo)
    _git("commit", "-qm", "first", cwd=repo)
    _git("remote", "add", "origin", str(remote), cwd=repo)

    def branches() -> str:
        return _git("for-each-ref", "--format=%(refname)", cwd=remote)

    t = release_agent(team, _push_rules(COMMANDS))

    first = t.request("rel", "push py")
    (row,) = _pending(t, 1)
    assert row["input"] == {"command": COMMANDS["py"]}
    assert row["why"] == ("matches Bash(git push:*): runs code given to python3 -c: cannot be read")
    # The operator's table says why too (its last column).
    table = octy("approvals", cwd=tmp_path).stdout.splitlines()
    assert table[0].split()[-1] == "WHY"
    assert table[1].endswith(row["why"])
    assert branches() == ""  # asked, not run
    assert octy("approve", row["id"], cwd=tmp_path).returncode == 0
    with t.mailbox() as mb:
        assert mb.wait_for_reply(first.id, 90).body == "done py"
    assert branches() == "refs/heads/py\n"  # the code did push, once approved

    for name, why in (
        ("heredoc", "runs code python3 reads from its input (a pipe or here-document)"),
        ("perl", "runs code given to perl -e"),
    ):
        asked = t.request("rel", f"push {name}")
        (row,) = _pending(t, 1)
        assert row["input"] == {"command": COMMANDS[name]}
        assert row["why"] == f"matches Bash(git push:*): {why}: cannot be read"
        assert octy("deny", row["id"], "--reason", "not today", cwd=tmp_path).returncode == 0
        with t.mailbox() as mb:
            answer = mb.wait_for_reply(asked.id, 90).body
        assert answer.startswith("REFUSED")
        assert "denied by user: not today" in answer
    assert branches() == "refs/heads/py\n"  # nothing else was pushed

    requested = t.log_events("approval_requested", "rel")
    assert [e["why"].split(": ")[1] for e in requested] == [
        "runs code given to python3 -c",
        "runs code python3 reads from its input (a pipe or here-document)",
        "runs code given to perl -e",
    ]
    with t.mailbox() as mb:
        texts = [m.body["text"] for m in mb.list(sender="rel") if m.kind == "request"]
    assert all("cannot be read" in text for text in texts)


@pytest.mark.cli
def test_allowing_the_interpreter_does_not_allow_what_its_inline_code_runs(
    team: TeamFactory, tmp_path: Path
) -> None:
    """`tools: [Bash(python3:*)]` lets python3 run; `python3 -c` code that pushes still
    asks, and so do the words `xargs` reads from its input (`… | xargs git`)."""
    remote = tmp_path / "remote.git"
    repo = tmp_path / "repo"
    _git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    _git("init", "-q", str(repo), cwd=tmp_path)
    _git("commit", "-q", "--allow-empty", "-m", "first", cwd=repo)
    _git("remote", "add", "origin", str(remote), cwd=repo)
    lines = {
        "py": COMMANDS["py"],
        "xargs": "printf 'push\\n-q\\norigin\\nHEAD:refs/heads/xargs\\n' | xargs git"
        " && echo PUSHED-xargs",
    }
    t = release_agent(team, _push_rules(lines), ("Bash", "Bash(python3:*)", "Bash(xargs:*)"))
    for name, why in (
        ("py", "runs code given to python3 -c: cannot be read"),
        ("xargs", "the command is on the line"),
    ):
        asked = t.request("rel", f"push {name}")
        (row,) = _pending(t, 1)
        assert row["why"] == f"matches Bash(git push:*): {why}"
        assert octy("deny", row["id"], cwd=tmp_path).returncode == 0
        with t.mailbox() as mb:
            assert mb.wait_for_reply(asked.id, 90).body.startswith("REFUSED")
    assert _git("for-each-ref", cwd=remote) == ""  # nothing was pushed
