"""Cuttable links: one loopback TCP relay per simulated device, between the device and the broker.

Wiring: ``CutRelays(broker_port, names)`` listens on one free 127.0.0.1 port per name; a device connects to
its own port and every byte is relayed to the broker and back. ``cut(name, down_s)`` aborts that device's
connections at once (an RST, as a pulled cable or a rebooting switch would look to both ends) and refuses
its reconnects for ``down_s``; paho then reconnects by itself. The broker keeps seeing the device's own
client id, so its session, will and queued messages behave as with a real network fault.

One asyncio loop on one background thread runs every relay; ``cut`` may be called from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Iterable

log = logging.getLogger(__name__)


class CutRelays:
    """Per-device TCP relays to ``127.0.0.1:broker_port`` that can be cut on demand."""

    def __init__(self, broker_port: int, names: Iterable[str]) -> None:
        self.broker_port = broker_port
        self.names = tuple(names)
        self.ports: dict[str, int] = {}
        self._down_until: dict[str, float] = {}
        self._conns: dict[str, set[asyncio.StreamWriter]] = {name: set() for name in self.names}
        self._servers: list[asyncio.Server] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-relays", daemon=True)
        self.cuts = 0

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)

    async def _listen(self) -> None:
        for name in self.names:
            server = await asyncio.start_server(functools.partial(self._relay, name), host="127.0.0.1", port=0)
            self._servers.append(server)
            self.ports[name] = int(server.sockets[0].getsockname()[1])

    async def _relay(self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._down_until.get(name, 0.0):
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.broker_port)
        except OSError:
            writer.transport.abort()  # the broker is down: the device sees a failed connect and backs off
            return
        pair = {writer, up_writer}
        self._conns[name].update(pair)
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            self._conns[name].difference_update(pair)
            for w in pair:
                w.transport.abort()

    def cut(self, name: str, down_s: float = 0.0) -> None:
        """Abort ``name``'s connections now and refuse its reconnects for ``down_s`` seconds."""
        self.cuts += 1
        self._loop.call_soon_threadsafe(self._cut, name, down_s)

    def _cut(self, name: str, down_s: float) -> None:
        self._down_until[name] = time.monotonic() + down_s
        for writer in list(self._conns[name]):
            writer.transport.abort()

    def stop(self) -> None:
        async def close() -> None:
            for server in self._servers:
                server.close()
            for conns in self._conns.values():
                for writer in list(conns):
                    writer.transport.abort()

        with contextlib.suppress(RuntimeError, TimeoutError):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()
