"""The display's web side (aiohttp): the pages, the audio files, and Server-Sent Events pushing updates.

Routes:
    GET /               the hall page (for the TV: Chromium in kiosk mode)
    GET /counter/{id}   one counter's page (a small screen above the counter)
    GET /events         Server-Sent Events: ``screen`` (the whole screen model, sent first on connect and on
                        every change), ``call`` (flash this call), ``announce`` (play this WAV now)
    GET /audio/{id}.wav a generated announcement (the last ``AUDIO_KEEP``), and /audio/chime.wav
    GET /healthz        JSON: broker connection, board received, pages connected
    GET /static/...     the page's CSS and JavaScript

The browser's EventSource reconnects by itself (we ask for a 1 s retry), so a restarted display service
or broker needs nothing from the person in front of the TV. aiohttp sets TCP_NODELAY on its connections.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from hallq import webstream
from hallq.sse import Hub, sse

log = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
AUDIO_KEEP: Final = 32
KEEPALIVE_S: Final = 15.0
CLIENT_BACKLOG: Final = 200




class AudioStore:
    """The last ``AUDIO_KEEP`` announcements' WAV files, by id."""

    def __init__(self) -> None:
        self._files: OrderedDict[str, bytes] = OrderedDict()

    def put(self, audio_id: str, wav: bytes) -> None:
        self._files[audio_id] = wav
        while len(self._files) > AUDIO_KEEP:
            self._files.popitem(last=False)

    def get(self, audio_id: str) -> bytes | None:
        return self._files.get(audio_id)


def make_app(*, hub: Hub, screen: Callable[[], dict[str, Any]], audio: AudioStore,
             health: Callable[[], dict[str, Any]]) -> web.Application:
    """The aiohttp application; ``screen()`` gives the current model, sent to each page when it connects."""

    async def hall_page(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def counter_page(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "counter.html", headers={"Cache-Control": "no-cache"})

    async def events(request: web.Request) -> web.StreamResponse:
        return await webstream.stream(request, hub, sse("screen", screen()), cache_control="no-cache",
                                      keepalive_s=KEEPALIVE_S)

    async def audio_file(request: web.Request) -> web.Response:
        data = audio.get(request.match_info["audio_id"])
        if data is None:
            raise web.HTTPNotFound(text="no such announcement (only the last few are kept)")
        return web.Response(body=data, content_type="audio/wav", headers={"Cache-Control": "max-age=3600"})

    async def healthz(_request: web.Request) -> web.Response:
        state = health()
        return web.json_response(state, status=200 if state.get("healthy") else 503)

    app = web.Application()
    app.router.add_get("/", hall_page)
    app.router.add_get("/counter/{counter}", counter_page)
    app.router.add_get("/events", events)
    app.router.add_get("/audio/{audio_id}.wav", audio_file)
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static/", STATIC_DIR)
    return app
