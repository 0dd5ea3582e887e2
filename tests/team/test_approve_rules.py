"""`approve:` rules catch a call however it is written: a shell line is read command by
command (wrappers, assignments, `sh -c`, git's global options, compound commands taken
apart), a line that cannot be read asks, Edit rules cover every file-editing tool and Read
rules the tools that read files, as the CLI's rules do."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orchestrator import web_host
from orchestrator.approve_rules import rule_matches
from orchestrator.bash_commands import UNSURE, commands

PUSH = "Bash(git push:*)"


@pytest.mark.parametrize(
    "line",
    [
        "git push",
        "git -C /repo push origin main",
        "git -c user.name=x --no-pager push",
        "git --git-dir=/r/.git --work-tree /r push",
        "GIT_SSH_COMMAND=x git push",
        "A=1 B=2 git push",
        "git  push",
        "git\tpush",
        "/usr/bin/git push",
        "bash -c 'git push'",
        'sh -lc "cd /r && git push"',
        "eval 'git push'",
        "{ git push; }",
        "(git push)",
        "time git push",
        "time -p git push",
        "env -i PATH=/bin git push",
        "command git push",
        "nice -n 5 git push",
        "sudo -u deploy git push",
        "nohup git push &",
        "timeout 30 git push",
        "echo origin | xargs git push",
        "echo push | xargs git",  # xargs adds the words it reads
        "echo push | xargs -n1 -P2 git",
        "echo push | xargs -I{} git {} origin",
        "echo push | xargs --replace=@ git @",
        "echo 'git push' | xargs -I % sh -c %",
        "if true; then git push; fi",
        "while false; do git push; done",
        "true || git push",
        "make && git push",
        "cd /r\ngit push",
        "echo $(git push)",
        'echo "$(git push)"',
        "echo `git push`",
        "diff <(git push) x",
        "git push 2>&1 | tee log",
        "find . -exec git push \\;",
        "git \\\npush",
        "su -c 'git push'",
        "ssh host 'git push'",
        "busybox sh -c 'git push'",
        "coproc git push",
        "$GIT push",  # the program is only known when the shell runs it: ask
        "git push 'origin",  # an open quote: ask
    ],
)
def test_a_push_is_caught_however_it_is_written(line: str, tmp_path: Path) -> None:
    assert rule_matches(PUSH, "Bash", {"command": line}, tmp_path)


@pytest.mark.parametrize(
    "line",
    [
        *("git pushy", "git status", "git log --oneline", "echo push", "gitx push", "ls; pwd"),
        *("git ls-files | xargs grep -l todo", "git diff --name-only | xargs git add"),
        *("find . -name '*.py' | xargs -I{} wc -l {}", "ls | xargs", "xargs -a f.txt gcc -I x"),
    ],
)
def test_other_commands_do_not_ask(line: str, tmp_path: Path) -> None:
    assert not rule_matches(PUSH, "Bash", {"command": line}, tmp_path)


def test_commands_are_normalised_or_unsure() -> None:
    assert commands("sudo -u bob nice -n 5 env A=1 /usr/bin/git --no-pager push x") == [
        "git push x"
    ]
    assert commands("make && GIT_DIR=. git  push ; ls") == ["make", "git push", "ls"]
    assert commands("echo 'open") is UNSURE
    assert commands("${TOOL:-git} push") is UNSURE


@pytest.mark.parametrize(
    ("rule", "tool", "tool_input", "expected"),
    [
        ("Bash(npm publish)", "Bash", {"command": "npm publish --tag x"}, True),
        ("Bash(npm publish)", "Bash", {"command": "npm  publish"}, True),
        ("Bash(npm run *)", "Bash", {"command": "CI=1 npm run build"}, True),
        ("Bash(git push *)", "Bash", {"command": "git push"}, True),
        ("Bash(git push *)", "Bash", {"command": "git -C /r push"}, True),
        ("Bash(git push *)", "Bash", {"command": "git pushx"}, False),
        ("Bash(rm -rf *)", "Bash", {"command": "rm -rf /tmp/x"}, True),
        ("Bash(rm -rf *)", "Bash", {"command": "rm -rf $dir/*"}, True),
        ("Bash(rm -rf *)", "Bash", {"command": "rm $opts /tmp/x"}, True),
        ("Bash(rm -rf *)", "Bash", {"command": "rm -f $tmp"}, False),
        ("Bash(npm run*)", "Bash", {"command": "npm $cmd build"}, True),
        ("Bash(npm run*)", "Bash", {"command": "npm install $pkg"}, False),
        ("Bash(npm publish)", "Bash", {"command": "npm publish $flags"}, True),
        ("Bash(npm publish)", "Bash", {"command": "npm pack $x"}, False),
        ("Bash(git * main)", "Bash", {"command": "git status"}, False),
        ("Bash(git * main)", "Bash", {"command": "ssh h git push origin main"}, True),
        ("Bash(git * main)", "Bash", {"command": "ssh h git push origin mainly"}, False),
        ("Edit(src/**)", "Write", {"file_path": "src/a.py", "content": ""}, True),
        ("Edit(src/**)", "MultiEdit", {"file_path": "src/a.py", "edits": []}, True),
        ("Edit(src/**)", "NotebookEdit", {"notebook_path": "src/n.ipynb"}, True),
        ("Edit(src/**)", "Write", {"file_path": "docs/a.md", "content": ""}, False),
        ("Write(src/**)", "MultiEdit", {"file_path": "src/a.py", "edits": []}, True),
        ("Edit", "Write", {"file_path": "x", "content": ""}, True),
        ("Edit", "Read", {"file_path": "x"}, False),
        ("Read(secrets/**)", "Read", {"file_path": "secrets/k"}, True),
        ("Read(secrets/**)", "Grep", {"pattern": "key", "path": "secrets"}, True),
        ("Read(secrets/**)", "Grep", {"pattern": "key"}, True),  # the whole folder
        ("Read(secrets/**)", "Grep", {"pattern": "key", "path": "src"}, False),
        ("Read(secrets/**)", "Glob", {"pattern": "**/*.pem"}, True),
        ("Read(secrets/**)", "Glob", {"pattern": "*.py", "path": "src"}, False),
        ("Read", "Grep", {"pattern": "x"}, True),
        ("WebFetch(domain:example.com)", "WebFetch", {"url": "https://EXAMPLE.com/a"}, True),
    ],
)
def test_rules_cover_what_the_clis_rules_cover(
    rule: str, tool: str, tool_input: dict[str, Any], expected: bool, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "secrets").mkdir()
    assert rule_matches(rule, tool, tool_input, tmp_path) is expected


# Words the shell builds when it runs (expansions, brace expansion, aliases) are not
# literal: a command holding one asks for every rule it could match, and only those.
@pytest.mark.parametrize(
    "line",
    [
        "{git,push} origin main",
        "x=push; git $x origin main",
        'x=push; git "$x" origin main',
        "git ${IFS}push origin main",
        "git $'push' origin main",
        "git $(echo push) origin main",
        "git `echo push` origin main",
        "git pu{s,}h origin main",
        "git {push,status} origin main",
        "$(echo git) push origin main",
        "git -c alias.p=push p origin main",
        "git --config-env=alias.p=P p origin main",
        "GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=alias.p GIT_CONFIG_VALUE_0=push git p origin",
        'p() { git "$@"; }; p push origin main',
        "alias p=git\np push origin main",
        "alias p='git push'\np origin main",
        "bash -c 'git $0 origin main' push",
        "git -c help.autocorrect=immediate psuh origin main",
        "for x in push; do git $x origin main; done",
        "touch push; git pus? origin main",
        "touch push; git p* origin main",
        "touch push; git [p]ush origin main",
        "shopt -s extglob\ntouch push; git @(push) origin main",
        "cat <<'EOF' | bash\ngit push origin main\nEOF",
        "bash <<'EOF'\nx=push; git $x origin main\nEOF",
        "cat <<EOF\n$(git push origin main)\nEOF",
        "cat <<'EOF' >/dev/null; git push origin main\ntext\nEOF",
        "cat <<'EOF' >/dev/null\ntext\nEOF\ngit push origin main",
        "cat > x.sh <<'EOF'\ngit push origin main\nEOF\nbash x.sh",
    ],
)
def test_words_built_by_the_shell_ask(line: str, tmp_path: Path) -> None:
    if not re.search("alias[.]|config-env|GIT_CONFIG|autocorrect", line):  # git's own
        assert "RAN git push " in _bash_runs(line, tmp_path)  # the case is real
    for rule in (PUSH, "Bash(git push *)"):
        assert rule_matches(rule, "Bash", {"command": line}, tmp_path), (rule, line)


def _bash_runs(line: str, folder: Path) -> str:
    """What real bash runs in ``folder`` for ``line``, git a function printing its argv."""
    fake = 'shopt -s expand_aliases; git() { echo RAN git "$@"; }; export -f git\n'
    command = ["bash", "-c", fake + line]
    done = subprocess.run(command, cwd=folder, check=False, capture_output=True, text=True)
    return done.stdout


# Wrappers the README lists as taken off are taken off for glob rules too.
@pytest.mark.parametrize(
    "line",
    [
        "timeout 10 git push origin main",
        "timeout -s KILL --foreground 1m git push origin main",
        "env -S 'git push origin main'",
        "env --split-string='git push' origin main",
        "bash -o errexit -c 'git push origin main'",
        "bash -e +O extglob -c 'git push origin main'",
        "function f { git push origin main; }; f",
        "function f() { git push origin main; }",
        "echo 'git push origin main' | sh",
    ],
)
def test_glob_rules_see_through_wrappers(line: str, tmp_path: Path) -> None:
    assert rule_matches("Bash(git push *)", "Bash", {"command": line}, tmp_path), line


def test_wrappers_are_normalised() -> None:
    assert commands("timeout -k 5 10 git push x") == ["git push x"]
    assert commands("env -S 'git push x'") == ["git push x"]
    assert commands("bash -o pipefail -c 'git push x'") == ["git push x"]
    assert commands("function f { git push x; }") == ["git push x"]


# Expansions elsewhere do not make unrelated commands ask.
@pytest.mark.parametrize(
    "line",
    [
        "ls -la",
        "git status",
        "pytest -q",
        "echo $HOME",
        'echo "${HOME}/x" {a,b}',
        "git status $x",
        "git log --format='%H {a,b}'",
        "cp -r src/{a,b} /tmp",
        "awk '{print $1, $2}' f",
        "alias ll='ls -l'",
        "find . -name '*.py' -exec grep -l x {} +",
        "ls *.py && git add src/*.py",
        "arr[0]=x; [ -f a ] && [[ -n $x ]] && echo ${arr[0]}",
        "git log -1 --format=%H HEAD~1",
        "for f in *.py; do wc -l $f; done",
        "curl -s 'https://x.test/a?b=1' https://x.test/c?d",
        # Here-documents cat only copies are data: a commit message, a file written.
        "git commit -m \"$(cat <<'EOF'\nFix the `foo` helper\n\n* `bar` renamed; [x] done\n"
        '{a,b} Why? $HOME\nEOF\n)"',
        "cat > notes.md <<'EOF'\n`code` first\n$x [x] {a,b}\nEOF",
        "cat > notes.md <<'EOF'\nuse git $VERB or npm $x\nEOF",
        "git commit -m \"$(cat <<'EOF'\nDon't ask: the `git` docs say *why*?\nEOF\n)\"",
        "echo 'Run `make` first'",
    ],
)
def test_expansions_in_other_commands_do_not_ask(line: str, tmp_path: Path) -> None:
    for rule in (PUSH, "Bash(git push *)", "Bash(npm publish)"):
        assert not rule_matches(rule, "Bash", {"command": line}, tmp_path), (rule, line)


# WebFetch rules read a URL as the CLI (Node's WHATWG URL) does, and ask when Python's
# reading and that one disagree.
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com\\@evil.com/", True),
        ("https://example.com./x", True),
        ("https://EXAMPLE.com:443/a", True),
        ("https:\\\\example.com/", True),
        ("https:example.com/x", True),
        ("https://ex%61mple.com/", True),
        ("https://\uff45xample.com/", True),
        ("https://user:pw@example.com/", True),
        (" https://exam\tple.com/", True),
        ("https://evil.com/example.com", False),
        ("https://example.com.evil.com/", False),
        ("https://evil.com\\@example.com/", True),  # the readings disagree: ask
        ("https://docs.python.org/3/", False),
    ],
)
def test_webfetch_rule_reads_urls_as_the_cli(url: str, expected: bool, tmp_path: Path) -> None:
    rule = "WebFetch(domain:example.com)"
    assert rule_matches(rule, "WebFetch", {"url": url}, tmp_path) is expected


# Node's own reading of each URL, where node is installed (CI has Python only).
NODE_URLS = [
    "http://example.com\\@evil.com/",
    "https://evil.com\\@example.com/",
    "https://example.com./x",
    "https:\\\\example.com/",
    "https:example.com/x",
    "https:///example.com/",
    "https://ex%61mple.com/",
    "https://\uff45xample.com/",
    "https://a@b@example.com:8080/",
    " https://exam\tple.com/",
    "https://example.com#@evil.com",
    "https://example.com?@evil.com",
    "http://0x7f.1/",
    "http://2130706433/",
    "http://[::1]:80/",
    "HTTPS://Example.COM",
    "https://example.com%2e/",
    "https://stra\u00dfe.example/",
    "https://a\u3002example.com/",
    "https://EXAMPLE\u00df.com/",
]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_hosts_are_read_as_node_reads_them() -> None:
    script = "for (const u of JSON.parse(process.argv[1])) console.log(new URL(u).hostname)"
    done = subprocess.run(
        ["node", "-e", script, json.dumps(NODE_URLS)], capture_output=True, text=True, check=True
    )
    node = [h.strip("[]") for h in done.stdout.splitlines()]
    assert [web_host.whatwg_host(u) for u in NODE_URLS] == node
