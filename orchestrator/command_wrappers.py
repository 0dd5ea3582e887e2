"""Wrappers that run the rest of their words as a command, for :mod:`orchestrator.bash_commands`.

``time``, ``env`` (and ``env -S LINE``), ``nice``, ``sudo``, ``timeout DURATION``,
``xargs``, ``setsid``, ``chroot NEWROOT``… are read past, their options skipped (a value
given as the next word too); ``sh -c BODY`` gives its body, read as a line.
"""

from __future__ import annotations

from typing import Final

from orchestrator import shell_words

UNKNOWN: Final = shell_words.UNKNOWN

# Wrappers that run the rest of their words as a command, with their options that take
# a value as the next word (a value attached, ``-n5``, is one word and simply skipped).
WRAPPERS: Final[dict[str, frozenset[str]]] = {
    "time": frozenset({"-o", "--output", "-f", "--format"}),  # GNU time; bash's takes -p
    "busybox": frozenset(),
    "nohup": frozenset(),
    "builtin": frozenset(),
    "command": frozenset(),
    "exec": frozenset({"-a"}),
    "env": frozenset({"-u", "--unset", "-C", "--chdir", "-S", "--split-string"}),
    "nice": frozenset({"-n", "--adjustment"}),
    "ionice": frozenset({"-c", "-n", "-p", "-P", "-u"}),
    "stdbuf": frozenset({"-i", "-o", "-e"}),
    "timeout": frozenset({"-s", "--signal", "-k", "--kill-after"}),
    "sudo": frozenset(
        {"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T", "-R", "--user", "--group"}
        | {"--close-from", "--chdir", "--host", "--prompt", "--role", "--type", "--chroot"}
        | {"--other-user", "--command-timeout"}
    ),
    "doas": frozenset({"-u", "-C"}),
    "xargs": frozenset(
        {"-I", "-L", "-n", "-P", "-s", "-d", "-E", "-a", "--delimiter", "--max-args"}
        | {"--max-lines", "--max-procs", "--max-chars", "--arg-file", "--process-slot-var"}
    ),
    "setsid": frozenset(),
    "chroot": frozenset({"--userspec", "--groups"}),  # then NEWROOT, then the command
    "unshare": frozenset(
        {"-S", "--setuid", "-G", "--setgid", "-R", "--root", "-w", "--wd", "--map-user"}
        | {"--map-group", "--map-users", "--map-groups", "--propagation", "--setgroups"}
        | {"--monotonic", "--boottime"}
    ),
    "systemd-run": frozenset(
        {"-u", "--unit", "-p", "--property", "--description", "--slice", "-E", "--setenv"}
        | {"-H", "--host", "-M", "--machine", "--uid", "--gid", "--nice", "--service-type"}
        | {"--working-directory", "--path-property", "--socket-property", "--timer-property"}
        | {"--on-active", "--on-boot", "--on-startup", "--on-unit-active", "--on-calendar"}
        | {"--on-unit-inactive", "--expand-environment"}
    ),
}
OPERAND: Final = frozenset({"timeout", "chroot"})  # a word before the command: DURATION, NEWROOT
# Options that run the command in another folder (its short and long name).
CHDIR: Final = {
    "env": ("-C", "--chdir"),
    "sudo": ("-D", "--chdir"),
    "unshare": ("-w", "--wd"),
    "systemd-run": ("--working-directory", "--working-directory"),
}
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh"})
_SHELL_VALUED = frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file"})


def after_options(words: list[str], valued: frozenset[str]) -> list[str]:
    """``words`` from the first one that is not an option (or after ``--``)."""
    i = 0
    while i < len(words) and words[i].startswith("-") and words[i] != "-":
        if words[i] == "--":
            return words[i + 1 :]
        i += 2 if words[i] in valued or _value_next(words[i], valued) else 1
    return words[i:]


def _value_next(word: str, valued: frozenset[str]) -> bool:
    """Whether a cluster of short options (``sudo -iu USER``) ends with one taking the
    next word as its value (``-n5``: the value is attached)."""
    if word.startswith("--"):
        return False
    for j, c in enumerate(word[1:], 1):
        if f"-{c}" in valued:
            return j == len(word) - 1
    return False


def xargs(args: list[str]) -> list[str]:
    """The command ``xargs ARGS`` runs: with the words it reads from its input at the end
    (``echo push | xargs git`` pushes), or in place of ``-I R``'s R, unknown."""
    replace = None
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        word = args[i]
        if word == "--":
            i += 1
            break
        if word == "-I" and i + 1 < len(args):
            replace = args[i + 1]
        elif word.startswith("--replace=") or word in ("-i", "--replace"):
            replace = word.partition("=")[2] or "{}"
        elif word.startswith(("-I", "-i")):
            replace = word[2:]
        i += 2 if word in WRAPPERS["xargs"] else 1
    words = args[i:]
    if not words:
        return []  # it runs echo
    if not replace:
        return [*words, UNKNOWN + "…"]
    return [w.replace(replace, UNKNOWN + replace) for w in words]


def split_string(words: list[str]) -> str | None:
    """The command line of ``env -S 'LINE' [ARG…]`` (``--split-string=LINE``), else None."""
    i = 0
    while i < len(words) and words[i].startswith("-") and words[i] not in ("-", "--"):
        word = words[i]
        if word in ("-S", "--split-string"):
            return " ".join(words[i + 1 :])
        if word.startswith("--split-string="):
            return " ".join([word.split("=", 1)[1], *words[i + 1 :]])
        if not word.startswith("--") and "S" in word:
            return " ".join([word[word.index("S") + 1 :], *words[i + 1 :]])
        i += 2 if word in WRAPPERS["env"] else 1
    return None


def shell_body(words: list[str]) -> str | None:
    """The command string of ``sh -c BODY`` (``bash -lc``, ``bash -o errexit -c``), else
    None: the first word after the options, when one of them is ``-c``."""
    command = False
    i = 0
    while i < len(words) and len(words[i]) > 1 and words[i][0] in "-+":
        word = words[i]
        i += 2 if word in _SHELL_VALUED else 1
        if word == "--":
            break
        if word[0] == "-" and not word.startswith("--") and "c" in word[1:]:
            command = True
    if not command:
        return None
    return words[i] if i < len(words) else ""


def elsewhere(name: str, words: list[str]) -> bool:
    """Whether wrapper ``name`` runs its command in a folder known only at run time: the
    home of ``sudo -i``'s login shell, the new root of ``chroot`` (but ``--skip-chdir``)."""
    if name not in ("sudo", "chroot"):
        return False
    options = words[: len(words) - len(after_options(words, WRAPPERS[name]))]
    if name == "chroot":
        return "--skip-chdir" not in options
    return "--login" in options or any(
        w[:1] == "-" and w[1:2] != "-" and "i" in w[1:].split("u", 1)[0] for w in options
    )
