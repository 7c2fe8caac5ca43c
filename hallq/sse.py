"""Server-Sent Events for the roles' web pages (the hall display, the manager's office): one hub per service
fans each event out to every page that follows it.

Pure asyncio, no web framework: the page's handler ``subscribe``s, writes what its queue gives it, and stops at
``None`` (the service is stopping, or the page fell behind and must reconnect for a fresh view).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

log = logging.getLogger(__name__)


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event; JSON data on a single line (JSON never contains a raw newline)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {text}\n\n".encode()


class Hub:
    """Fans events out to every connected page. ``publish`` never blocks: a page that cannot keep up
    (``backlog`` events behind) is disconnected, and reconnects by itself with a fresh view."""

    def __init__(self, *, backlog: int) -> None:
        self._backlog = backlog
        self._clients: set[asyncio.Queue[bytes | None]] = set()

    @property
    def clients(self) -> int:
        return len(self._clients)

    def subscribe(self) -> asyncio.Queue[bytes | None]:
        client: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=self._backlog)
        self._clients.add(client)
        return client

    def unsubscribe(self, client: asyncio.Queue[bytes | None]) -> None:
        self._clients.discard(client)

    def publish(self, event: str, data: Any) -> None:
        payload = sse(event, data)
        for client in list(self._clients):
            try:
                client.put_nowait(payload)
            except asyncio.QueueFull:
                log.warning("page too slow to follow; disconnecting it (it reconnects by itself)")
                self._clients.discard(client)
                client.get_nowait()
                client.put_nowait(None)

    def close(self) -> None:
        for client in list(self._clients):
            while not client.empty():
                client.get_nowait()
            client.put_nowait(None)
        self._clients.clear()
