"""The ticket's status page on the citizen's phone (aiohttp): the page behind the ticket's QR code, its status as
JSON and as Server-Sent Events, and the visit's rating.

Routes (no login: the authority is the unguessable token in the path, ``manager.phones.normal_token``):

    GET  /t/{token}             the page (manager/static/phone.html, .css, .js); an unknown token or one of
                                another day: a friendly page, 404
    GET  /t/{token}/status      JSON: the ticket's status now (``PhoneModel.status``); 404 ``{"found": false}``
    GET  /t/{token}/events      Server-Sent Events: ``status`` at once, then each change of this ticket's status
                                (only when it differs), and a ``ping`` event every ``HEARTBEAT_S`` (a page that
                                hears nothing for a minute knows its stream died); 503 beyond
                                ``max_connections`` (a new page of a ticket at ``max_per_ticket`` ends its oldest)
    POST /t/{token}/rating      JSON ``{"rating", "reasons", "comment"}`` → the manager's ``rate_ticket``; answers
                                ``{"ok": true}`` or ``{"ok": false, "error": {"code", "label", "label_vi",
                                "label_en", "message"}}``
    GET  /t/static/phone.css, /t/static/phone.js    the page's own files

Only a completed reading of the ledger may say that a token is not of today: while the service has not read the
ledger yet (it just started), or when the fresh reading a lookup waits for takes too long, every route answers
503 with ``Retry-After`` (``NOT_READY_RETRY_S``), which the page takes as "try again soon", never as final.

``PhonePages.install(app)`` adds them to the manager's application (``make_app``), in front of its login:
``manager.auth``'s middleware asks every POST for a session, so an outer middleware hands the phone routes'
requests straight to their handlers. ``PhonePages.guest_app()`` is an application with these routes alone, for
the plain-HTTP listener on a hall's guest Wi-Fi (``[phones] guest_listen``): nothing of the office is served there.

A token that today's ledger does not know is looked for once more after a fresh reading of the ledger (a ticket
printed a moment ago), which the service runs at most every few seconds whatever the number of requests
(``fresh_ledger``). Tokens are never logged whole (``token=5c0e…``). The rating POST is guarded in its own way:
JSON only (a form of another site cannot send it without asking), the same host when the browser names its origin,
and at most ``RATINGS_PER_TOKEN`` tries a minute per token, so that no page can flood the controller.
"""

from __future__ import annotations

import asyncio
import enum
import html
import json
import logging
import socket
import sys
import time
import unicodedata
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from aiohttp import web

from hall_controller.engine.spec import HallSpec
from hallq import wire
from hallq.labels import error_label
from hallq.limits import has_control
from hallq.wire import _no_surrogates
from manager.phones import PhoneModel, normal_token

log = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
ASSETS: Final = {"phone.css": "text/css", "phone.js": "text/javascript"}
HEARTBEAT_S: Final = 25.0  # a ping this often keeps proxies and phones' networks from closing a quiet stream
# An event, not an SSE comment: a comment never reaches the page's script, which could then not tell a quiet
# stream from a dead one.
PING_EVENT: Final = b"event: ping\ndata: {}\n\n"
GONE_CHECK_S: Final = 5.0  # how often a quiet stream looks whether its page is still there
RETRY_MS: Final = 2000  # how soon a page's EventSource tries again after a drop
NOT_READY_RETRY_S: Final = 5  # Retry-After while the ledger has not been read (a start) or a lookup timed out
BUSY_RETRY_S: Final = 30  # Retry-After beyond [phones] max_connections
LOOKUP_TIMEOUT_S: Final = 5.0  # an unknown token waits at most this long for the fresh reading of the ledger
RATINGS_PER_TOKEN: Final = 5  # rating tries a minute for one token
RATING_WINDOW_S: Final = 60.0
FULL_LOG_EVERY_S: Final = 60.0
DEAD_PEER_S: Final = 60  # a stream's connection whose peer stopped answering ends within about this long
# TCP_USER_TIMEOUT is Linux's option 18; Python names it only where the system has it.
_TCP_USER_TIMEOUT: Final = getattr(socket, "TCP_USER_TIMEOUT", 18 if sys.platform.startswith("linux") else None)
_STREAM_SOCKET_OPTIONS: Final = (
    (socket.SOL_SOCKET, "SO_KEEPALIVE", 1),
    (socket.IPPROTO_TCP, "TCP_KEEPIDLE", DEAD_PEER_S // 2),  # probes only after a silence: the heartbeat is data
    (socket.IPPROTO_TCP, "TCP_KEEPINTVL", 10),
    (socket.IPPROTO_TCP, "TCP_KEEPCNT", 3),
    (socket.IPPROTO_TCP, "TCP_USER_TIMEOUT", DEAD_PEER_S * 1000),  # milliseconds
)
DEFAULT_MAX_CONNECTIONS: Final = 2000
DEFAULT_MAX_PER_TICKET: Final = 6
PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
}
JSON_HEADERS: Final = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                       "Referrer-Policy": "no-referrer"}
# Refusals the manager makes itself, in the page's two languages (the controller's come from hallq.labels).
OWN_WORDS: Final = {
    "timeout": ("Hệ thống chưa trả lời, vui lòng thử lại sau ít phút", "The system did not answer; try again in a "
                                                                        "few minutes"),
    "broker_unavailable": ("Hệ thống đang tạm gián đoạn, vui lòng thử lại sau ít phút",
                           "The system is briefly unavailable; try again in a few minutes"),
    "bad_request": ("Đánh giá chưa hợp lệ, vui lòng chọn lại", "The rating could not be read; choose again"),
    "rate_limited": ("Bạn gửi quá nhanh, vui lòng chờ một phút", "Too many tries; wait a minute"),
    "unknown_ticket": ("Không tìm thấy số này trong ngày hôm nay", "This ticket is not of today"),
    "starting": ("Hệ thống đang khởi động, vui lòng thử lại sau ít giây", "The system is starting; try again in a "
                                                                        "few seconds"),
}


class Outcome(Protocol):
    """What an action became (``manager.web.ActionOutcome``)."""

    @property
    def ok(self) -> bool: ...
    @property
    def code(self) -> str | None: ...
    @property
    def message(self) -> str: ...


Act = Callable[[wire.ManagerCommand], Awaitable[Outcome]]


class SocketLike(Protocol):
    """What ``tune_stream_socket`` needs of a socket (asyncio hands out a ``TransportSocket``)."""

    def setsockopt(self, level: int, option: int, value: int, /) -> None: ...


class Lookup(enum.Enum):
    """A token that was not found: ``NOT_FOUND`` after a completed reading of the ledger (final: 404), or
    ``NOT_READY`` when no reading can say yet (503, try again)."""

    NOT_FOUND = "not_found"
    NOT_READY = "not_ready"


def token_hint(token: str) -> str:
    """What a log line may say of a token: its first four digits."""
    return token[:4] + "…"


# --- the rating's form: pure ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RatingForm:
    """A rating as the page sent it, checked: a level, reasons from the hall's list and a short comment, the
    last two only after a low rating (``wire.LOW_RATINGS``)."""

    rating: wire.RatingLevel
    reasons: tuple[str, ...] = ()
    comment: str | None = None


class BadRating(ValueError):
    """The page's rating cannot be passed on (400 ``bad_request``); the message says why."""


def read_rating(body: object, spec: HallSpec) -> RatingForm:
    """``body`` (the POST's JSON) as a ``RatingForm``; ``BadRating`` naming the problem. The comment is NFC
    (phones may type Vietnamese decomposed), its line breaks and tabs become spaces, and it is stripped; a lone
    surrogate (JSON's ``"\\ud800"`` decodes to one, and no UTF-8 carries it) becomes U+FFFD, as the wire does."""
    if not isinstance(body, dict):
        raise BadRating("the body must be a JSON object")
    rating = body.get("rating")
    if rating not in wire.RATING_LEVELS:
        raise BadRating(f"rating must be one of {', '.join(wire.RATING_LEVELS)}")
    reasons = body.get("reasons") or []
    if not isinstance(reasons, list) or len(reasons) > wire.MAX_RATING_REASONS or not all(
            isinstance(r, str) and r in spec.ratings.reason_by_id for r in reasons):
        raise BadRating(f"reasons must be at most {wire.MAX_RATING_REASONS} of the hall's reasons")
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise BadRating("comment must be text")
    text = " ".join(unicodedata.normalize("NFC", _no_surrogates(comment or "")).split()) or None
    if text is not None and (len(text) > wire.MAX_COMMENT_LEN or has_control(text)):
        raise BadRating(f"comment must be at most {wire.MAX_COMMENT_LEN} characters")
    if (reasons or text) and rating not in wire.LOW_RATINGS:
        raise BadRating("reasons and a comment go only with a rating of neutral or lower")
    return RatingForm(rating=rating, reasons=tuple(dict.fromkeys(reasons)), comment=text)


class TryLimiter:
    """At most ``per_window`` tries in any ``window_s`` per key. Pure: the caller passes ``now`` (monotonic s);
    memory stays bounded (a key is forgotten once its tries are older than the window)."""

    def __init__(self, *, per_window: int, window_s: float) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self._tries: dict[str, deque[float]] = {}
        self._next_sweep = float("-inf")

    def allow(self, key: str, *, now: float) -> bool:
        """Count a try for ``key`` if it is within the limit; False (and not counted) otherwise."""
        if now >= self._next_sweep:
            self._next_sweep = now + self.window_s
            for stale in [k for k, tries in self._tries.items() if now - tries[-1] >= self.window_s]:
                del self._tries[stale]
        tries = self._tries.setdefault(key, deque())
        while tries and now - tries[0] >= self.window_s:
            tries.popleft()
        if len(tries) >= self.per_window:
            return False
        tries.append(now)
        return True


# --- the streams -----------------------------------------------------------------------------------------------


class PhoneStreams:
    """Every page that follows a ticket, by token, within bounds: ``max_connections`` in all and
    ``max_per_ticket`` for one token. ``render(token)`` gives the ``status`` event a page of ``token`` shows now.

    Beyond ``max_connections`` a new page is refused. A new page of a ticket that has ``max_per_ticket`` already
    ends that ticket's oldest stream instead: the oldest is most likely a dead one (a phone that slept or changed
    network leaves a half-open connection that may take minutes to notice), and a citizen must never be locked out
    of their own ticket by them. A page whose stream was ended this way opens it again by itself if it is alive.

    Each page's queue holds one event at most: a status is whole, so a page that has not taken the last one yet
    gets the newer one instead (a slow phone is never cut off, and never shown an old status after a new one).
    ``None`` in a queue ends that page's stream (the service stops, or a newer page replaced it)."""

    def __init__(self, render: Callable[[str], bytes], *, max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 max_per_ticket: int = DEFAULT_MAX_PER_TICKET) -> None:
        self.render = render
        self.max_connections = max_connections
        self.max_per_ticket = max_per_ticket
        # Each token's pages, oldest first (a dict as an ordered set).
        self._followers: dict[str, dict[asyncio.Queue[bytes | None], None]] = {}
        self._last: dict[str, bytes] = {}
        self._count = 0
        self._closed = False

    @property
    def connections(self) -> int:
        return self._count

    @property
    def tickets(self) -> int:
        return len(self._followers)

    def follows(self, token: str) -> bool:
        """Whether a page follows ``token`` now."""
        return token in self._followers

    def subscribe(self, token: str) -> asyncio.Queue[bytes | None] | str:
        """A queue for one more page of ``token``, its first event (the status now) already in it, the oldest
        page of ``token`` ended if it had ``max_per_ticket`` already; or why not (``"connections"``: the
        service's bound, ``"stopping"``)."""
        if self._closed:
            return "stopping"
        pages = self._followers.get(token)
        at_ticket_bound = pages is not None and len(pages) >= self.max_per_ticket
        if self._count >= self.max_connections and not at_ticket_bound:
            return "connections"
        while pages and len(pages) >= self.max_per_ticket:
            oldest = next(iter(pages))
            self.unsubscribe(token, oldest)  # it no longer counts; its handler returns at its next look
            _end_queue(oldest)
            log.debug("status page token=%s: its oldest stream ended for a new one", token_hint(token))
        self._refresh_one(token)  # the pages already there see the same status as the new one
        payload = self._last.get(token)
        if payload is None:
            payload = self._last[token] = self.render(token)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1)
        queue.put_nowait(payload)
        self._followers.setdefault(token, {})[queue] = None
        self._count += 1
        return queue

    def unsubscribe(self, token: str, queue: asyncio.Queue[bytes | None]) -> None:
        pages = self._followers.get(token)
        if pages is None or queue not in pages:
            return
        del pages[queue]
        self._count -= 1
        if not pages:
            del self._followers[token]
            self._last.pop(token, None)


    def refresh(self) -> int:
        """Render every followed ticket's status once and push it to its pages where it changed; how many tickets
        changed."""
        return sum(self._refresh_one(token) for token in list(self._followers))

    def _refresh_one(self, token: str) -> bool:
        pages = self._followers.get(token)
        if not pages:
            return False
        payload = self.render(token)
        if payload == self._last.get(token):
            return False
        self._last[token] = payload
        for queue in pages:
            if queue.full():
                queue.get_nowait()  # not taken yet: the newer status replaces it
            queue.put_nowait(payload)
        return True

    def close(self) -> None:
        """End every stream (the service stops); later subscriptions are refused."""
        self._closed = True
        for pages in self._followers.values():
            for queue in pages:
                _end_queue(queue)


def _end_queue(queue: asyncio.Queue[bytes | None]) -> None:
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)


def tune_stream_socket(sock: SocketLike | None) -> bool:
    """Make a stream's TCP connection notice a dead peer within about ``DEAD_PEER_S``: keepalive probes, and
    ``TCP_USER_TIMEOUT`` (data unacknowledged that long ends the connection; the heartbeat is such data), instead
    of the kernel's default of a quarter of an hour. Options this system lacks are skipped; whether all were set.
    ``sock`` is the connection's socket (``transport.get_extra_info("socket")``; None, e.g. for a Unix socket)."""
    if sock is None:
        return False
    done = True
    for level, name, value in _STREAM_SOCKET_OPTIONS:
        option = getattr(socket, name, None) if name != "TCP_USER_TIMEOUT" else _TCP_USER_TIMEOUT
        if option is None:
            done = False
            continue
        try:
            sock.setsockopt(level, option, value)
        except OSError as exc:  # not a TCP socket, or a kernel without the option
            log.debug("stream socket option %s not set: %s", name, exc)
            done = False
    return done


def status_event(status: dict[str, Any] | None) -> bytes:
    """The ``status`` event of a page (``{"found": false}`` for a token not of today)."""
    text = json.dumps(status if status is not None else {"found": False}, ensure_ascii=False,
                      separators=(",", ":"))
    return f"event: status\ndata: {text}\n\n".encode()


# --- the routes -------------------------------------------------------------------------------------------------


class PhonePages:
    """The phone routes of one manager service.

    ``model`` is the service's ``PhoneModel``; ``now()`` the hall's wall clock; ``act(command)`` sends a
    ``ManagerCommand`` and waits for its outcome (``ManagerService.act``); ``fresh_ledger()`` returns once a
    reading of the ledger that began after the call has been folded in (the service paces them);
    ``changed()`` tells the service the model moved (the streams are refreshed); ``clock()`` is monotonic seconds
    (the rating tries' window, the heartbeat); a quiet stream looks every ``gone_check_s`` whether its page left; an
    unknown token waits at most ``lookup_timeout_s`` for the fresh reading."""

    def __init__(self, *, spec: HallSpec, model: PhoneModel, now: Callable[[], datetime], act: Act,
                 fresh_ledger: Callable[[], Awaitable[None]], changed: Callable[[], None] = lambda: None,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS, max_per_ticket: int = DEFAULT_MAX_PER_TICKET,
                 clock: Callable[[], float] = time.monotonic, gone_check_s: float = GONE_CHECK_S,
                 lookup_timeout_s: float = LOOKUP_TIMEOUT_S) -> None:
        self.spec = spec
        self.model = model
        self.now = now
        self.act = act
        self.fresh_ledger = fresh_ledger
        self.changed = changed
        self.clock = clock
        self.gone_check_s = gone_check_s
        self.lookup_timeout_s = lookup_timeout_s
        self.streams = PhoneStreams(self.render, max_connections=max_connections, max_per_ticket=max_per_ticket)
        self.limiter = TryLimiter(per_window=RATINGS_PER_TOKEN, window_s=RATING_WINDOW_S)
        self._rating_now: set[str] = set()
        self._full_logged_at = float("-inf")
        self._resources: set[web.AbstractResource] = set()

    def render(self, token: str) -> bytes:
        return status_event(self.model.status(token, self.now()))

    # --- wiring ----------------------------------------------------------------------------------------------

    def install(self, app: web.Application) -> None:
        """Add the phone routes to ``app``, ahead of any login its middlewares ask for."""
        self._add_routes(app)
        resources = self._resources

        @web.middleware
        async def public(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) \
                -> web.StreamResponse:
            # Outermost: a phone route's request goes straight to its handler, past the office's login.
            route = request.match_info.route
            if route.resource is not None and route.resource in resources:
                return await request.match_info.handler(request)
            return await handler(request)

        app.middlewares.insert(0, public)

    def guest_app(self) -> web.Application:
        """An application with the phone routes alone (the guest network's listener)."""
        app = web.Application(client_max_size=16 * 1024)
        self._add_routes(app)
        return app

    def _add_routes(self, app: web.Application) -> None:
        routes = [app.router.add_get("/t/static/{name}", self.asset),
                  app.router.add_get("/t/{token}", self.page),
                  app.router.add_get("/t/{token}/status", self.status),
                  app.router.add_get("/t/{token}/events", self.events),
                  app.router.add_post("/t/{token}/rating", self.rating)]
        self._resources.update(route.resource for route in routes if route.resource is not None)

    # --- handlers ----------------------------------------------------------------------------------------------

    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        # Checked again at each visit (a new release's page reaches phones at once), answered 304 when unchanged.
        return web.FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-cache",
                                                            "Content-Type": ASSETS[name],
                                                            "X-Content-Type-Options": "nosniff"})

    async def _find(self, raw: str) -> str | Lookup:
        """The normalised token if today's ledger knows it, after one fresh reading if it did not. Otherwise
        ``NOT_FOUND`` (a malformed token, or one a completed reading does not know) or ``NOT_READY`` (the ledger
        not read yet since the start, or the fresh reading not done within ``lookup_timeout_s``)."""
        token = normal_token(raw)
        if token is None:
            return Lookup.NOT_FOUND
        if self.model.ledger_day is None:
            # The service has not read the ledger yet (it just started): "not found" would be untrue.
            return Lookup.NOT_READY
        if not self.model.knows(token):
            try:
                async with asyncio.timeout(self.lookup_timeout_s):
                    await self.fresh_ledger()
            except TimeoutError:
                log.warning("the ledger's fresh reading took over %.0f s; token=%s answered 503, try again",
                            self.lookup_timeout_s, token_hint(token))
                return Lookup.NOT_READY
            if not self.model.knows(token):
                log.debug("status page for an unknown token=%s", token_hint(token))
                return Lookup.NOT_FOUND
        return token

    async def page(self, request: web.Request) -> web.StreamResponse:
        token = await self._find(request.match_info["token"])
        if token is Lookup.NOT_READY:
            return self._message_page(503, "starting")
        if token is Lookup.NOT_FOUND:
            return self._message_page(404, "not_found")
        return web.FileResponse(STATIC_DIR / "phone.html", headers={**PAGE_HEADERS,
                                                                    "Content-Type": "text/html; charset=utf-8"})

    async def status(self, request: web.Request) -> web.Response:
        token = await self._find(request.match_info["token"])
        if token is Lookup.NOT_READY:
            return _not_ready()
        status = None if isinstance(token, Lookup) else self.model.status(token, self.now())
        return web.json_response(status or {"found": False}, status=200 if status else 404, headers=JSON_HEADERS,
                                 dumps=_dumps)

    async def events(self, request: web.Request) -> web.StreamResponse:
        token = await self._find(request.match_info["token"])
        if token is Lookup.NOT_READY:
            return _not_ready()
        if isinstance(token, Lookup):
            return web.json_response({"found": False}, status=404, headers=JSON_HEADERS)
        queue = self.streams.subscribe(token)
        if isinstance(queue, str):
            now_s = self.clock()
            if queue == "connections" and now_s - self._full_logged_at >= FULL_LOG_EVERY_S:
                self._full_logged_at = now_s
                log.warning("status pages refused: too many pages followed (bound: [phones] max_connections = %d)",
                            self.streams.max_connections)
            return web.json_response({"found": True, "error": "busy"}, status=503,
                                     headers={**JSON_HEADERS, "Retry-After": str(BUSY_RETRY_S)})
        tune_stream_socket(request.transport.get_extra_info("socket") if request.transport is not None else None)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                               "Cache-Control": "no-store", "X-Accel-Buffering": "no",
                                               "X-Content-Type-Options": "nosniff"})
        try:
            await response.prepare(request)
            await response.write(f"retry: {RETRY_MS}\n\n".encode())
            written_s = self.clock()
            while True:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that arrives as
                # the awaited item does, and the handler would then never end.
                try:
                    async with asyncio.timeout(self.gone_check_s):
                        payload = await queue.get()
                except TimeoutError:
                    # aiohttp does not cancel a handler whose client went away: look, so that a closed page
                    # stops counting against the bounds within seconds, not at the next heartbeat's write.
                    if request.transport is None or request.transport.is_closing():
                        break
                    if self.clock() - written_s < HEARTBEAT_S:
                        continue
                    payload = PING_EVENT
                if payload is None:
                    break
                await response.write(payload)
                written_s = self.clock()
        except ConnectionError:
            log.debug("status page went away token=%s", token_hint(token))
        finally:
            self.streams.unsubscribe(token, queue)
        return response

    async def rating(self, request: web.Request) -> web.Response:
        origin = request.headers.get("Origin")
        # Host against host, not the scheme: behind a bridging proxy that ends TLS the page's origin is https
        # while this service hears http. (The JSON body is the main guard: another site's form cannot send it.)
        if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
            return _refusal(403, "forbidden", "another site may not rate")
        if request.content_type != "application/json":
            return _refusal(415, "bad_request", "send the rating as application/json")
        token = await self._find(request.match_info["token"])
        if token is Lookup.NOT_READY:
            return _refusal(503, "starting", "the service has not read today's ledger yet; try again in a few "
                                             "seconds", retry_after_s=NOT_READY_RETRY_S)
        ticket = None if isinstance(token, Lookup) else self.model.ticket(token)
        if isinstance(token, Lookup) or ticket is None:
            return _refusal(404, "unknown_ticket", "this ticket is not of today")
        try:
            form = read_rating(await request.json(), self.spec)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _refusal(400, "bad_request", "the body must be JSON")
        except BadRating as exc:
            return _refusal(400, "bad_request", str(exc))
        if token in self._rating_now or not self.limiter.allow(token, now=self.clock()):
            return _refusal(429, "rate_limited", "too many ratings for this ticket; wait a minute")
        self._rating_now.add(token)
        try:
            command = wire.ManagerCommand(request_id=f"phone-{uuid.uuid4().hex}", user="phone",
                                          action="rate_ticket", ticket=ticket.id, rating=form.rating,
                                          reasons=form.reasons, comment=form.comment)
            outcome = await self.act(command)
        finally:
            self._rating_now.discard(token)
        # The comment is the citizen's own words: never logged (the ledger keeps it for the reports).
        log.info("phone rating ticket=%s level=%s reasons=%d outcome=%s", ticket.number, form.rating,
                 len(form.reasons), "done" if outcome.ok else f"refused code={outcome.code}")
        if outcome.ok:
            self.model.on_rated(ticket.id, form.rating, seen_s=self.clock())
            self.changed()
            return web.json_response({"ok": True, "error": None}, headers=JSON_HEADERS)
        code = outcome.code or "error"
        return _refusal(503 if code in ("timeout", "broker_unavailable") else 200, code, outcome.message)

    # --- the pages without a ticket -----------------------------------------------------------------------------

    def _message_page(self, status: int, kind: str) -> web.Response:
        headers = {**PAGE_HEADERS, **({"Retry-After": str(NOT_READY_RETRY_S)} if status == 503 else {})}
        return web.Response(status=status, text=message_page(self.spec, kind), content_type="text/html",
                            charset="utf-8", headers=headers)


_MESSAGES: Final = {
    "not_found": (
        "Không tìm thấy số thứ tự", "Đường dẫn này không thuộc số thứ tự nào của ngày hôm nay. Số của những ngày "
        "trước đã hết hiệu lực. Nếu bạn vừa lấy số, hãy tải lại trang sau ít giây.",
        "Ticket not found", "This link is not a ticket of today: tickets of earlier days have expired. If you took "
        "your ticket just now, reload this page in a few seconds."),
    "starting": (
        "Hệ thống đang khởi động", "Vui lòng tải lại trang sau ít giây.",
        "The system is starting", "Please reload this page in a few seconds."),
}


def message_page(spec: HallSpec, kind: str) -> str:
    """A page without a ticket (``not_found``, ``starting``), in Vietnamese and English, without a script."""
    title_vi, text_vi, title_en, text_en = _MESSAGES[kind]
    esc = html.escape
    return f"""<!DOCTYPE html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{esc(title_vi)} — {esc(title_en)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="static/phone.css">
</head>
<body class="message">
<header class="top"><p class="hall">{esc(spec.name_vi)}</p></header>
<main>
<section class="card" id="{kind}">
<h1>{esc(title_vi)}</h1>
<p>{esc(text_vi)}</p>
</section>
<section class="card" lang="en">
<h2>{esc(title_en)}</h2>
<p>{esc(text_en)}</p>
<p class="hall-en">{esc(spec.name_en)}</p>
</section>
</main>
</body>
</html>
"""


def words(code: str) -> tuple[str, str]:
    """A refusal's words as (Vietnamese, English): the manager's own, or ``hallq.labels``' "Việt (English)"."""
    if code in OWN_WORDS:
        return OWN_WORDS[code]
    label = error_label(code)
    vi, sep, en = label.rpartition(" (")
    return (vi, en.removesuffix(")")) if sep and en.endswith(")") else (label, label)


def _refusal(status: int, code: str, message: str, *, retry_after_s: int | None = None) -> web.Response:
    vi, en = words(code)
    label = error_label(code) if code not in OWN_WORDS else f"{vi} ({en})"
    headers = JSON_HEADERS if retry_after_s is None else {**JSON_HEADERS, "Retry-After": str(retry_after_s)}
    return web.json_response({"ok": False, "error": {"code": code, "label": label, "label_vi": vi, "label_en": en,
                                                     "message": message}}, status=status, headers=headers,
                             dumps=_dumps)


def _not_ready() -> web.Response:
    """503 for ``/status`` and ``/events`` while no reading of the ledger can say whether the token is of today:
    ``{"found": null}``, try again after ``Retry-After``."""
    return web.json_response({"found": None, "error": "starting"}, status=503,
                             headers={**JSON_HEADERS, "Retry-After": str(NOT_READY_RETRY_S)})


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
