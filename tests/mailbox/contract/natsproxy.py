"""A TCP proxy between a NATS client and a real server that can lose a publish's ack
for real: it forwards one whole publish to a chosen subject, then cuts the client's
connection before the server's answer can come back, and refuses the client's
reconnects (it stops listening) until released. The server stored the message; the client never
heard so, and tries again when it is back."""

from __future__ import annotations

import asyncio
import contextlib

from natsserver import free_port


class AckCutter:
    """Listens on a free loopback port and forwards to ``target_port``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._cut_subject: bytes | None = None
        self.cut = asyncio.Event()  # set once a publish was forwarded and its ack lost
        self._writers: set[asyncio.StreamWriter] = set()
        self._serving: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> AckCutter:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def aclose(self) -> None:
        """Stop listening, end every connection and wait for their handlers."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            await _close(writer)
        for task in list(self._serving):
            task.cancel()
        await asyncio.gather(*self._serving, return_exceptions=True)

    def cut_after_publish_to(self, subject_prefix: str) -> None:
        """The next publish to a subject starting with ``subject_prefix`` reaches the
        server whole, then the connection is cut and held down until :meth:`release`."""
        self._cut_subject = subject_prefix.encode()

    async def release(self) -> None:
        """Listen again: the client's next reconnect gets through."""
        if self._server is not None and not self._server.is_serving():
            await self.start()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        assert me is not None
        self._serving.add(me)
        self._writers.add(client_w)
        try:
            await self._forward(client_r, client_w)
        finally:
            await _close(client_w)
            self._writers.discard(client_w)
            self._serving.discard(me)

    async def _forward(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers.add(server_w)
        done = asyncio.Event()

        def cut() -> None:
            client_w.close()
            server_w.close()
            done.set()

        async def upstream() -> None:
            pending = b""  # what is not yet known to hold no whole publish to cut after
            while data := await client_r.read(65536):
                server_w.write(data)
                await server_w.drain()
                if self._cut_subject is None:
                    continue
                pending += data
                end = _end_of_publish(pending, self._cut_subject)
                if end is None:
                    if b"PUB " + self._cut_subject not in pending:  # (HPUB holds it too)
                        pending = pending[-4096:]  # longer than any frame's start line
                    continue
                self._cut_subject = None
                # Refused, not accepted and closed: nats-py leaves the writer of a
                # connection closed before its INFO unclosed (a ResourceWarning).
                assert self._server is not None
                self._server.close()
                # The server's answer must not get through: cut both sides now that
                # the whole frame has been written to the server's socket.
                cut()
                self.cut.set()
                return

        async def downstream() -> None:
            while data := await server_r.read(65536):
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        with contextlib.suppress(Exception):
            await asyncio.wait(
                [*tasks, asyncio.ensure_future(done.wait())], return_when="FIRST_COMPLETED"
            )
        for task in tasks:
            task.cancel()
        for writer in (client_w, server_w):
            await _close(writer)
            self._writers.discard(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def _end_of_publish(buffer: bytes, subject_prefix: bytes) -> int | None:
    """The end of the first whole ``PUB``/``HPUB`` frame to ``subject_prefix*`` in
    ``buffer``, or None if there is none yet. ``HPUB subj [reply] hdr_len total\\r\\n``
    then ``total`` bytes and ``\\r\\n``; ``PUB subj [reply] size\\r\\n`` likewise."""
    for verb in (b"HPUB ", b"PUB "):
        start = buffer.find(verb + subject_prefix)
        if start < 0:
            continue
        line_end = buffer.find(b"\r\n", start)
        if line_end < 0:
            return None
        size = int(buffer[start:line_end].split()[-1])
        end = line_end + 2 + size + 2
        return end if len(buffer) >= end else None
    return None
