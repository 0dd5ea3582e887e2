"""Programs a build tool runs that the line names in a variable or an option: cargo's
``RUSTC_WRAPPER`` (and ``RUSTC``, ``RUSTDOC``, their ``CARGO_BUILD_*`` forms), cargo's
``--config`` (a ``build.rustc-wrapper``, a runner…), npm's script shell
(``npm_config_script_shell``). Each ran its program unasked under ``Bash(cargo:*)`` /
``Bash(npm test:*)``; the variables are now read as a command (``./x.sh``: a file run,
``sccache`` a program by name) and ``cargo --config`` asks, exempt by a rule naming it.
The real hook; each line is first run for real (bash, no terminal) to show it pushes."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

import pytest
from approval_lines import RULE, answer, git, pushable, runs

TOOLS = ["Bash", "Bash(cargo:*)", "Bash(npm test:*)", "Bash(export:*)"]
WRAPPER = '#!/bin/sh\ngit push -q origin main && touch ran-it\nexec "$@"\n'


def _repo(tmp_path: Path) -> tuple[Path, Path]:
    remote, repo = pushable(tmp_path)
    (repo / "x.sh").write_text(WRAPPER)
    (repo / "x.sh").chmod(0o755)
    return remote, repo


def _pushed(remote: Path, repo: Path) -> bool:
    return git(remote, "rev-parse", "main") == git(repo, "rev-parse", "main")


CARGO = [
    ("RUSTC_WRAPPER=./x.sh cargo build -q --offline", "runs the file ./x.sh"),
    # rustc runs the linker its flags name; cargo run the target's runner
    (
        "RUSTFLAGS='-C linker=./x.sh' cargo build -q --offline",
        "gives RUSTFLAGS code to load or run",
    ),
    (
        "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER=./x.sh cargo run -q --offline",
        "runs the file ./x.sh",
    ),
    (
        "cargo build -q --offline --config 'build.rustc-wrapper=\"./x.sh\"'",
        "gives cargo --config, which may name programs to run",
    ),
]


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")
@pytest.mark.parametrize(("line", "why"), CARGO)
def test_a_program_cargo_runs_asks(line: str, why: str, tmp_path: Path) -> None:
    if "X86_64" in line and platform.machine() != "x86_64":
        pytest.skip("the runner named is an x86_64 target's")
    remote, repo = _repo(tmp_path)
    (repo / "Cargo.toml").write_text('[package]\nname = "k"\nversion = "0.1.0"\n')
    (repo / "src").mkdir()
    (repo / "src" / "main.rs").write_text("fn main() {}\n")
    home = tmp_path / "home"
    home.mkdir()
    assert answer(repo, "cargo build -q --offline", TOOLS, home=home)[0] == []
    # rustup finds its toolchains in the runner's HOME (runs() gives the folder as HOME)
    rustup = os.environ.get("RUSTUP_HOME") or str(Path.home() / ".rustup")
    cargo = os.environ.get("CARGO_HOME") or str(Path.home() / ".cargo")
    assert runs(f"export RUSTUP_HOME={rustup} CARGO_HOME={cargo}; {line}", repo)
    assert _pushed(remote, repo)
    assert answer(repo, line, TOOLS, home=home)[0] == [f"matches {RULE}: {why}: cannot be read"]


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_npms_script_shell_asks(tmp_path: Path) -> None:
    remote, repo = _repo(tmp_path)
    (repo / "package.json").write_text('{"name": "k", "scripts": {"test": "true"}}\n')
    home = tmp_path / "home"
    home.mkdir()
    line = "npm_config_script_shell=./x.sh npm test"
    assert answer(repo, "npm test", TOOLS, home=home)[0] == []
    assert runs(line, repo)
    assert _pushed(remote, repo)
    why = "runs the file ./x.sh"
    assert answer(repo, line, TOOLS, home=home)[0] == [f"matches {RULE}: {why}: cannot be read"]


def test_a_named_program_or_a_rule_naming_the_option_asks_nothing(tmp_path: Path) -> None:
    for line in (
        "RUSTC_WRAPPER=sccache cargo build",
        "RUSTFLAGS='-D warnings' cargo build",
        "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=clang cargo build",
        "cargo build --release",
        "cargo run -- --config x",  # the program's own words
    ):
        assert answer(tmp_path, line, TOOLS)[0] == [], line
    line = "cargo build --config profile.dev.opt-level=1"
    assert answer(tmp_path, line, [*TOOLS, "Bash(cargo build --config:*)"])[0] == []
    why = "runs the file ./w: cannot be read"
    for line in ("export RUSTC_WRAPPER=./w; cargo build", "RUSTC=./w cargo build"):
        assert answer(tmp_path, line, TOOLS)[0] == [f"matches {RULE}: {why}"], line


NPM = [
    ("npm test --script-shell=./x.sh", "gives npm --script-shell, naming code its scripts run"),
    (
        "npm test --node-options='--require ./r.js'",
        "gives npm --node-options, naming code its scripts run",
    ),
    (
        "npm_config_node_options='--require ./r.js' npm test",
        "gives npm_config_node_options code to load or run",
    ),
]


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
@pytest.mark.parametrize(("line", "why"), NPM)
def test_npms_options_naming_code_ask(line: str, why: str, tmp_path: Path) -> None:
    remote, repo = _repo(tmp_path)
    (repo / "package.json").write_text('{"name": "k", "scripts": {"test": "node -e 1"}}\n')
    (repo / "r.js").write_text('require("child_process").execSync("./x.sh true")\n')
    home = tmp_path / "home"
    home.mkdir()
    assert runs(line, repo)
    assert _pushed(remote, repo)
    assert answer(repo, line, TOOLS, home=home)[0] == [f"matches {RULE}: {why}: cannot be read"]
    # exempt by a rule that is exactly the command, quotes taken off
    if line.startswith("npm "):
        exact = f"Bash({line.replace(chr(39), '')})"
        assert answer(repo, line, [*TOOLS, exact], home=home)[0] == []
    assert answer(repo, "npm test --script-shell ./x.sh", TOOLS, home=home)[0] != []


def test_everyday_npm_lines_ask_nothing_more(tmp_path: Path) -> None:
    for line in (
        "npm test",
        "npm test -- --script-shell=x",  # the script's own words
        "npm_config_node_options=--max-old-space-size=4096 npm test",
        "npm test --node-options=--max-old-space-size=4096",
    ):
        assert answer(tmp_path, line, TOOLS)[0] == [], line


NPX = ["npx -c '{}'", "npx --call='{}'", "npm exec -c '{}'", "npx -p cowsay -c '{}'"]


@pytest.mark.skipif(shutil.which("npx") is None, reason="npx is not installed")
@pytest.mark.parametrize("form", NPX)
def test_npxs_call_is_read_as_a_shell_line(form: str, tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text('{"name": "k"}\n')
    if "cowsay" not in form:  # (no package to fetch here: read only)
        assert runs(form.format("touch ran-it"), tmp_path)
    code = 'python3 -c "import os; os.system(1)"'
    why = "runs code given to python3 -c: cannot be read"
    tools = [*TOOLS, "Bash(npx:*)", "Bash(npm exec:*)"]
    assert answer(tmp_path, form.format(code), tools)[0] == [f"matches {RULE}: {why}"]
    assert answer(tmp_path, form.format("eslint ."), tools)[0] == []


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_the_command_of_npm_exec_is_read(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text('{"name": "k"}\n')
    assert runs('npm exec -- python3 -c \'open("ran-it", "w")\'', tmp_path)
    tools = [*TOOLS, "Bash(npm exec:*)", "Bash(npm x:*)", "Bash(pnpm exec:*)", "Bash(bun x:*)"]
    why = f"matches {RULE}: runs code given to python3 -c: cannot be read"
    for line in (
        "npm exec -- python3 -c 'import os; os.system(1)'",
        "npm x python3 -c 'import os; os.system(1)'",
        "pnpm exec python3 -c 'import os; os.system(1)'",
        "bun x python3 -c 'import os; os.system(1)'",
    ):
        assert answer(tmp_path, line, tools)[0] == [why], line
    assert answer(tmp_path, "npm exec -- eslint .", tools)[0] == []
    # with no rule on it, the package's code asks as before
    assert answer(tmp_path, "npm exec -- eslint .", TOOLS)[0] == [
        f"matches {RULE}: runs the package script or code of npm exec: cannot be read"
    ]
