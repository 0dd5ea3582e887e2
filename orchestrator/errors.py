"""One exception tree for the whole package. Imports nothing internal.

Errors are data: each carries the fields a caller needs, so nobody parses
messages. Errors that cross the queue travel as stable codes (``CODE``) and
are turned back into these classes by :func:`request_error_from_code`.
"""

from __future__ import annotations

from typing import ClassVar


class OrchestratorError(Exception):
    """Base of every error this package raises on purpose."""

    code: ClassVar[str] = "error"


# --- roster ---------------------------------------------------------------


class RosterError(OrchestratorError):
    """``agents.yaml`` is wrong: where, which key, what to do."""

    code = "roster_invalid"

    def __init__(self, path: str, line: int | None, key: str | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.key = key
        self.reason = reason
        where = path if line is None else f"{path}:{line}"
        what = f" key '{key}':" if key else ""
        super().__init__(f"{where}:{what} {reason}")


class RosterErrors(OrchestratorError):
    """Every problem found in one validation pass (the whole file is checked first)."""

    code = "roster_invalid"

    def __init__(self, errors: list[RosterError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


# --- input ----------------------------------------------------------------

TEN_YEARS_S = 10 * 365 * 86400.0  # the longest time in seconds anything accepts


class InvalidSeconds(OrchestratorError, ValueError):
    """A time given in seconds that is not a number, not finite, or out of its range
    (:func:`orchestrator.durations.finite_seconds`). ``what`` names it (an option, a
    setting, a tool's argument); ``value`` is the number checked, ``written`` what the
    user wrote when it differs (``"5m"`` for 300)."""

    code = "usage"

    def __init__(
        self, what: str, value: object, least: float, most: float, written: object = None
    ) -> None:
        self.what = what
        self.value = value
        self.least = least
        self.most = most
        allowed = f"a number of seconds from {_number(least)} to {_number(most)}"
        if most == TEN_YEARS_S:
            allowed += " (ten years)"
        number = _as_number(value)
        if number is None:
            reason = "is not a number of seconds"
        elif number > most and number != float("inf"):
            reason = "is longer than " + (
                "ten years" if most == TEN_YEARS_S else f"{_number(most)} seconds"
            )
        elif least == 0:
            reason = "must be a finite, non-negative time"
        else:
            reason = "is out of range"
        self.too_long = reason.startswith("is longer")
        shown = _shown(value if written is None else written)
        super().__init__(f"{what} {reason} (got {shown}); use {allowed}")


def _number(x: float) -> str:
    return f"{x:.0f}" if float(x).is_integer() else f"{x:g}"


def _as_number(value: object) -> float | int | None:
    """``value`` as a number to compare (an int as it is: 10**400 overflows a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    if isinstance(value, int | float):
        return value
    try:
        return float(value)
    except ValueError:
        return None


def _shown(value: object) -> str:
    """A value quoted in a message: a 400-digit number would bury the reason."""
    try:
        text = str(value)
    except ValueError:  # an int past Python's digit limit
        return "(a number too long to show)"
    return text if len(text) <= 40 else f"{text[:20]}…({len(text)} characters)"


# --- queue ----------------------------------------------------------------


class QueueError(OrchestratorError):
    """Base for queue problems."""

    code = "queue_error"


class QueueStalled(QueueError):
    """The queue cannot take a step now and may later: a NATS server out of reach
    (QueueUnavailable), a database file locked past the busy timeout or on a full disk
    (DatabaseStalled). Nothing of the step was written; a session waits these out
    (outage.py) instead of ending, which would drop the answer in hand."""

    code = "queue_stalled"


class DatabaseError(QueueError):
    """The database file cannot be used (corrupt, not SQLite, read-only, wrong version)."""

    code = "database_error"

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class DatabaseMissing(DatabaseError):
    """No queue database at the path, and the verb creates none (only `up` and `register`
    do): the team was never started here. "Not found" (exit 3), as `ps` says it."""

    code = "not_found"


class DatabaseReplaced(DatabaseError):
    """The file under the database's path is no longer the one this process opened
    (deleted, or another file moved over it): writing on would split the team in two."""

    code = "database_replaced"

    def __init__(self, path: str, opened: tuple[int, int], now: tuple[int, int] | None) -> None:
        self.opened = opened  # (st_dev, st_ino) when opened
        self.now = now  # the same for the file under the path now; None: no file there
        what = "was deleted" if now is None else "was replaced by another file"
        super().__init__(
            path,
            f"the database {what} while in use (opened inode {opened[1]}, now "
            f"{'none' if now is None else now[1]}); nothing more was written to either. "
            "Stop every process using the team (the supervisor stops by itself), move the "
            "-wal and -shm files beside the path aside (they belong to the old file and "
            "SQLite would apply them to the new one), then `up` again",
        )

    @staticmethod
    def found_in(exc: BaseException) -> DatabaseReplaced | None:
        """The DatabaseReplaced that ``exc`` is or holds (task groups wrap errors)."""
        if isinstance(exc, DatabaseReplaced):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                found = DatabaseReplaced.found_in(inner)
                if found is not None:
                    return found
        return None


class DatabaseStalled(DatabaseError, QueueStalled):
    """The database refused a write for now: another connection kept the write lock past
    the busy timeout, or the file system holding it is full. Nothing was written."""

    code = "database_stalled"


class RecordUnreadable(QueueError):
    """A record in a NATS team's bucket is not what this version writes (garbled by hand
    with `nats kv put`, by a script, by another program): read as nothing, never trusted."""

    code = "record_unreadable"

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(
            f"the record {key} in the team's bucket is unreadable ({reason}); it was not "
            "written by octy-orchestrate: look at it with `nats kv get`, and delete it "
            "(`nats kv del`) if nothing of it is needed"
        )


class QueueUnavailable(QueueStalled):
    """The NATS queue cannot be used: server unreachable, JetStream off, refused login."""

    code = "queue_unavailable"

    def __init__(self, servers: str, reason: str, hint: str = "") -> None:
        self.servers = servers
        self.reason = reason
        self.hint = hint
        super().__init__(f"queue {servers}: {reason}" + (f"; {hint}" if hint else ""))


class StoreLost(QueueUnavailable):
    """The NATS server answers, but the team's bucket is not there: the server restarted
    without its store (its JetStream folder wiped, a new disk), or the bucket was
    removed. Not "no such key": what was only in the bucket is gone for good. Still a
    QueueStalled: a running supervisor makes the bucket again within seconds, and a
    step tried again then finds it (empty)."""

    def __init__(self, servers: str, bucket: str, doing: str = "") -> None:
        self.bucket = bucket
        during = f" (during {doing})" if doing else ""
        super().__init__(
            servers,
            f"the team's bucket '{bucket}' is gone from the server{during}: it answers "
            "but has no such stream (restarted without its store, or the bucket was "
            "removed); what was only in it is lost",
            "a running supervisor makes it again, empty, within seconds (warning "
            "queue_store_lost); without one, any queue verb makes it (`octy-orchestrate "
            "ps`); send again what must still be done",
        )


class UnsafePath(OrchestratorError):
    """A file or folder the team would write is not safe to use: a symbolic link, not a
    regular file, or in a folder that other users can write (they could plant links)."""

    code = "unsafe_path"

    def __init__(self, path: str, what: str, reason: str) -> None:
        self.path = path
        self.what = what  # "queue database", "logs folder"...
        self.reason = reason
        super().__init__(f"{what} {path}: {reason}")


class InvalidBody(QueueError):
    """A body that is not JSON-serialisable or is over the size limit."""

    code = "invalid_body"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class RecipientUnknown(QueueError):
    """A message addressed to a name nobody registered."""

    code = "recipient_unknown"

    def __init__(self, recipient: str, known: list[str]) -> None:
        self.recipient = recipient
        self.known = known
        names = ", ".join(known) or "(none registered)"
        super().__init__(f"unknown recipient {recipient!r}; known agents: {names}")


class ReservedRecipient(QueueError):
    """A message addressed to the supervisor's row: it is in the registry, but messages
    to it are the control protocol, which the verbs speak, not the agents' tools."""

    code = "reserved_name"

    def __init__(self, recipient: str, participants: list[str]) -> None:
        self.recipient = recipient
        self.participants = participants
        super().__init__(
            f"'{recipient}' is not a participant (it runs the team and reads no messages); "
            "message the user or an agent: " + (", ".join(participants) or "(none registered)")
        )


class NotAllowed(QueueError):
    """The sender may not message this recipient (``can_message``)."""

    code = "not_allowed"

    def __init__(self, sender: str, recipient: str, allowed: list[str]) -> None:
        self.sender = sender
        self.recipient = recipient
        self.allowed = allowed
        super().__init__(
            f"'{sender}' may not message '{recipient}'; it may message: "
            + (", ".join(allowed) or "(nobody)")
        )


class InvalidName(QueueError):
    """A participant name the registry refuses: reserved, or not ``[a-z0-9][a-z0-9_-]*``
    of at most 63 characters."""

    code = "invalid_name"

    def __init__(self, name: str, reason: str, action: str = "register") -> None:
        self.name = name
        self.reason = reason
        self.action = action  # what was refused: register, or unregister a reserved row
        super().__init__(f"cannot {action} {name!r}: {reason}")


class ParticipantSupervised(QueueError):
    """``unregister`` of an agent that a running supervisor manages from its roster."""

    code = "supervised"

    def __init__(self, name: str, supervisor_pid: int) -> None:
        self.name = name
        self.supervisor_pid = supervisor_pid
        super().__init__(
            f"'{name}' is an agent of the running team (supervisor pid {supervisor_pid}): "
            "remove it from agents.yaml (the team then removes it), or stop the team first"
        )


class MessageNotFound(QueueError):
    """No message under that id. ``store_lost``: the read found the team's whole NATS
    bucket gone (the message went with it), not just this key. ``answered``: an error
    answer to this request was stored before it went (``fail_request`` on NATS)."""

    code = "not_found"

    def __init__(
        self,
        message_id: str,
        *,
        store_lost: StoreLost | None = None,
        answered: bool = False,
        only_removed: bool = False,
    ) -> None:
        self.message_id = message_id
        self.only_removed = only_removed  # SQLite: no server whose store could go
        self.store_lost = store_lost
        self.answered = answered
        lost = "" if store_lost is None else f": {store_lost.reason}; {store_lost.hint}"
        super().__init__(f"no message with id {message_id!r}{lost}")

    @property
    def how(self) -> str:
        """How it went, as far as this client can tell."""
        if self.store_lost is not None:
            return "lost with the NATS server's store"
        if self.only_removed:
            return "removed (`queue purge`)"
        return "removed, or lost with the NATS server's store"


class NotARequest(QueueError):
    """A reply aimed at something that is not a request."""

    code = "not_a_request"

    def __init__(self, message_id: str, kind: str) -> None:
        self.message_id = message_id
        self.kind = kind
        super().__init__(
            f"message {message_id!r} is a {kind}, not a request: only requests take a reply"
        )


class AlreadyReplied(QueueError):
    code = "already_replied"

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(f"request '{request_id}' already has a reply")


class MessageIdTaken(QueueError):
    """A caller chose the id of a new message (to send it again safely after an error
    that left it unknown whether it was stored) and another message holds that id."""

    code = "message_id_taken"

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        super().__init__(
            f"message id '{message_id}' is taken by another message; "
            "draw a fresh id for a new message"
        )


class LeaseLost(QueueError):
    """Ack/nack by a consumer whose lease expired or was never held."""

    code = "lease_lost"

    def __init__(self, message_id: str, owner: str) -> None:
        self.message_id = message_id
        self.owner = owner
        super().__init__(
            f"message '{message_id}' is not leased by '{owner}' (lease expired or never held)"
        )


class RequestFailed(QueueError):
    """A request ended without a normal reply. Subclasses carry the stable code."""

    code = "request_failed"

    def __init__(self, request_id: str, detail: str = "") -> None:
        self.request_id = request_id
        self.detail = detail
        if not request_id:  # refused before it was sent: there is no request to name
            super().__init__(detail or f"the request was not sent ({self.code})")
            return
        super().__init__(
            f"request '{request_id}' failed ({self.code})" + (f": {detail}" if detail else "")
        )


class RequestTimeout(RequestFailed):
    """We stopped waiting; the request may still be answered later."""

    code = "timeout"

    def __init__(self, request_id: str, waited_s: float, detail: str = "") -> None:
        self.waited_s = waited_s
        super().__init__(request_id, detail or f"no reply within {waited_s:g}s")


class WaitStopped(QueueError):
    """A wait for a reply ended because its caller's ``still`` said so (the supervisor
    that would answer is gone); the request itself stays queued."""

    code = "wait_stopped"

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(f"stopped waiting for the reply to {request_id}")


class RecipientFailed(RequestFailed):
    """The recipient was marked failed by the supervisor before it answered."""

    code = "recipient_failed"


class RecipientStopped(RequestFailed):
    """An ``ask`` refused because its recipient is stopped (not running, by request): it
    would wait, the asker's turn with it, until someone starts the recipient."""

    code = "recipient_stopped"


class RecipientRemoved(RequestFailed):
    """The recipient left the team (removed from agents.yaml) before it answered."""

    code = "recipient_removed"


class RecipientNotAdded(RequestFailed):
    """The recipient was being added by a reload of agents.yaml that failed before it
    started it: it is not in the team (the next reload of the file adds it again)."""

    code = "recipient_not_added"


class RequestExpired(RequestFailed):
    """The request passed its TTL or its max attempts and went to the dead letters."""

    code = "expired"


class WouldDeadlock(RequestFailed):
    """An ask that would close a wait cycle (A waits on B, B asks A)."""

    code = "would_deadlock"


class BudgetExceeded(RequestFailed):
    """The recipient is paused: its budget (or the team's) is spent for this window.

    ``detail`` carries the figures (spent, limit, when the window rolls over)."""

    code = "budget_exceeded"


class ModelUnavailable(RequestFailed):
    """The recipient's model cannot be reached or refuses it (connection refused, DNS,
    HTTP 401/403/404). The request is in the dead letters; `queue retry` sends it again."""

    code = "model_unavailable"


class TurnFailed(RequestFailed):
    """The recipient's turn failed in a way that would only repeat (an HTTP 400 from the
    model, max_turns, a budget), or kept failing until its attempts were used up."""

    code = "turn_failed"


# --- sessions and supervision -----------------------------------------------


class SupervisorError(OrchestratorError):
    code = "supervisor_error"


class IllegalTransition(SupervisorError):
    code = "illegal_transition"

    def __init__(self, agent: str, current: str, target: str) -> None:
        self.agent = agent
        self.current = current
        self.target = target
        super().__init__(f"agent '{agent}': no transition {current} -> {target}")


class AgentNotFound(SupervisorError):
    """An operator command named an agent the running team does not have."""

    code = "not_found"

    def __init__(self, agent: str, known: list[str]) -> None:
        self.agent = agent
        self.known = known
        super().__init__(f"no agent '{agent}' in the team; agents: {', '.join(known) or '(none)'}")


class OperationRefused(SupervisorError):
    """An operator command that does not apply now (the team is stopping...): answered
    with the reason, never applied half-way."""

    code = "refused"

    def __init__(self, command: str, agent: str, reason: str) -> None:
        self.command = command
        self.agent = agent
        self.reason = reason
        super().__init__(f"cannot {command} '{agent}': {reason}")


class SupervisorNotRunning(SupervisorError):
    code = "no_supervisor"

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        super().__init__(
            f"no supervisor is running for {db_path}; start one with `octy-orchestrate up`"
        )


class SupervisorGone(SupervisorError):
    """An operator command named a supervisor of the team that is not running any more
    (killed, its machine lost, stopped): another supervisor answers for it."""

    code = "supervisor_gone"

    def __init__(self, host: str, pid: int, reason: str, hint: str) -> None:
        self.host = host
        self.pid = pid
        self.reason = reason
        self.hint = hint
        super().__init__(f"the supervisor on {host} (pid {pid}) is gone: {reason}; {hint}")


class ModelUnreachable(SupervisorError):
    """`up` found the agents' model endpoint unreachable, or refusing their key."""

    code = "model_unavailable"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "the model cannot be used, so the team would not work:\n"
            + "\n".join(f"  {p}" for p in problems)
            + "\nFix ANTHROPIC_BASE_URL or the API key, or start anyway with --no-model-check."
        )


class SdkUnavailable(SupervisorError):
    """The claude-agent-sdk (or a module of ours that uses it) could not be imported, so no
    agent can start. `up` imports it in the background (issue 14.5): this is how that
    import's failure is told, instead of a traceback."""

    code = "sdk_unavailable"

    def __init__(self, module: str, reason: str) -> None:
        self.module = module
        self.reason = reason
        super().__init__(
            f"cannot start agents: importing {module} failed: {reason}\n"
            "The claude-agent-sdk install is broken or incomplete; reinstall it in this "
            "environment (pip install --force-reinstall claude-agent-sdk, or the README's "
            "set-up command)."
        )


class SupervisorAlreadyRunning(SupervisorError):
    code = "already_running"

    def __init__(self, db_path: str, pid: int) -> None:
        self.db_path = db_path
        self.pid = pid
        super().__init__(f"a supervisor (pid {pid}) is already running for {db_path}")


class AgentHeldElsewhere(SupervisorError):
    """Another supervisor runs this agent (a NATS team whose agents are spread over
    several supervisors, one lease per agent)."""

    code = "agent_held_elsewhere"

    def __init__(self, agent: str, holder: str, host: str, pid: int, expires_in_s: float) -> None:
        self.agent = agent
        self.holder = holder
        self.host = host
        self.pid = pid
        self.expires_in_s = expires_in_s
        super().__init__(
            f"agent '{agent}' already runs under the supervisor on {host} (pid {pid}); "
            f"stop it there (`stop {agent}` or `down`) to run it here, or, if that "
            f"supervisor died, wait: its lease runs out {expires_in_s:.0f}s from now"
        )


# --- scripted model ---------------------------------------------------------


class ScriptError(OrchestratorError):
    """A scripted-model script is wrong: which file, which rule, which key, what to do."""

    code = "script_invalid"

    def __init__(self, source: str, rule: str | None, key: str | None, reason: str) -> None:
        self.source = source
        self.rule = rule
        self.key = key
        self.reason = reason
        where = source + (f" {rule}" if rule else "") + (f" key '{key}'" if key else "")
        super().__init__(f"{where}: {reason}")


_BY_CODE: dict[str, type[RequestFailed]] = {
    cls.code: cls
    for cls in (
        RequestFailed,
        RecipientFailed,
        RecipientNotAdded,
        RecipientRemoved,
        RecipientStopped,
        RequestExpired,
        WouldDeadlock,
        ModelUnavailable,
        TurnFailed,
    )
}
_BY_CODE[BudgetExceeded.code] = BudgetExceeded


def request_error_from_code(code: str, request_id: str, detail: str = "") -> RequestFailed:
    """Turn an error code read from the queue back into its exception."""
    if code == RequestTimeout.code:
        return RequestTimeout(request_id, 0.0, detail)
    return _BY_CODE.get(code, RequestFailed)(request_id, detail)


# --- workspaces and approvals (issue 11) -----------------------------------------


class GitError(OrchestratorError):
    """A git command failed: which one, its exit code, and what git said."""

    code = "git_error"

    def __init__(self, args: list[str], exit_code: int | None, detail: str) -> None:
        self.args_ = args
        self.exit_code = exit_code
        self.detail = detail
        super().__init__(f"git {' '.join(args)} failed: {detail or f'exit {exit_code}'}")


class WorkspaceError(OrchestratorError):
    """A workspace operation was refused: which agent, why, what to do."""

    code = "workspace_error"

    def __init__(self, agent: str, reason: str) -> None:
        self.agent = agent
        self.reason = reason
        super().__init__(f"{agent}: {reason}")


class MergeRefused(WorkspaceError):
    """``workspaces merge`` did nothing because of these paths of ``branch``."""

    def __init__(self, agent: str, branch: str, base: str, paths: list[str], reason: str) -> None:
        self.branch = branch
        self.base = base
        self.paths = paths
        super().__init__(agent, reason)


class MergeConflict(MergeRefused):
    """``workspaces merge`` would conflict: nothing was changed; these paths conflict."""

    code = "merge_conflict"

    def __init__(self, agent: str, branch: str, base: str, paths: list[str]) -> None:
        super().__init__(
            agent,
            branch,
            base,
            paths,
            f"merging {branch} into {base} conflicts in: {', '.join(paths) or '(unknown)'}; "
            "nothing was changed. Resolve it in the agent's worktree (merge or rebase "
            f"{base} there), then merge again",
        )


class TeamFilesInMerge(MergeRefused):
    """``workspaces merge`` refused: the branch changes files that define the team (the
    roster, a prompt file) or settings its agents' CLIs load; nothing was changed."""

    code = "team_files_in_merge"

    def __init__(self, agent: str, branch: str, base: str, paths: list[str]) -> None:
        super().__init__(
            agent,
            branch,
            base,
            paths,
            f"{branch} changes files that define the team or its agents' settings: "
            f"{', '.join(paths)}; merged into {base}, they would reach the running team "
            "(hot reload applies a changed roster or prompt). Nothing was changed.\nRead them "
            f"first (octy-orchestrate workspaces diff {agent}), then merge with "
            "--allow-team-files if you want them",
        )


class UnsafeRepository(MergeRefused):
    """``workspaces merge``/``diff`` refused: the repository holds what makes git show
    or merge other objects than the real ones (replace refs, grafts, attributes octy did
    not write). A worktree agent's shell can write them; nothing was changed."""

    code = "repository_unsafe"

    def __init__(self, agent: str, branch: str, base: str, paths: list[str]) -> None:
        super().__init__(
            agent,
            branch,
            base,
            paths,
            f"the repository holds {', '.join(paths)}; nothing was changed.\n"
            "Replace refs and grafts make git show other commits than the real ones, and "
            "info/attributes can hide a diff or change a merge; a worktree agent's shell "
            "can write them.\nCheck who made them (git for-each-ref refs/replace; read the "
            "files); delete them (git replace -d ID; rm FILE), then try again",
        )


class UntrackedInTheWay(MergeRefused):
    """``workspaces merge`` refused: it would write over files that the base's checkout
    holds untracked or ignored (git overwrites ignored files silently); nothing changed."""

    code = "untracked_in_the_way"

    def __init__(self, agent: str, branch: str, base: str, paths: list[str], checkout: str) -> None:
        self.checkout = checkout
        super().__init__(
            agent,
            branch,
            base,
            paths,
            f"merging {branch} into {base} would write over files git does not track "
            f"(untracked or ignored) in {checkout}: {', '.join(paths)}; nothing was "
            f"changed.\nMove them aside (or commit them to {base} first), or take them out "
            "of the agent's branch, then merge again",
        )


class OffBranch(MergeRefused):
    """``workspaces merge`` refused: the agent's worktree is not on its branch and holds
    commits the branch lacks, which a merge of the branch would leave behind."""

    code = "worktree_off_branch"

    def __init__(
        self, agent: str, branch: str, base: str, on: str, *, commits: int, ref: str
    ) -> None:
        self.on = on
        self.commits = commits
        super().__init__(
            agent,
            branch,
            base,
            [],
            f"its worktree is on {on}, not on {branch}, with {commits} commit(s) {branch} "
            f"lacks; merging {branch} would leave them out; nothing was changed.\nIn the "
            f"worktree: git switch {branch} && git merge {ref} (or cherry-pick them), then "
            "merge again",
        )


class NothingToMerge(WorkspaceError):
    """``workspaces merge``: the agent's branch has no commit its base lacks."""

    code = "nothing_to_merge"

    def __init__(self, agent: str, branch: str, base: str) -> None:
        self.branch = branch
        self.base = base
        super().__init__(agent, f"nothing to merge: {branch} has no commit that {base} lacks")


class CommitsOnNoBranch(WorkspaceError):
    """``workspaces remove`` refused: the worktree's HEAD holds commits no branch has,
    which removing the worktree would make unreachable (gone at the next gc)."""

    code = "commits_on_no_branch"

    def __init__(self, agent: str, path: str, head: str, commits: int) -> None:
        self.commits = commits
        super().__init__(
            agent,
            f"the worktree's HEAD ({head[:12]}) has {commits} commit(s) on no branch; "
            "removing the worktree would lose them.\nKeep them first (git -C "
            f"{path} branch NAME HEAD, or merge them into the agent's branch), or pass "
            "--force to remove it anyway",
        )


class AgentRunning(WorkspaceError):
    """``workspaces remove`` refused: the team's supervisor runs the agent, whose next
    write would make the folder again outside git."""

    code = "agent_running"

    def __init__(self, agent: str, pid: int, state: str | None) -> None:
        self.pid = pid
        self.state = state
        super().__init__(
            agent,
            f"the team's supervisor (pid {pid}) runs this agent ({state or 'state unknown'}); "
            f"its worktree is in use. Stop the agent first (octy-orchestrate stop {agent}), "
            "then remove it",
        )


class UncommittedWork(WorkspaceError):
    """``workspaces remove`` refused: the worktree holds work that is not committed."""

    code = "uncommitted_work"

    def __init__(self, agent: str, paths: list[str]) -> None:
        self.paths = paths
        shown = ", ".join(paths[:10]) + (" …" if len(paths) > 10 else "")
        super().__init__(
            agent,
            f"the worktree has uncommitted changes ({shown}); commit them, or pass --force "
            "to remove it anyway (they are lost)",
        )


class ApprovalNotFound(OrchestratorError):
    """``approve``/``deny`` named an id that is not a pending approval."""

    code = "not_found"

    def __init__(self, request_id: str, reason: str) -> None:
        self.request_id = request_id
        super().__init__(reason)
