"""Every verb and option of `octy-orchestrate` explains itself (issue 9.6): help text on each
option, its default said where it has one, no raw docstring markup, and `--help` for every
verb through the real command."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runner import octy

from orchestrator.cli import build_parser

MARKUP = ("``", ":mod:", ":func:", ":class:", ":meth:", ":data:")


def parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, (*path, name))


def verbs() -> list[tuple[str, ...]]:
    return [path for path, _ in parsers(build_parser()) if path]


def test_every_option_has_help_that_states_its_default() -> None:
    """Each option and positional of each verb has help text; an option with a default
    (a number, a path, a choice) says it; flags say what happens without them."""
    missing: list[str] = []
    for path, parser in parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                continue
            where = f"{' '.join(path) or '(top)'} {'/'.join(action.option_strings) or action.dest}"
            text = action.help or ""
            if not text or text == argparse.SUPPRESS:
                missing.append(f"{where}: no help")
                continue
            optional = bool(action.option_strings)
            is_flag = action.nargs == 0
            has_default = action.default not in (None, False, argparse.SUPPRESS)
            if optional and (has_default or not is_flag) and "default" not in text:
                missing.append(f"{where}: help does not say the default: {text!r}")
    assert missing == [], "\n".join(missing)


@pytest.mark.parametrize("verb", verbs(), ids=" ".join)
def test_help_of_every_verb_through_the_real_command(verb: tuple[str, ...]) -> None:
    """`octy-orchestrate VERB --help` exits 0 with a usage line and no docstring markup."""
    done = octy(*verb, "--help", cwd=Path.cwd())
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: octy-orchestrate")
    for mark in MARKUP:
        assert mark not in done.stdout, (verb, mark)
    # argparse %-formats option help, never a parser's description: "%%" there is printed
    # as is (`ps --help` said "CPU%%").
    assert "%%" not in done.stdout, verb


def test_every_verb_says_what_it_does_at_the_top_of_its_help(tmp_path: Path) -> None:
    """Walking the README: `send --help`, `inbox --help`, `reply --help`, `queue ls --help`,
    `approve --help` and `workspaces diff --help` began with the usage and went straight to
    the options, where every other verb says what it does. Through the real command."""
    verbs = [
        ("send",),
        ("ask",),
        ("inbox",),
        ("reply",),
        ("queue",),
        ("queue", "ls"),
        ("queue", "show"),
        ("queue", "dead"),
        ("queue", "retry"),
        ("queue", "purge"),
        ("workspaces", "list"),
        ("workspaces", "diff"),
        ("workspaces", "merge"),
        ("workspaces", "remove"),
        ("approve",),
        ("deny",),
    ]
    for verb in verbs:
        done = octy(*verb, "--help", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        # usage (one or more lines), a blank line, then a sentence, not an argument list.
        after_usage = done.stdout.split("\n\n", 1)[1]
        first = after_usage.lstrip("\n").splitlines()[0]
        assert not first.endswith(":"), (verb, done.stdout)  # "positional arguments:"
        assert first[0].isupper(), (verb, first)
