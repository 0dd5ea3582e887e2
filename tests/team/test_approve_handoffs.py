"""A line that hands code to an interpreter (`python3 -c`, a here-document into `python3 -`,
a script file, `make`, an awk program calling system()…) asks for every `Bash(...)`
approval rule and says why; code handed over as a shell line or a command (`find -exec`,
`git -c core.pager=`, `GIT_SSH_COMMAND=`) is read as one; a `Bash(...)` rule in the
agent's `tools` exempts the very hand-off it names. Each hidden form is first run by
real bash with a fake `git` on PATH, to show that it does run a push."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from orchestrator import approve_rules
from orchestrator.approve_rules import rule_matches
from orchestrator.policy import Policy
from orchestrator.roster import parse_roster

PUSH = "Bash(git push:*)"
OTHER = "Bash(npm publish:*)"  # a rule about another command: an unread hand-off asks too
SCRIPT = "#!/bin/sh\ngit push origin main\n"
FILES = {
    "script.sh": SCRIPT,
    "Makefile": "ship:\n\tgit push origin main\n",
    "package.json": '{"scripts": {"ship": "git push origin main"}}\n',
    "hook/pre-commit": SCRIPT,
}

# (line, what the approver reads): `git push` is never written as such on these lines.
HIDDEN = [
    ("""python3 -c "import subprocess; subprocess.run(['git', 'pu' + 'sh'])" """, "python3 -c"),
    ("""python3 -Ic "import os; os.system('git pu' 'sh')" """, "python3 -c"),
    ("""env python3 -c "import os; os.system('git pu' 'sh')" """, "python3 -c"),
    ("""perl -e 'system("git", "pu"."sh")'""", "perl -e"),
    ("""perl -le 'system("git pu"."sh")'""", "perl -e"),
    ("""node -e 'require("child_process").execSync("git pu"+"sh")'""", "node -e"),
    ("""awk 'BEGIN { system("git pu" "sh") }'""", "awk program"),
    ("""echo x | sed 's/x/git pu""sh/e'""", "sed script"),
    ("python3 - <<'EOF'\nimport os\nos.system('git pu' + 'sh')\nEOF", "python3 reads from"),
    ("python3 <<'EOF'\nimport os\nos.system('git pu' + 'sh')\nEOF", "python3 reads from"),
    ("""printf 'import os; os.system("git pu" "sh")' | python3""", "python3 reads from"),
    ("""echo 'git pu""sh' | sh""", "sh reads from"),
    ("bash < script.sh", "bash reads from"),
    ("bash script.sh", "the file script.sh with bash"),
    ("sh -e script.sh", "the file script.sh with sh"),
    ("./script.sh", "the file ./script.sh"),
    ("source script.sh", "the file script.sh in this shell"),
    (". ./script.sh", "the file ./script.sh in this shell"),
    ("python3 script.sh.py", "the file script.sh.py with python3"),
    ("make ship", "recipes written in make's file"),
    ("npm run ship", "npm run"),
]


def _real_push(line: str, folder: Path) -> bool:
    """Whether real bash, run in ``folder`` with a fake ``git`` first on PATH, pushes."""
    shim = folder / "shim"
    shim.mkdir(exist_ok=True)
    log = folder / "git.log"
    fake = shim / "git"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(0o755)
    for name, text in FILES.items():
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    (folder / "script.sh.py").write_text("import os\nos.system('git pu' + 'sh')\n")
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}
    subprocess.run(
        ["bash", "-c", line], cwd=folder, env=env, check=False, capture_output=True, timeout=60
    )
    return log.exists() and any(w.startswith("push") for w in log.read_text().splitlines())


@pytest.mark.parametrize(("line", "why"), HIDDEN)
def test_code_handed_to_an_interpreter_asks(line: str, why: str, tmp_path: Path) -> None:
    assert _real_push(line, tmp_path), "the case is real: it pushes"
    for rule in (PUSH, "Bash(git push *)", OTHER):
        assert rule_matches(rule, "Bash", {"command": line}, tmp_path), (rule, line)
    reason = approve_rules.match_reason(OTHER, "Bash", {"command": line}, tmp_path)
    assert reason is not None
    assert reason.startswith(f"matches {OTHER}: ")
    assert why in reason
    assert reason.endswith(": cannot be read")


@pytest.mark.parametrize(
    "line",
    [
        """git -c core.pager='git pu""sh' log""",
        """git -c core.sshCommand='sh -c "git pu''sh"' fetch""",
        """GIT_SSH_COMMAND='git pu""sh' git fetch""",
        """export GIT_PAGER='git pu""sh'; git log""",
        """git rebase --exec 'git pu""sh' main""",
        """git submodule foreach 'git pu""sh'""",
        """git fetch --upload-pack='git pu""sh' origin""",
        """git clone -u 'git pu""sh' https://example.test/r.git""",
        """find . -maxdepth 0 -exec sh -c 'git pu""sh' \\;""",
        """find . -maxdepth 0 -execdir git pu""sh {} +""",
        """uv run sh -c 'git pu""sh'""",
        """tar -cf x.tar script.sh && tar -xf x.tar --to-command='git pu""sh'""",
        """tar --checkpoint=1 --checkpoint-action=exec='git pu""sh' -cf x.tar script.sh""",
        """tar -I 'git pu""sh' -cf x.tar script.sh""",
        """rsync -e 'git pu""sh' script.sh localhost:/tmp/x""",
        """git -c core.gitProxy='git pu""sh' fetch git://example.test/r""",
        """git -c difftool.x.cmd='git pu""sh' difftool -y --tool=x""",
        """git -c submodule.m.update='!git pu""sh' submodule update""",
    ],
)
def test_a_command_handed_over_as_text_is_read(line: str, tmp_path: Path) -> None:
    """Read, not merely unsure: a rule on another command does not ask."""
    if line.startswith(("find", "tar")):
        assert _real_push(line, tmp_path), "the case is real: it pushes"
    assert rule_matches(PUSH, "Bash", {"command": line}, tmp_path), line
    assert not rule_matches(OTHER, "Bash", {"command": line}, tmp_path), line


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("git -c core.hooksPath=hook commit -m x", "core.hooksPath"),
        ("LD_PRELOAD=./x.so git status", "LD_PRELOAD"),
        ("NODE_OPTIONS='--require ./x.js' npx tsc", "NODE_OPTIONS"),
        ("find . -name '*.sh' -exec {} \\;", "found at run time"),
        (".venv/bin/pytest -q", "the file .venv/bin/pytest"),
        ("git bisect run ./script.sh", "the file ./script.sh"),
        # the command of an environment manager's `run` or of npx is read in turn
        ("""uv run --with rich python3 -c "import os; os.system('git pu' 'sh')" """, "python3 -c"),
        ("conda run -n env python3 deploy.py", "the file deploy.py with python3"),
        ("""npx --yes node -e 'require("child_process").execSync("git pu"+"sh")'""", "node -e"),
    ],
)
def test_code_loaded_another_way_asks(line: str, why: str, tmp_path: Path) -> None:
    reason = approve_rules.match_reason(OTHER, "Bash", {"command": line}, tmp_path)
    assert reason is not None
    assert why in reason, reason


# Everyday commands stay asking-free under an ask rule (see test_everyday_cost below).
@pytest.mark.parametrize(
    "line",
    [
        "python3 -m pytest -q tests/x.py",
        "python3 -Wdefault::DeprecationWarning -m pytest",
        "uv run pytest -q",
        "poetry run mypy src",
        "npx tsc --noEmit",
        "python3 --version",
        "node --version",
        "make --version",
        "bash --version",
        "sh -c 'ls -la'",
        "awk '{print $1}' f",
        "awk -F: '$3 > 1 || $1 == \"x\" { print }' /etc/passwd",
        "sed -i 's/old/new/g' src/a.py",
        "sed -n '1,20p' f",
        "sed -e 's/a/b/' -e '/x/d' f",
        "find . -name '*.py' -exec grep -l todo {} +",
        "npm install",
        "npm ci",
        "yarn add left-pad",
        "/usr/bin/env | sort",
        "git -c color.ui=always log --oneline",
        "GIT_PAGER=cat git log -3",
        "xargs -n1 echo < list.txt",
        "git add -u src/",
        "git clean -x ./build",
        "git log --grep foreach",
        "ENV=prod python3 -m app",
        "NODE_OPTIONS=--max-old-space-size=4096 npx tsc",
        "git commit -m \"$(cat <<'EOF'\nDrop the python3 -c helper\nEOF\n)\"",
        "cat > run.sh <<'EOF'\nmake ship\npython3 -c 1\nEOF",  # data: not run here
    ],
)
def test_everyday_commands_do_not_ask(line: str, tmp_path: Path) -> None:
    for rule in (PUSH, OTHER):
        assert not rule_matches(rule, "Bash", {"command": line}, tmp_path), (rule, line)


def test_an_allow_rule_in_tools_exempts_the_hand_off_it_names(tmp_path: Path) -> None:
    """The operator's `tools: [Bash(make:*)]` says make runs without a question: its
    recipes do not ask. Code on the line is exempt only by a rule naming the word that
    gives it (`Bash(python3 -c:*)`): `Bash(python3:*)` lets python3 run, not whatever
    program its inline code runs. A rule's words written in the code still ask, and a
    bare `Bash` or a narrower rule exempts nothing."""

    def asks(line: str, tools: list[str]) -> bool:
        return rule_matches(PUSH, "Bash", {"command": line}, tmp_path, tools)

    py = "python3 -c \"import os; os.system('git pu' + 'sh')\""
    assert asks(py, [])
    assert asks(py, ["Bash"])
    assert asks(py, ["Bash(python3 -m pytest:*)"])
    assert asks(py, ["Bash", "Bash(python3:*)"])  # the program, not its inline code
    assert asks(py, ["Bash", "Bash(python3 *)"])
    assert not asks(py, ["Bash(python3 -c:*)"])
    assert not asks("python3 scripts/x.py", ["Bash(python3:*)"])  # a file it names
    assert asks("python3 -c \"import os; os.system('git push')\"", ["Bash(python3 -c:*)"])
    assert asks(f"{py} && make ship", ["Bash(python3 -c:*)"])  # make is not exempt
    perl = """perl -pi -e 'system("git pu"."sh")' f"""
    assert asks(perl, ["Bash(perl:*)"])
    assert not asks(perl, ["Bash(perl -pi -e:*)"])
    heredoc = "python3 - <<'EOF'\nimport os\nos.system('git pu' + 'sh')\nEOF"
    assert asks(heredoc, ["Bash(python3:*)"])
    assert not asks(heredoc, ["Bash(python3 -:*)"])
    assert asks("echo 'git pu''sh' | sh", ["Bash(sh:*)"])
    assert not asks("cat script.txt | sh", ["Bash(sh)"])  # exactly that command
    assert asks("""awk 'BEGIN { system("git pu" "sh") }'""", ["Bash(awk:*)"])
    assert not asks("make ship && make test", ["Bash(make:*)"])
    assert not asks(".venv/bin/pytest -q", ["Bash(.venv/bin/pytest:*)"])
    assert asks(".venv/bin/pytest -q; ./deploy.sh", ["Bash(.venv/bin/pytest:*)"])
    assert not asks("./scripts/check.sh --fast", ["Bash(./scripts/check.sh:*)"])
    assert asks("./scripts/check.sh --fast", ["Bash(./scripts/other.sh:*)"])
    assert not asks("bash scripts/check.sh", ["Read", "Bash(bash scripts/check.sh)"])
    # find and xargs run what they are given: an allow rule on them exempts none of it.
    assert asks("find . -name '*.py' -exec python3 -c 'import os' {} +", ["Bash(find:*)"])
    assert asks("find . -name x -exec {} \\;", ["Bash(find:*)"])
    assert asks("echo push | xargs git", ["Bash(xargs:*)"])
    assert asks("ls | xargs python3 -c 'import os'", ["Bash(xargs:*)"])


def test_the_reason_of_other_matches(tmp_path: Path) -> None:
    def reason(rule: str, line: str) -> str | None:
        return approve_rules.match_reason(rule, "Bash", {"command": line}, tmp_path)

    assert reason(PUSH, "git push") == f"matches {PUSH}: the command is on the line"
    assert reason(PUSH, "git push 'open") == (
        f"matches {PUSH}: the line cannot be read with confidence "
        "(an open quote or a trailing escape)"
    )
    assert reason(PUSH, "$GIT push") == (
        f"matches {PUSH}: the line cannot be read with confidence "
        "(the program $GIT is only known at run time)"
    )
    assert reason(PUSH, "git status") is None
    assert reason("Bash", "python3 -c 1") == "matches Bash"


@pytest.mark.parametrize(
    ("tools", "asked"),
    [
        (["Bash"], True),
        (["Bash", "Bash(python3 -m pytest:*)"], True),
        (["Bash", "Bash(python3:*)"], True),
        (["Bash", "Bash(python3 -c:*)"], False),
    ],
)
def test_the_policy_hook_asks_with_why_unless_tools_allow_the_hand_off(
    tools: list[str], asked: bool, tmp_path: Path
) -> None:
    """The agent's hook passes its `tools` to the rules and the reason to the approver."""
    roster = parse_roster(
        f'agents:\n  a: {{prompt: p, tools: {json.dumps(tools)}, approve: ["Bash(git push:*)"]}}\n',
        tmp_path / "agents.yaml",
        {},
    )
    calls: list[tuple[str, str]] = []

    async def decide(
        tool: str, tool_input: dict[str, Any], subagent: str | None, why: str = ""
    ) -> tuple[bool, str]:
        calls.append((tool, why))
        return False, "denied by user: no"

    policy = Policy("a", lambda: roster, lambda: tmp_path, decide)
    line = "python3 -c \"import os; os.system('git pu' + 'sh')\""
    data: Any = {"tool_name": "Bash", "tool_input": {"command": line}}
    out = anyio.run(policy.pre_tool_use, data, None, {"signal": None})
    if asked:
        assert calls == [
            ("Bash", "matches Bash(git push:*): runs code given to python3 -c: cannot be read")
        ]
        assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
    else:
        assert (calls, out) == ([], {})
