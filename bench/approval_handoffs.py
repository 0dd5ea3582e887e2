"""What reading interpreter hand-offs costs in questions: a corpus of everyday coding-agent
shell lines, classified under ``approve: ["Bash(git push:*)"]``.

For each line: does it ask, and is that because of a hand-off (``python3 -c``, a script
file, ``make``…) rather than because the line pushes or cannot be read? Run with
``python bench/approval_handoffs.py`` (``-v`` lists the lines that ask). The corpus is the
kind of line the agents of this project's own sessions run all day: reading files and
history, searching, tests, linters, commits with here-document messages, small Python
snippets to inspect data, builds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from orchestrator import git_state
from orchestrator.approve_rules import bash_reason

RULE = "git push:*"
HANDOFF = ": cannot be read"  # the end of a hand-off's reason (not of an unsure line's)

CORPUS: tuple[str, ...] = (
    # looking around
    "ls",
    "ls -la",
    "ls -la src/ tests/",
    "pwd",
    "cd /repo && ls",
    "tree -L 2 src",
    "find . -name '*.py' | head -50",
    "find . -type f -name '*.md' -not -path './node_modules/*'",
    "find src -name '*.py' -exec grep -l 'import yaml' {} +",
    "find . -name '__pycache__' -type d -prune -exec rm -rf {} +",
    "du -sh .",
    "wc -l src/*.py",
    "file build/out.bin",
    "stat -c %s dist/pkg.tar.gz",
    "which python3 node",
    "date -u",
    "uname -a",
    "env | sort | grep -i path",
    "echo $PATH",
    "df -h /tmp",
    # reading
    "cat README.md",
    "cat -n src/app.py | sed -n '40,80p'",
    "head -50 CHANGELOG.md",
    "tail -n 100 logs/app.log",
    "sed -n '120,180p' src/app/models.py",
    "awk 'NR>=10 && NR<=30' src/app.py",
    "awk -F, '{print $2}' data.csv | sort | uniq -c | sort -rn | head",
    "jq '.dependencies' package.json",
    "less -N src/app.py",
    "diff -u a.txt b.txt",
    "cmp old.bin new.bin",
    "xxd build/out.bin | head",
    # searching
    "grep -rn 'def main' src/",
    "grep -rn --include='*.py' 'TODO' .",
    "grep -c error logs/app.log",
    "rg -n 'fn parse' src",
    "rg --files | rg test_",
    "git grep -n 'deprecated'",
    # git, reading
    "git status",
    "git status --short",
    "git diff",
    "git diff --stat HEAD~3",
    "git diff --cached",
    "git log --oneline -20",
    "git log -p -1 src/app.py",
    "git show HEAD~1:src/app.py | head -40",
    "git blame -L 10,30 src/app.py",
    "git branch -a",
    "git remote -v",
    "git stash list",
    "git rev-parse --abbrev-ref HEAD",
    "git ls-files | wc -l",
    # git, writing
    "git add -A",
    "git add src/app.py tests/test_app.py",
    "git commit -m 'Fix the parser on empty input'",
    "git commit -qm \"$(cat <<'EOF'\nparser: empty input is an error\n\n"
    'The `parse()` helper returned None; callers did `x[0]`.\nEOF\n)"',
    "git checkout -b fix/parser",
    "git switch main",
    "git merge --no-ff fix/parser",
    "git rebase main",
    "git restore src/app.py",
    "git tag v1.2.3",
    "git fetch origin",
    "git pull --rebase",
    "git worktree add ../wt feature",
    # tests, linters, builds
    "pytest",
    "pytest -q",
    "pytest -q tests/test_parser.py -k empty",
    "pytest -x --tb=short 2>&1 | tail -30",
    "python3 -m pytest -q tests/",
    "python -m pytest --cov=src",
    "timeout 600 pytest -q tests/team 2>&1 | tail -5",
    ". .venv/bin/activate && pytest -q",
    "source .venv/bin/activate && ruff check src tests",
    ".venv/bin/pytest -q",
    ".venv/bin/python -m mypy src",
    "ruff check .",
    "ruff format --check src tests",
    "mypy --strict src",
    "black --check .",
    "flake8 src",
    "tox -e py311",
    "npm test",
    "npm run build",
    "npm run lint -- --fix",
    "npm install",
    "npm ci",
    "npx tsc --noEmit",
    "npx eslint src",
    "yarn test",
    "cargo build",
    "cargo test -- --nocapture",
    "cargo clippy",
    "go build ./...",
    "go test ./...",
    "go vet ./...",
    "make",
    "make test",
    "make -j4 build",
    "cmake -S . -B build && cmake --build build",
    "./gradlew test",
    "mvn -q test",
    "pip install -e '.[dev]'",
    "pip install requests",
    "pip list | grep -i pytest",
    "uv run pytest",
    # `python3 -m …` (the module is looked up from the call's folder first: load_paths)
    "python3 -m pip install -e .",
    "python3 -m pip install -e '.[dev]'",
    "python3 -m pip install -r requirements.txt",
    "python3 -m pytest -q",
    "python3 -m pytest . && git status",
    "python3 -m pytest -x tests/test_app.py::test_parse",
    "python -m venv .venv && .venv/bin/pip install -e .",
    "python3 -m mypy src",
    "python3 -m ruff check .",
    "python3 -m json.tool data.json",
    "python3 -m build",
    "python3 -m unittest discover -s tests",
    "python3 -m coverage run -m pytest && python3 -m coverage report",
    "uv run python -m pytest -q",
    "PYTHONPATH=src python3 -m pytest -q",
    "PYTHONPATH=src:. pytest -q tests/",
    "PYTHONPATH=$PWD/src python3 -m app --help",
    "PYTHONPATH=src .venv/bin/pytest -q",  # the venv's own modules are read (load_paths)
    "PYTHONPATH=src:. .venv/bin/python -m app",
    "docker build -t app .",
    "docker compose up -d",
    # running the project and small snippets
    "python3 src/app.py --help",
    "python3 scripts/migrate.py --dry-run",
    "python3 manage.py test",
    "python3 -c 'import sys; print(sys.version)'",
    "python3 -c \"import json; print(json.load(open('data.json'))['version'])\"",
    "python3 - <<'EOF'\nimport json\nd = json.load(open('data.json'))\nprint(len(d))\nEOF",
    "python3 -m http.server 8000 &",
    "python3 -m venv .venv",
    "python3 --version",
    "node --version",
    "node scripts/gen.js",
    "node -e 'console.log(require(\"./package.json\").version)'",
    "./scripts/check.sh",
    "bash scripts/release-notes.sh",
    "sh -c 'cd build && ls'",
    "echo done",
    "printf '%s\\n' a b c",
    "cat > /tmp/notes.md <<'EOF'\n# Notes\nrun make test, then python3 -m pytest\nEOF",
    # files and processes
    "mkdir -p build/out",
    "cp src/a.py /tmp/a.py.bak",
    "mv old.txt new.txt",
    "rm -rf build/",
    "touch src/__init__.py",
    "chmod +x scripts/run.sh",
    "ln -s ../shared shared",
    "tar czf dist.tgz dist/",
    "unzip -l pkg.whl",
    "sed -i 's/old_name/new_name/g' src/*.py",
    "sed -i.bak -e 's/foo/bar/' config.ini",
    "perl -pi -e 's/\\s+$//' src/app.py",
    "ps aux | grep python",
    "kill 12345",
    "sleep 2",
    "curl -s http://localhost:8000/health",
    "curl -sSL https://example.com/api | jq .",
    "sqlite3 queue/team.db 'select count(*) from messages'",
    "xargs -a files.txt wc -l",
    "sort -u names.txt > names.sorted",
    "tee out.log < in.txt",
)


def project(folder: Path) -> None:
    """A small Python project as an agent works in: a git repository with a src layout,
    tests, a venv, data files (what the load-path and config checks read)."""
    for name, text in (
        ("pyproject.toml", '[project]\nname = "app"\nversion = "0.1"\n'),
        ("requirements.txt", "requests\n"),
        ("data.json", "{}\n"),
        ("src/app/__init__.py", ""),
        ("src/app/__main__.py", "print('app')\n"),
        ("src/app/models.py", ""),
        ("tests/__init__.py", ""),
        ("tests/conftest.py", ""),
        ("tests/test_app.py", "def test_parse():\n    pass\n"),
    ):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(folder / ".venv")], check=True
    )
    # installed in it as pip lays them out: a library, and the project itself editable
    # (a .pth naming src): what a PYTHONPATH folder may shadow of the venv's own
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = folder / ".venv" / "lib" / version / "site-packages"
    (site / "requests").mkdir()
    (site / "requests" / "__init__.py").write_text("")
    (site / "_app.pth").write_text(f"{folder / 'src'}\n")
    for dist, top in (("requests-2.32.0", "requests"), ("app-0.1", "app")):
        (site / f"{dist}.dist-info").mkdir()
        (site / f"{dist}.dist-info" / "top_level.txt").write_text(top + "\n")
        (site / f"{dist}.dist-info" / "RECORD").write_text(f"{top}/__init__.py,,\n")


def main(verbose: bool) -> None:
    asks: Counter[str] = Counter()
    spent: list[tuple[float, str]] = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name) / "project"
        project(folder)
        (Path(name) / "home").mkdir()  # the agent's HOME, beside it (one holding it asks)
        env = {**os.environ, "HOME": str(Path(name) / "home")}
        for line in CORPUS:
            for tools, label in (([], "tools: [Bash]"), (ALLOWED, "with allow rules")):
                # the Bash rules alone, then as the hook reads them in a project folder
                # (git's state, load paths, configs: what the line reads there)
                for where in ("", " (in a project)"):
                    git = git_state.Lookup(folder, env) if where else None
                    why = bash_reason(RULE, line, tools, git=git)
                    if where:  # the best of 3 (a first read fills caches: once a process)
                        took = []
                        for _ in range(3):
                            started = time.perf_counter()
                            bash_reason(RULE, line, tools, git=git_state.Lookup(folder, env))
                            took.append(time.perf_counter() - started)
                        spent.append((min(took), line))
                    if why is None:
                        continue
                    kind = "hand-off" if why.endswith(HANDOFF) else "other"
                    asks[f"{label}{where}: {kind}"] += 1
                    if verbose and (not tools or where):
                        shown = f"{kind}{'*' if where else ''}"
                        print(f"  {shown:9} {line.splitlines()[0][:70]!r:74} {why}")
    total = len(CORPUS)
    print(f"{total} lines under approve: [Bash({RULE})] (-v: * read in a project folder)")
    for label in ("tools: [Bash]", "with allow rules"):
        for where in ("", " (in a project)"):
            other, handoff = asks[f"{label}{where}: other"], asks[f"{label}{where}: hand-off"]
            print(
                f"  {label + where:33} ask before: {other} ({other / total:.1%}); "
                f"now: {other + handoff} ({(other + handoff) / total:.1%}), "
                f"{handoff} more from hand-offs"
            )
    spent.sort()
    median, (worst, slow) = spent[len(spent) // 2][0] * 1000, spent[-1]
    print(
        f"  hook time a line in the project: median {median:.3f} ms, mean "
        f"{sum(t for t, _ in spent) / len(spent) * 1000:.3f} ms, slowest "
        f"{worst * 1000:.1f} ms ({slow.splitlines()[0][:40]!r})"
    )
    print(f"  allow rules: {', '.join(ALLOWED)}")


# What an operator who wants everyday runs asking-free adds to the agent's tools.
ALLOWED = [
    "python3 -m pytest:*",
    "python3 scripts/migrate.py:*",
    "python3 manage.py:*",
    "python3 src/app.py:*",
    "make:*",
    "npm test",
    "npm run:*",
    "yarn test",
    ".venv/bin/pytest:*",
    "./scripts/check.sh",
    "bash scripts/release-notes.sh",
    "node scripts/gen.js",
    ". .venv/bin/activate",
    "source .venv/bin/activate",
]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main("-v" in sys.argv[1:])
