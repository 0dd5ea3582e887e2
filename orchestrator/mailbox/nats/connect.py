"""Reaching a NATS server with JetStream: the settings, the connection, the bucket.

Every failure to get there becomes one :class:`errors.QueueUnavailable` that says
what went wrong and what to do (start the server, enable JetStream, check the
credentials); nats-py's own exceptions never reach the user.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from orchestrator import errors

if TYPE_CHECKING:
    from orchestrator.roster.queue_setting import QueueSetting

_BUCKET_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class NatsConfig:
    """Where the queue lives and how to log in. Secrets are kept out of ``repr``."""

    servers: tuple[str, ...]
    namespace: str = "octy"
    """Bucket name: several teams may share one server, each under its own name."""
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    creds_file: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    replicas: int = 1
    """Copies of the bucket in a cluster (3 on a 3-node cluster survives a node)."""
    connect_timeout_s: float = 5.0
    request_timeout_s: float = 5.0
    """How long one JetStream request waits for its answer (then retried: faults.py)."""

    def __post_init__(self) -> None:
        if not self.servers:
            raise ValueError("at least one nats:// server is needed")
        if not _BUCKET_RE.match(self.namespace):
            raise ValueError(
                f"namespace {self.namespace!r} must be 1-64 letters, digits, '-' or '_'"
            )
        if self.replicas not in (1, 3, 5):
            raise ValueError(f"replicas must be 1, 3 or 5, not {self.replicas}")

    def __repr__(self) -> str:
        return f"NatsConfig(servers={self.display!r}, namespace={self.namespace!r})"

    @property
    def display(self) -> str:
        """The servers, without any user:password@ part, for messages and logs."""
        return ",".join(re.sub(r"//[^@/]*@", "//", s) for s in self.servers)

    @classmethod
    def from_setting(cls, setting: QueueSetting) -> NatsConfig:
        """The client settings for the roster's ``queue:``."""

        def text(path: object) -> str | None:
            return None if path is None else str(path)

        return cls(
            servers=setting.servers,
            namespace=setting.namespace,
            user=setting.user,
            password=setting.password,
            token=setting.token,
            creds_file=text(setting.creds),
            tls_ca=text(setting.tls_ca),
            tls_cert=text(setting.tls_cert),
            tls_key=text(setting.tls_key),
            replicas=setting.replicas,
        )

    def tls_context(self) -> ssl.SSLContext | None:
        if not (self.tls_ca or self.tls_cert):
            return None
        context = ssl.create_default_context(cafile=self.tls_ca)
        if self.tls_cert:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        return context


async def connect(
    config: NatsConfig, *, reconnected: Callable[[], Awaitable[None]] | None = None
) -> Client:
    """A connected client, or QueueUnavailable saying why not.

    Once connected the client reconnects forever (a node restart in a cluster is not
    the end), calling ``reconnected`` each time it is back; the first connection gets
    ``connect_timeout_s`` in all, so ``up`` with a wrong address or password says so
    instead of retrying silently."""
    seen: list[Exception] = []
    refused = asyncio.Event()

    async def remember(exc: Exception) -> None:  # reconnect chatter stays out of stderr
        seen.append(exc)
        if _is_refusal(exc):
            refused.set()  # a wrong password does not get better by retrying

    options: dict[str, Any] = {
        "servers": list(config.servers),
        "connect_timeout": min(2.0, config.connect_timeout_s),
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "error_cb": remember,
    }
    if reconnected is not None:
        options["reconnected_cb"] = reconnected
    if config.user is not None:
        options["user"], options["password"] = config.user, config.password
    if config.token is not None:
        options["token"] = config.token
    if config.creds_file is not None:
        options["user_credentials"] = config.creds_file
    tls = config.tls_context()
    if tls is not None:
        options["tls"] = tls
    client = Client()
    connecting = asyncio.ensure_future(client.connect(**options))
    refusal = asyncio.ensure_future(refused.wait())
    done, _ = await asyncio.wait(
        {connecting, refusal},
        timeout=config.connect_timeout_s,
        return_when=asyncio.FIRST_COMPLETED,
    )
    refusal.cancel()
    if connecting in done and connecting.exception() is None:
        return client
    if connecting not in done:
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await connecting
    elif (failure := connecting.exception()) is not None:
        seen.append(failure)  # type: ignore[arg-type]
    await client.close()
    if any(_is_refusal(e) for e in seen):
        raise errors.QueueUnavailable(
            config.display,
            "the server refused the login",
            "check the credentials (user/password, token or creds file) in agents.yaml",
        )
    reason = (str(seen[-1]) or type(seen[-1]).__name__) if seen else "timed out"
    raise errors.QueueUnavailable(
        config.display,
        f"no server answered ({reason})",
        "start one (`nats-server -js`) or fix `queue:` in agents.yaml",
    )


def _is_refusal(exc: BaseException) -> bool:
    return isinstance(exc, nats.errors.AuthorizationError) or "authoriz" in str(exc).lower()


@dataclass(frozen=True)
class Bucket:
    """The team's bucket as opened: the client's handle on it, how many copies the
    servers keep if it was there already (None: made now, with the roster's
    ``replicas``), and when its stream was made (a bucket lost and made again, by us or
    anyone, has another: core.NatsCore.check_store)."""

    kv: KeyValue
    copies: int | None
    made: object
    last_seq: int = 0  # the stream's last sequence as opened (check_store)


async def bucket_made(client: Client, config: NatsConfig) -> object:
    """When the bucket's stream was made (the server's ``created``); NotFoundError if
    there is no such stream."""
    js = client.jetstream(timeout=config.request_timeout_s)
    return (await js.stream_info(f"KV_{config.namespace}")).created


async def bucket_mark(client: Client, config: NatsConfig) -> tuple[object, int]:
    """When the bucket's stream was made, and its last sequence (which never goes down
    while the stream lives: a purge keeps it); NotFoundError if there is no such stream."""
    js = client.jetstream(timeout=config.request_timeout_s)
    info = await js.stream_info(f"KV_{config.namespace}")
    return info.created, int(info.state.last_seq or 0)


def is_stream_missing(exc: BaseException) -> bool:
    """The server's word that the bucket's stream does not exist (JetStream's 10059
    "stream not found"): a server restarted without its store, or the bucket removed.
    Not a timeout or a leader election (those are retried: faults.TRANSIENT)."""
    return isinstance(exc, nats.js.errors.NotFoundError) and exc.err_code == 10059


async def open_bucket(client: Client, config: NatsConfig) -> Bucket:
    """The team's key-value bucket, created on first use (file storage, one value kept
    per key: the queue's state, not its history). Read as nats-py's ``key_value`` reads
    it, in the same one request."""
    js = client.jetstream(timeout=config.request_timeout_s)
    stream = f"KV_{config.namespace}"
    try:
        info = await js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        pass
    except (
        nats.errors.NoRespondersError,
        nats.js.errors.ServiceUnavailableError,
        nats.errors.TimeoutError,
    ) as exc:
        raise _no_jetstream(config) from exc
    else:
        if (info.config.max_msgs_per_subject or 0) < 1:
            raise errors.QueueUnavailable(
                config.display,
                f"the stream {stream} is no key-value bucket",
                f"use another `namespace:`, or remove that stream (`nats stream rm {stream}`)",
            )
        kv = KeyValue(
            name=config.namespace,
            stream=stream,
            pre=f"$KV.{config.namespace}.",
            js=js,
            direct=bool(info.config.allow_direct),
        )
        return Bucket(kv, info.config.num_replicas, info.created, int(info.state.last_seq or 0))
    try:
        made = await js.create_key_value(
            KeyValueConfig(
                bucket=config.namespace,
                history=1,
                storage=StorageType.FILE,
                replicas=config.replicas,
                description="octy-orchestrate team queue",
            )
        )
        return Bucket(made, None, await bucket_made(client, config))
    except (
        nats.errors.NoRespondersError,
        nats.js.errors.ServiceUnavailableError,
        nats.errors.TimeoutError,
    ) as exc:
        raise _no_jetstream(config) from exc
    except nats.js.errors.APIError as exc:
        raise errors.QueueUnavailable(
            config.display, f"cannot create bucket '{config.namespace}': {exc.description}"
        ) from exc


def _no_jetstream(config: NatsConfig) -> errors.QueueUnavailable:
    return errors.QueueUnavailable(
        config.display,
        "JetStream is not enabled on the server",
        "start it with `nats-server -js` (or `jetstream {}` in its config)",
    )
