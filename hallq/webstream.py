"""The Server-Sent Events stream of a role's web page (the display, the manager), for aiohttp.

Only the roles with web pages import this (aiohttp comes with their extras); the hub itself is ``hallq.sse``.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from hallq.sse import Hub

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0  # a comment line this often keeps proxies and the browser from closing a quiet stream


async def stream(request: web.Request, hub: Hub, first: bytes, *, cache_control: str = "no-store",
                 keepalive_s: float = KEEPALIVE_S) -> web.StreamResponse:
    """Follow ``hub`` for one page: ``first`` (the whole view now) at once, then every event, until the page goes
    away or the hub ends the stream (``None``: stopping, or the page fell behind and reconnects)."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": cache_control, "X-Accel-Buffering": "no"})
    await response.prepare(request)
    client = hub.subscribe()
    try:
        await response.write(b"retry: 1000\n\n" + first)
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that arrives as the
            # awaited item does, and the handler would then never end.
            try:
                async with asyncio.timeout(keepalive_s):
                    payload = await client.get()
            except TimeoutError:
                payload = b": keepalive\n\n"
            if payload is None:
                break
            await response.write(payload)
    except ConnectionResetError:
        log.debug("page went away")
    finally:
        hub.unsubscribe(client)
    return response
