"""Wrappers that run the rest of their words as a command, for :mod:`orchestrator.bash_commands`.

``time``, ``env`` (and ``env -S LINE``), ``nice``, ``sudo``, ``timeout DURATION``,
``xargs``, ``setsid``, ``chroot NEWROOT``… are read past, their options skipped (a value
given as the next word too); ``sh -c BODY`` gives its body, read as a line.
"""

from __future__ import annotations

import itertools
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
    # Programs that run a command given as words, after their options (measured: each ran
    # `python3 -c` code unasked under `Bash(PROG:*)` while read by its name).
    "taskset": frozenset(),  # then MASK (or with -c a CPU list), then the command
    "chrt": frozenset({"-T", "--sched-runtime", "-P", "--sched-period", "-D", "--sched-deadline"}),
    "prlimit": frozenset({"-p", "--pid", "-o", "--output"}),
    "nsenter": frozenset({"-t", "--target", "-S", "--setuid", "-G", "--setgid", "-W"}),
    "strace": frozenset(
        {"-a", "-b", "-e", "-E", "-I", "-o", "-O", "-p", "-P", "-s", "-S", "-u", "-X", "-U"}
        | {"--trace", "--signal", "--status", "--abbrev", "--raw", "--read", "--write"}
        | {"--fault", "--inject", "--kvm", "--output", "--columns", "--summary-columns"}
        | {"--string-limit", "--attach", "--trace-path", "--user", "--env", "--summary-sort-by"}
    ),
    "ltrace": frozenset({"-a", "-A", "-D", "-e", "-F", "-l", "-n", "-o", "-p", "-s", "-u", "-w"})
    | frozenset({"-x", "--output", "--library", "--config", "--align", "--indent"}),
    "valgrind": frozenset(),  # its options are --name=value
    "fakeroot": frozenset({"-l", "--lib", "--faked", "-s", "-i", "-b"}),
    "firejail": frozenset(),  # its options are --name or --name=value
    "xvfb-run": frozenset(
        {"-e", "-f", "-n", "-p", "-s", "-w", "--error-file", "--auth-file", "--server-num"}
        | {"--xauth-protocol", "--server-args", "--wait"}
    ),
    "dbus-run-session": frozenset(),  # --config-file=FILE
    "ssh-agent": frozenset({"-a", "-E", "-O", "-P", "-t"}),
}
OPERAND: Final = frozenset({"timeout", "chroot", "taskset", "chrt"})  # DURATION, NEWROOT, MASK…
# Options that run the command in another folder (its short and long name).
CHDIR: Final = {
    "env": ("-C", "--chdir"),
    "sudo": ("-D", "--chdir"),
    "unshare": ("-w", "--wd"),
    "systemd-run": ("--working-directory", "--working-directory"),
}
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh"})
_SHELL_VALUED = frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file"})


# Options setting a variable for the command, `NAME=VALUE` (measured: `strace -o /dev/null
# -E BASH_ENV=./x bash -c true` ran x; systemd-run's and firejail's from their manuals).
SETENV: Final = {
    "strace": frozenset({"-E", "--env"}),
    "systemd-run": frozenset({"-E", "--setenv"}),
    "firejail": frozenset({"--env"}),
}


def set_variables(name: str, args: list[str]) -> list[str]:
    """The ``NAME=VALUE`` settings the wrapper ``name``'s options give its command."""
    options = SETENV.get(name)
    if options is None:
        return []
    found = []
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-" and args[i] != "--":
        word, after = args[i], args[i + 1] if i + 1 < len(args) else ""
        option, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        short = word[:2] if not word.startswith("--") else ""
        if option in options and eq:
            found.append(value)  # --env=NAME=VALUE
        elif word in options:
            found.append(after)  # -E NAME=VALUE, --setenv NAME=VALUE
        elif short in options and len(word) > 2:
            found.append(word[2:])  # -ENAME=VALUE
        i += 2 if word in WRAPPERS[name] or _value_next(word, WRAPPERS[name]) else 1
    return [f for f in found if "=" in f]


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


def elsewhere(name: str, words: list[str]) -> str:
    """How wrapper ``name`` runs its command in a folder known only at run time ("" if it
    does not): the home of ``sudo -i``'s login shell, the new root of ``chroot`` (but
    ``--skip-chdir``) or ``unshare -R``; ``nsenter`` entering a mount namespace or a root
    (``-m``, ``-a``, ``-r``: measured, ``nsenter -t PID -m pwd`` printed ``/``) or taking
    the folder of its target (``-w``, ``--wd`` with no folder)."""
    if name not in ("sudo", "chroot", "nsenter", "unshare"):
        return ""
    options = words[: len(words) - len(after_options(words, WRAPPERS[name]))]
    shown = " ".join([name, *words[:1]])
    if name == "chroot":
        return "" if "--skip-chdir" in options else shown
    if name == "unshare":
        rooted = any(w in ("-R", "--root") or w.startswith("--root=") for w in options)
        return shown if rooted or any(_short(name, w, "R") for w in options) else ""
    if name == "nsenter":
        for word in options:
            option = word.partition("=")[0]
            if option in ("--mount", "--all", "--root") or (
                option in ("--wd", "--wdns") and "=" not in word
            ):
                return f"nsenter {word}"
            if _short(name, word, "mar") or word == "-w":
                return f"nsenter {word}"
        return ""
    return (
        shown
        if "--login" in options
        or any(w[:1] == "-" and w[1:2] != "-" and "i" in w[1:].split("u", 1)[0] for w in options)
        else ""
    )


def new_root(name: str, words: list[str]) -> str:
    """How wrapper ``name`` runs its command under another root ("" if it does not):
    ``chroot NEWROOT`` (``--skip-chdir`` too), ``unshare -R``, ``nsenter`` entering a mount
    namespace or a root. Its HOME is then a folder of that root (measured: `chroot R gdb
    -batch` ran `R/$HOME/.gdbinit`'s shell command)."""
    if name not in ("chroot", "unshare", "nsenter"):
        return ""
    if name == "chroot":
        new = after_options(words, WRAPPERS[name])[:1]
        return "" if new and new[0].strip("/") == "" else " ".join([name, *new])  # `/`: same
    shown = elsewhere(name, words)
    working = shown.startswith(("nsenter -w", "nsenter --wd"))  # its folder only
    return shown if name == "unshare" or not working else ""


def _short(name: str, word: str, letters: str) -> bool:
    """Whether a cluster of nsenter's or unshare's short options holds one of ``letters``
    as an option (the letters after one taking an attached value are that value)."""
    if word[:1] != "-" or word[1:2] == "-":
        return False
    for c in word[1:]:
        if c in letters:
            return True
        if c in OPTIONAL.get(name, "") or f"-{c}" in WRAPPERS[name]:
            return False
    return False


def nsenter_folders(words: list[str]) -> list[str]:
    """The working folders nsenter's options give its command: ``-wDIR``, ``--wd=DIR``
    (measured: ``nsenter -w/tmp/d pwd`` printed ``/tmp/d``), ``-W DIR``, ``--wdns=DIR``."""
    options = words[: len(words) - len(after_options(words, WRAPPERS["nsenter"]))]
    found = []
    for word, after in itertools.pairwise([*options, ""]):  # none: no pair (zip raised)
        option, eq, value = word.partition("=")
        if option in ("--wd", "--wdns") and eq:
            found.append(value)
        elif word[:1] == "-" and word[1:2] != "-":
            for j, c in enumerate(word[1:], 1):
                if c in "wW":
                    value = word[j + 1 :] or (after if c == "W" else "")
                    found += [value] if value else []
                    break
                if c in OPTIONAL["nsenter"] or f"-{c}" in WRAPPERS["nsenter"]:
                    break
    return found


# The options each wrapper takes that take no value as the next word (with WRAPPERS, all
# it knows): an option neither names may take the next word as its value, and then the
# command is not where it seems (`sudo --new-option X CMD`): the line asks (unknown()).
# `--name=value` never takes the next word. OPTIONAL: short options whose value, if any,
# is attached (`-n1024`, `-m/path`): the rest of the word.
HELP: Final = frozenset({"-h", "--help", "-V", "--version"})  # options that only inform
FLAGS: Final[dict[str, frozenset[str]]] = {
    "time": frozenset({"-p", "--portability", "-a", "--append", "-v", "--verbose", "-q"})
    | frozenset({"--quiet", "--help", "-V", "--version"}),
    "busybox": frozenset({"--list", "--list-full", "--help"}),
    "nohup": frozenset({"--help", "--version"}),
    "builtin": frozenset(),
    "command": frozenset({"-p", "-v", "-V"}),
    "exec": frozenset({"-c", "-l"}),
    "env": frozenset({"-i", "--ignore-environment", "-0", "--null", "-v", "--debug"})
    | frozenset({"--default-signal", "--ignore-signal", "--block-signal", "--help"})
    | frozenset({"--list-signal-handling", "--version"}),
    "nice": frozenset({"--help", "--version"}),
    "ionice": frozenset({"-t", "--ignore", "--class", "--classdata", "--pid", "--pgid"})
    | frozenset({"--uid"})
    | HELP,
    "stdbuf": frozenset({"--input", "--output", "--error", "--help", "--version"}),
    "timeout": frozenset({"--preserve-status", "-p", "--foreground", "-f", "-v", "--verbose"})
    | frozenset({"--help", "--version"}),
    "sudo": frozenset("-" + c for c in "ABbEHiKknPSsVvl")
    | frozenset({"--askpass", "--bell", "--background", "--preserve-env", "--set-home"})
    | frozenset({"--login", "--remove-timestamp", "--reset-timestamp", "--list"})
    | frozenset({"--non-interactive", "--preserve-groups", "--stdin", "--shell"})
    | frozenset({"--version", "--validate", "--help"}),
    "doas": frozenset({"-n", "-s", "-L"}),
    "xargs": frozenset({"-0", "--null", "-r", "--no-run-if-empty", "-t", "--verbose", "-p"})
    | frozenset({"--interactive", "-x", "--exit", "-o", "--open-tty", "--replace", "--eof"})
    | frozenset({"--help", "--version", "--show-limits"}),
    "setsid": frozenset({"-c", "--ctty", "-f", "--fork", "-w", "--wait"}) | HELP,
    "chroot": frozenset({"--skip-chdir", "--help", "--version"}),
    "unshare": frozenset("-" + c for c in "muinpUCTfrchV")
    | frozenset({"--mount", "--uts", "--ipc", "--net", "--pid", "--user", "--cgroup", "--time"})
    | frozenset({"--fork", "--map-root-user", "--map-current-user", "--kill-child"})
    | frozenset({"--mount-proc", "--keep-caps", "--map-auto", "--help", "--version"}),
    "systemd-run": frozenset({"--user", "--system", "--scope", "-r", "--remain-after-exit"})
    | frozenset({"--send-sighup", "-t", "--pty", "-P", "--pipe", "-G", "--collect", "-q"})
    | frozenset({"--quiet", "--wait", "--no-block", "--no-ask-password", "-S", "--shell"})
    | frozenset({"--same-dir", "-d", "--on-clock-change", "--on-timezone-change"})
    | frozenset({"--help", "--version", "--no-pager", "-v", "--verbose"}),
    "taskset": frozenset({"-a", "--all-tasks", "-c", "--cpu-list", "-p", "--pid"}) | HELP,
    "chrt": frozenset("-" + c for c in "abdefiomprRv")
    | frozenset({"--all-tasks", "--batch", "--deadline", "--ext", "--fifo", "--idle"})
    | frozenset({"--other", "--rr", "--reset-on-fork", "--max", "--pid", "--verbose"})
    | HELP,
    "prlimit": frozenset({"--noheadings", "--raw", "--verbose"}) | HELP,
    "nsenter": frozenset({"-a", "--all", "-F", "--no-fork", "--preserve-credentials", "-Z"})
    | frozenset({"--follow-context", "-e", "--env", "-c", "--join-cgroup", "--mount", "--uts"})
    | frozenset({"--ipc", "--net", "--pid", "--user", "--cgroup", "--time", "--root", "--wd"})
    | frozenset({"--wdns"})
    | HELP,
    "strace": frozenset("-" + c for c in "cCdDfFhiknqrtTvVwxyYzZ")
    | frozenset({"--follow-forks", "--output-separately", "--summary-only", "--summary"})
    | frozenset({"--syscall-number", "--seccomp-bpf", "--no-abbrev", "--quiet", "--verbose"})
    | frozenset({"--timestamps", "--relative-timestamps", "--syscall-times", "--decode-fds"})
    | frozenset({"--stack-trace", "--successful-only", "--failed-only", "--debug"})
    | frozenset({"--daemonize", "--instruction-pointer", "--help", "--version"}),
    "ltrace": frozenset("-" + c for c in "bcCfhiLrStTV")
    | frozenset({"--demangle", "--help", "--version"}),
    "valgrind": frozenset({"-q", "--quiet", "-v", "--verbose", "-d", "--help-debug"})
    | frozenset({"--help-dyn-options"})
    | HELP,
    "fakeroot": frozenset({"-u", "--unknown-is-real", "-v", "--version", "-h", "--help"}),
    "firejail": frozenset({"--noprofile", "--quiet", "--private", "--noroot", "--seccomp"})
    | frozenset({"--nonewprivs", "--nogroups", "--nosound", "--novideo", "--no3d", "--nodvd"})
    | frozenset({"--notv", "--nou2f", "--private-dev", "--private-tmp", "--caps", "--x11"})
    | frozenset({"--ipc-namespace", "--machine-id", "--disable-mnt", "--debug", "--help"})
    | frozenset({"--version", "--deterministic-shutdown", "--allusers", "--writable-var"}),
    "xvfb-run": frozenset({"-a", "--auto-servernum", "-d", "--auto-display", "-l"})
    | frozenset({"--listen-tcp", "-h", "--help"}),
    "dbus-run-session": frozenset({"--help", "--version"}),
    "ssh-agent": frozenset({"-c", "-s", "-D", "-d", "-k", "-T"}),
}
OPTIONAL: Final[dict[str, str]] = {  # the letters taking an attached value only
    "xargs": "iel",
    "prlimit": "cdefilmnqrstuvxy",
    "nsenter": "muinpUCTrw",
    "unshare": "muinpUCT",
    "sudo": "h",
}


def unknown(name: str, words: list[str]) -> str:
    """The first option before wrapper ``name``'s command that it does not know ("" if
    none): its value may be the next word, which would then be no command."""
    valued = WRAPPERS[name]
    known = FLAGS.get(name, frozenset())
    i = 0
    while i < len(words) and words[i].startswith("-") and words[i] != "-":
        word = words[i]
        if word == "--":
            return ""
        i += 1
        if word.startswith("--"):
            option, eq, _ = word.partition("=")
            if eq:
                continue  # the value is attached: nothing else taken
            if option in valued:
                i += 1
            elif option not in known:
                return option
            continue
        if name == "nice" and word[1:].isdigit():  # nice -10 CMD
            continue
        for j, c in enumerate(word[1:], 1):
            if f"-{c}" in valued:
                i += j == len(word) - 1
                break
            if c in OPTIONAL.get(name, ""):
                break
            if f"-{c}" not in known:
                return word if len(word) == 2 else f"-{c} (in {word})"
    return ""


def home_of(name: str, words: list[str]) -> str | None:
    """The HOME the command of wrapper or runner ``name`` (its words ``words``) reads its
    config in, when it is not the caller's: ``~USER`` (``sudo``, ``doas``: the target's;
    ``su``, ``runuser`` but ``-m``/``-p``/``--preserve-environment``: measured, ``su -c``
    and ``runuser -u root --`` printed root's HOME), ``""`` for a HOME unset (``env -i``,
    ``env -u HOME``: tmux then reads the caller's passwd entry's home, measured with
    strace), None when it keeps the caller's. ``#UID`` users are left to the shell."""
    options = words[: len(words) - len(after_options(words, WRAPPERS.get(name, frozenset())))]
    if name == "env":
        cleared = any(
            w in ("-i", "--ignore-environment", "-", "--unset=HOME", "-uHOME")
            or (w[:1] == "-" and w[1:2] != "-" and "i" in w[1:].split("u", 1)[0])
            for w in options
        )
        unset = any(a == "HOME" and w in ("-u", "--unset") for w, a in itertools.pairwise(options))
        return "" if cleared or unset else None
    if name in ("sudo", "doas"):
        users = [
            a
            for w, a in itertools.pairwise(options)
            if w == "--user" or (w[:1] == "-" and w[1:2] != "-" and w.endswith("u"))
        ]
        users += [w.partition("=")[2] for w in options if w.startswith("--user=")]
        users += [
            w[w.index("u") + 1 :]
            for w in options
            if w[:1] == "-" and w[1:2] != "-" and "u" in w[1:-1]
        ]
        user = next((u for u in reversed(users) if u), "root")
        return "~" + user if not user.startswith("#") else "~" + shell_words.UNKNOWN + user
    if name in ("su", "runuser"):
        return _su_home(name, words)
    return None


_SU_VALUED: Final = frozenset(
    {"-c", "--command", "--session-command", "-g", "--group", "-G", "--supp-group"}
    | {"-s", "--shell", "-w", "--whitelist-environment", "-u", "--user"}
)


def _su_home(name: str, words: list[str]) -> str | None:
    """``su [-] [USER] -c …``, ``runuser -u USER CMD``: the target's HOME, but with
    ``-m``/``-p``/``--preserve-environment`` (a login, ``-``/``-l``, resets it anyway)."""
    user, keep, login = "", False, False
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            break
        option = word.partition("=")[0]
        if option in _SU_VALUED:
            value = word.partition("=")[2] if "=" in word else (words[i] if i < len(words) else "")
            i += 0 if "=" in word else 1
            if option in ("-u", "--user"):
                user = value
            continue
        if word in ("-", "-l", "--login"):
            login = True
        elif word == "--preserve-environment":
            keep = True
        elif word[:1] == "-" and word[1:2] != "-":
            letters = word[1:]
            keep = keep or any(c in "mp" for c in letters.split("c", 1)[0])
            login = login or "l" in letters.split("c", 1)[0]
            if any(f"-{c}" in _SU_VALUED for c in letters[-1:]) and letters[-1] in "csgGwu":
                taken = words[i] if i < len(words) else ""
                i += 1
                if letters[-1] == "u":
                    user = taken
        elif not word.startswith("-"):
            user = user or word
            if name == "runuser":  # its command begins
                break
    if keep and not login:
        return None
    return "~" + (user or "root")
