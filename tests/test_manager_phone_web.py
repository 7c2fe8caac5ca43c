"""The status page's routes (manager/phone_web.py) on a real aiohttp server (``aiohttp.test_utils``), with the
pure model fed by hand, the hall's clock and the monotonic clock injected, and the controller's side (``act``) a
recorder: no broker, no sleeps."""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from hallq import wire
from hallq.errors import ConfigError
from hallq.sse import Hub
from manager import config as manager_config
from manager.phone_web import (
    DEAD_PEER_S,
    HEARTBEAT_S,
    BadRating,
    PhonePages,
    PhoneStreams,
    TryLimiter,
    read_rating,
    status_event,
    tune_stream_socket,
)
from manager.phones import PhoneModel
from manager.service import phone_bound
from manager.users import Users
from manager.web import make_app
from tests.support import HALL_CONFIG
from tests.test_manager_phones import DAY, at, called, day_started, finished, issued, spec, token


@dataclass
class Outcome:
    ok: bool
    code: str | None = None
    message: str = ""


@dataclass
class Controller:
    """The controller's side of ``act``: records each command and answers what the test says."""

    answer: Outcome = field(default_factory=lambda: Outcome(ok=True))
    commands: list[wire.ManagerCommand] = field(default_factory=list)

    async def act(self, command: wire.ManagerCommand) -> Outcome:
        command.encode()  # as the service does before publishing: a command that cannot be sent fails here too
        self.commands.append(command)
        return self.answer


class Ledger:
    """The service's fresh reading of the ledger: counts the readings, and folds in what a test printed since."""

    def __init__(self, model: PhoneModel, events: list[Any]) -> None:
        self.model = model
        self.events = events
        self.readings = 0

    async def fresh(self) -> None:
        self.readings += 1
        self.model.seed([day_started(), *self.events], day=DAY, seen_s=float(self.readings))


class ServiceLikeServer(TestServer):
    """A test server that, like the manager's own runner, does not cancel a handler whose client went away
    (aiohttp's test server does): a stream must notice by itself."""

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        return await super()._make_runner(**{**kwargs, "handler_cancellation": False})


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


@dataclass
class Hall:
    client: TestClient[web.Request, web.Application]
    pages: PhonePages
    model: PhoneModel
    ledger: Ledger
    controller: Controller
    clock: Clock
    minutes: list[float]

    async def get(self, path: str, **kwargs: Any) -> ClientResponse:
        return await self.client.get(path, **kwargs)

    async def rate(self, n: int, body: dict[str, Any], **kwargs: Any) -> tuple[int, Any]:
        response = await self.client.post(f"/t/{token(n)}/rating", json=body, **kwargs)
        return response.status, await response.json()


@asynccontextmanager
async def hall(*events: Any, max_connections: int = 10, max_per_ticket: int = 3,
               app: Callable[[PhonePages], web.Application] | None = None, seeded: bool = True,
               lookup_timeout_s: float = 5.0) -> AsyncIterator[Hall]:
    """A hall whose ledger holds ``events``; ``seeded``: the service has read it once already (it has not just
    started)."""
    model = PhoneModel(spec())
    ledger = Ledger(model, list(events))
    if seeded:
        model.seed([day_started(), *events], day=DAY, seen_s=0)
    controller = Controller()
    clock = Clock()
    minutes = [30.0]
    pages = PhonePages(spec=spec(), model=model, now=lambda: at(minutes[0]), act=controller.act,
                       fresh_ledger=ledger.fresh, max_connections=max_connections, max_per_ticket=max_per_ticket,
                       clock=clock, gone_check_s=0.05, lookup_timeout_s=lookup_timeout_s)
    if app is None:
        application = web.Application()
        pages.install(application)
    else:
        application = app(pages)
    async with TestClient(ServiceLikeServer(application)) as client:
        yield Hall(client, pages, model, ledger, controller, clock, minutes)


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 20))


async def next_event(response: ClientResponse) -> dict[str, Any]:
    """The stream's next ``status`` event (pings and the retry line skipped)."""
    while True:
        block = (await response.content.readuntil(b"\n\n")).decode()
        lines = block.strip().splitlines()
        if lines and lines[0] == "event: status":
            data: dict[str, Any] = json.loads(lines[1].removeprefix("data: "))
            return data


# --- the page ------------------------------------------------------------------------------------------------------


def test_an_unknown_token_gets_a_friendly_page_in_both_languages_after_one_fresh_reading() -> None:
    async def scenario() -> tuple[int, str, dict[str, str], int]:
        async with hall(issued(1, 0)) as h:
            response = await h.get(f"/t/{token(99)}")
            return response.status, await response.text(), dict(response.headers), h.ledger.readings

    status, page, headers, readings = run(scenario)
    assert status == 404
    assert readings == 1
    assert "Không tìm thấy số thứ tự" in page and "Ticket not found" in page and "not a ticket of today" in page
    assert "Sảnh" in page and "<script" not in page
    assert headers["Cache-Control"] == "no-store" and "default-src 'none'" in headers["Content-Security-Policy"]


def test_a_malformed_token_is_answered_without_reading_the_ledger() -> None:
    async def scenario() -> tuple[list[int], int]:
        async with hall(issued(1, 0)) as h:
            statuses = [(await h.get(path)).status for path in
                        ("/t/not-a-token", f"/t/{token(1)}x", "/t/%0a%0d" + "a" * 22, f"/t/{token(1)[:-1]}/status")]
            return statuses, h.ledger.readings

    assert run(scenario) == ([404, 404, 404, 404], 0)


def test_a_ticket_printed_a_moment_ago_is_found_after_the_fresh_reading() -> None:
    async def scenario() -> tuple[int, int]:
        async with hall(issued(1, 0)) as h:
            h.ledger.events.append(issued(2, 29))  # stored by the controller; not read yet
            response = await h.get(f"/t/{token(2)}")
            return response.status, h.ledger.readings

    assert run(scenario) == (200, 1)


def test_the_page_of_a_known_token_fetches_nothing_from_the_internet() -> None:
    async def scenario() -> tuple[int, str, dict[str, str], list[tuple[int, str]]]:
        async with hall(issued(1, 0)) as h:
            response = await h.get(f"/t/{token(1).upper()}")
            assets = []
            for name in ("phone.css", "phone.js", "phone.html", "../web.py"):
                asset = await h.get(f"/t/static/{name}")
                assets.append((asset.status, asset.headers.get("Content-Type", "")))
            return response.status, await response.text(), dict(response.headers), assets

    status, page, headers, assets = run(scenario)
    assert status == 200
    assert "http://" not in page and "https://" not in page and "<script src=\"static/phone.js\"" in page
    assert headers["Referrer-Policy"] == "no-referrer" and "script-src 'self'" in headers["Content-Security-Policy"]
    assert assets[0][0] == 200 and assets[0][1].startswith("text/css")
    assert assets[1][0] == 200 and assets[1][1].startswith("text/javascript")
    assert [code for code, _ in assets[2:]] == [404, 404]
    for name in ("phone.js", "phone.css", "phone.html"):
        text = (Path(__file__).resolve().parent.parent / "manager" / "static" / name).read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text and "@import" not in text, name


def test_a_service_that_has_not_read_the_ledger_yet_answers_503_with_retry_after_not_404() -> None:
    async def scenario() -> tuple[list[tuple[int, str | None]], list[Any], int]:
        async with hall(issued(1, 0), seeded=False) as h:
            answers = [await h.get(f"/t/{token(n)}{route}") for route in ("", "/status", "/events") for n in (1, 99)]
            rated = await h.client.post(f"/t/{token(1)}/rating", json={"rating": "neutral"})
            answers.append(rated)
            bodies = [await a.json() for a in answers[2:]]
            return [(a.status, a.headers.get("Retry-After")) for a in answers], bodies, h.ledger.readings

    answers, bodies, readings = run(scenario)
    assert answers == [(503, "5")] * 7  # a token of today (1) and one that may not be (99): nobody can say yet
    assert bodies[:4] == [{"found": None, "error": "starting"}] * 4
    assert bodies[4]["error"]["code"] == "starting"
    assert readings == 0  # the service's own first reading is under way: no request asks for another


def test_a_lookup_whose_fresh_reading_times_out_answers_503_not_404() -> None:
    async def scenario() -> list[tuple[int, str | None]]:
        async with hall(issued(1, 0), lookup_timeout_s=0.05) as h:
            never = asyncio.Event()

            async def slow_reading() -> None:
                await never.wait()

            h.pages.fresh_ledger = slow_reading
            answers = [await h.get(f"/t/{token(2)}{route}") for route in ("", "/status", "/events")]
            known = await h.get(f"/t/{token(1)}/status")  # a token already known needs no reading
            return [(a.status, a.headers.get("Retry-After")) for a in (*answers, known)]

    assert run(scenario) == [(503, "5"), (503, "5"), (503, "5"), (200, None)]


def test_only_a_completed_reading_answers_404_on_every_route() -> None:
    async def scenario() -> list[int]:
        async with hall(issued(1, 0)) as h:
            return [(await h.get(f"/t/{token(99)}{route}")).status for route in ("", "/status", "/events")]

    assert run(scenario) == [404, 404, 404]


# --- the status ----------------------------------------------------------------------------------------------------


def test_the_status_as_json() -> None:
    async def scenario() -> tuple[tuple[int, Any], tuple[int, Any]]:
        async with hall(issued(1, 0), issued(2, 1)) as h:
            known = await h.get(f"/t/{token(2)}/status")
            unknown = await h.get(f"/t/{token(3)}/status")
            return (known.status, await known.json()), (unknown.status, await unknown.json())

    (status, body), (missing, nothing) = run(scenario)
    assert status == 200
    assert (body["number"], body["service_vi"], body["state"], body["ahead"], body["estimated_wait_s"]) == \
        ("A002", "Hộ tịch", "waiting", 1, 150)
    assert (missing, nothing) == (404, {"found": False})


def test_the_stream_sends_the_status_at_once_then_only_this_tickets_changes() -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with hall(issued(1, 0), issued(2, 1), issued(3, 2)) as h:
            stream = await h.get(f"/t/{token(3)}/events")
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            seen = [await next_event(stream)]
            h.model.on_call(wire.Call(seq=1, number="A005", counter="1", counter_name="Quầy 1", service="A",
                                      priority=False, recall=False, at=at(29), ticket_id="t-other"), seen_s=1)
            assert h.pages.streams.refresh() == 0  # another ticket (not followed): nothing moved for this page
            h.model.on_call(wire.Call(seq=2, number="A001", counter="1", counter_name="Quầy 1", service="A",
                                      priority=False, recall=False, at=at(30), ticket_id="t1"), seen_s=2)
            assert h.pages.streams.refresh() == 1
            seen.append(await next_event(stream))
            h.model.on_call(wire.Call(seq=3, number="A003", counter="2", counter_name="Quầy 2", service="A",
                                      priority=False, recall=False, at=at(31), ticket_id="t3"), seen_s=3)
            h.pages.streams.refresh()
            seen.append(await next_event(stream))
            stream.close()
            return seen

    first, fewer, called_now = run(scenario)
    assert (first["state"], first["ahead"]) == ("waiting", 2)
    assert (fewer["state"], fewer["ahead"]) == ("waiting", 1)
    assert (called_now["state"], called_now["counter"], called_now["counter_name"]) == ("called", "2", "Quầy 2")


def test_the_heartbeat_is_a_ping_event_the_pages_script_can_see() -> None:
    async def scenario() -> list[str]:
        async with hall(issued(1, 0)) as h:
            stream = await h.get(f"/t/{token(1)}/events")
            await next_event(stream)
            h.clock.now_s += HEARTBEAT_S  # the stream looks every gone_check_s (0.05 s): the ping follows
            block = (await stream.content.readuntil(b"\n\n")).decode()
            stream.close()
            return block.strip().splitlines()

    assert run(scenario) == ["event: ping", "data: {}"]


def test_a_page_that_has_not_read_the_last_status_gets_the_newer_one_instead() -> None:
    async def scenario() -> None:
        streams = PhoneStreams(lambda tok: status_event({"found": True, "n": counter[0]}), max_connections=5,
                               max_per_ticket=5)
        counter = [0]
        queue = streams.subscribe("a" * 24)
        assert isinstance(queue, asyncio.Queue)
        for n in (1, 2, 3):
            counter[0] = n
            streams.refresh()
        payload = queue.get_nowait()
        assert payload is not None and b'"n":3' in payload
        assert queue.empty()
        streams.close()
        assert queue.get_nowait() is None

    asyncio.run(scenario())


def test_streams_beyond_the_services_bound_are_refused_with_503() -> None:
    async def scenario() -> list[int]:
        async with hall(issued(1, 0), issued(2, 1), issued(3, 2), max_connections=3, max_per_ticket=2) as h:
            open_streams = [await h.get(f"/t/{token(1)}/events"), await h.get(f"/t/{token(1)}/events"),
                            await h.get(f"/t/{token(2)}/events")]
            fourth = await h.get(f"/t/{token(3)}/events")  # the service's bound
            statuses = [s.status for s in open_streams] + [fourth.status, h.pages.streams.connections]
            assert fourth.headers["Retry-After"] == "30"
            open_streams[0].close()
            # The page that went away stops counting (its stream looks every gone_check_s): the next one is taken.
            for _ in range(100):
                if h.pages.streams.connections < 3:
                    break
                await asyncio.sleep(0.05)  # the polling interval: the server's side has nothing to wait on
            again = await h.get(f"/t/{token(3)}/events")
            statuses.append(again.status)
            for stream in (*open_streams, again):
                stream.close()
            return statuses

    assert run(scenario) == [200, 200, 200, 503, 3, 200]


def test_a_new_page_of_a_ticket_at_its_bound_ends_the_oldest_stream_even_when_the_service_is_full() -> None:
    async def scenario() -> tuple[list[int], bytes, int]:
        async with hall(issued(1, 0), max_connections=2, max_per_ticket=2) as h:
            oldest = await h.get(f"/t/{token(1)}/events")
            await next_event(oldest)
            middle = await h.get(f"/t/{token(1)}/events")
            newest = await h.get(f"/t/{token(1)}/events")  # the ticket's bound, and the service's
            first = await next_event(newest)
            rest = await oldest.content.read()  # the oldest stream ends: its body closes
            statuses = [oldest.status, middle.status, newest.status, int(first["found"])]
            connections = h.pages.streams.connections
            for stream in (middle, newest):
                stream.close()
            return statuses, rest, connections

    statuses, rest, connections = run(scenario)
    assert statuses == [200, 200, 200, 1]
    assert rest == b""
    assert connections == 2


def test_opening_one_stream_more_than_a_tickets_bound_keeps_the_newest_and_ends_the_oldest() -> None:
    async def scenario() -> None:
        streams = PhoneStreams(lambda tok: status_event({"found": True}), max_connections=10, max_per_ticket=3)
        queues = [streams.subscribe("a" * 24) for _ in range(4)]
        assert all(isinstance(q, asyncio.Queue) for q in queues)
        live = [q for q in queues if isinstance(q, asyncio.Queue)]
        assert live[0].get_nowait() is None and live[0].empty()  # its first status, not taken yet, gave way
        assert [q.get_nowait() is not None for q in live[1:]] == [True, True, True]
        assert (streams.connections, streams.tickets) == (3, 1)
        streams.unsubscribe("a" * 24, live[0])  # its handler's own unsubscribe, afterwards: changes nothing
        assert streams.connections == 3
        assert isinstance(streams.subscribe("a" * 24), asyncio.Queue)
        assert live[1].get_nowait() is None  # then the next oldest
        assert streams.connections == 3

    asyncio.run(scenario())


def test_a_ticket_bound_of_one_gives_the_new_page_a_fresh_status() -> None:
    async def scenario() -> None:
        n = [1]
        streams = PhoneStreams(lambda tok: status_event({"found": True, "n": n[0]}), max_per_ticket=1)
        first = streams.subscribe("a" * 24)
        n[0] = 2
        second = streams.subscribe("a" * 24)
        assert isinstance(first, asyncio.Queue) and isinstance(second, asyncio.Queue)
        assert first.get_nowait() is None
        payload = second.get_nowait()
        assert payload is not None and b'"n":2' in payload

    asyncio.run(scenario())


def test_a_streams_socket_notices_a_dead_peer_within_a_minute() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        assert tune_stream_socket(sock) == sys.platform.startswith("linux")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if sys.platform.startswith("linux"):
            assert sock.getsockopt(socket.IPPROTO_TCP, 18) == DEAD_PEER_S * 1000  # TCP_USER_TIMEOUT, in ms
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == DEAD_PEER_S // 2
    assert tune_stream_socket(None) is False


def test_a_socket_without_the_tcp_options_is_left_as_it_is() -> None:
    left, right = socket.socketpair()  # a Unix socket: no TCP options
    with left, right:
        assert tune_stream_socket(left) is False


def test_the_stream_route_tunes_its_connections_socket() -> None:
    async def scenario() -> int:
        async with hall(issued(1, 0)) as h:
            stream = await h.get(f"/t/{token(1)}/events")
            await next_event(stream)
            peer = stream.connection.transport.get_extra_info("sockname") if stream.connection and \
                stream.connection.transport else None
            server_sockets = [proto.transport.get_extra_info("socket") for proto in
                              h.client.server.runner.server.connections if proto.transport is not None] \
                if h.client.server.runner and h.client.server.runner.server else []
            found = [s for s in server_sockets if s is not None and s.getpeername() == peer]
            stream.close()
            return found[0].getsockopt(socket.IPPROTO_TCP, 18) if found else -1

    assert run(scenario) == DEAD_PEER_S * 1000


# --- the rating ----------------------------------------------------------------------------------------------------


SERVED = (issued(1, 0), called(1, "2", 5), finished(1, "2", 25))


def test_a_rating_passes_through_the_managers_action_as_rate_ticket() -> None:
    async def scenario() -> tuple[tuple[int, Any], list[wire.ManagerCommand], dict[str, Any] | None]:
        async with hall(*SERVED) as h:
            answer = await h.rate(1, {"rating": "neutral", "reasons": ["waiting_time", "guidance"],
                                      "comment": "  Nên có\nthêm ghế chờ  "})
            return answer, h.controller.commands, h.model.status(token(1), at(30))

    (status, body), commands, after = run(scenario)
    assert (status, body) == (200, {"ok": True, "error": None})
    [command] = commands
    assert (command.user, command.action, command.ticket, command.rating, command.reasons, command.comment) == \
        ("phone", "rate_ticket", "t1", "neutral", ("waiting_time", "guidance"), "Nên có thêm ghế chờ")
    assert command.request_id.startswith("phone-")
    assert wire.ManagerCommand.decode(command.encode()) == command
    assert after is not None and after["rated"] == "neutral" and after["final"]


def test_a_refused_rating_answers_the_refusals_words() -> None:
    async def scenario() -> tuple[int, Any]:
        async with hall(*SERVED) as h:
            h.controller.answer = Outcome(ok=False, code="already_rated", message="A001 was rated already")
            return await h.rate(1, {"rating": "satisfied"})

    status, body = run(scenario)
    assert status == 200 and body["ok"] is False
    error = body["error"]
    assert error["code"] == "already_rated" and error["message"] == "A001 was rated already"
    assert error["label_vi"] == "Lượt này đã được đánh giá, cảm ơn quý khách"
    assert error["label_en"] == "this visit was rated already"
    assert error["label"].startswith(error["label_vi"])


def test_a_rating_the_manager_could_not_send_answers_503_in_plain_words() -> None:
    async def scenario() -> tuple[int, Any]:
        async with hall(*SERVED) as h:
            h.controller.answer = Outcome(ok=False, code="broker_unavailable", message="not connected")
            return await h.rate(1, {"rating": "satisfied"})

    status, body = run(scenario)
    assert status == 503 and body["error"]["label_vi"].startswith("Hệ thống đang tạm gián đoạn")


def test_a_bad_rating_is_refused_before_anything_is_sent() -> None:
    async def scenario() -> tuple[list[int], int]:
        async with hall(*SERVED) as h:
            statuses = [
                (await h.rate(1, {"rating": "excellent"}))[0],
                (await h.rate(1, {"rating": "satisfied", "reasons": ["waiting_time"]}))[0],
                (await h.rate(1, {"rating": "neutral", "reasons": ["no_such_reason"]}))[0],
                (await h.rate(1, {"rating": "neutral", "comment": "x" * 301}))[0],
                (await h.client.post(f"/t/{token(1)}/rating", data="rating=neutral",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})).status,
                (await h.rate(1, {"rating": "neutral"}, headers={"Origin": "https://elsewhere.example"}))[0],
                (await h.rate(99, {"rating": "neutral"}))[0],
            ]
            return statuses, len(h.controller.commands)

    assert run(scenario) == ([400, 400, 400, 400, 415, 403, 404], 0)


def test_a_page_behind_a_proxy_that_ends_tls_may_rate() -> None:
    async def scenario() -> int:
        async with hall(*SERVED) as h:
            host = f"{h.client.host}:{h.client.port}"
            return (await h.rate(1, {"rating": "satisfied"}, headers={"Origin": f"https://{host}"}))[0]

    assert run(scenario) == 200


def test_one_ticket_may_try_to_rate_only_a_few_times_a_minute() -> None:
    async def scenario() -> list[int]:
        async with hall(*SERVED) as h:
            h.controller.answer = Outcome(ok=False, code="rating_closed", message="too late")
            statuses = [(await h.rate(1, {"rating": "satisfied"}))[0] for _ in range(6)]
            h.clock.now_s += 61
            statuses.append((await h.rate(1, {"rating": "satisfied"}))[0])
            return statuses

    assert run(scenario) == [200, 200, 200, 200, 200, 429, 200]


def test_read_rating_normalises_the_comment_and_keeps_the_rules() -> None:
    decomposed = "Nhân vie\u0302n nhie\u0323\u0302t ti\u0300nh"
    form = read_rating({"rating": "dissatisfied", "reasons": ["attitude", "attitude"], "comment": decomposed}, spec())
    assert form.comment == "Nhân viên nhiệt tình"
    assert form.reasons == ("attitude",)
    assert read_rating({"rating": "very_satisfied", "reasons": [], "comment": "   "}, spec()).comment is None
    bad_bodies: list[object] = [[], {"rating": None}, {"rating": "neutral", "reasons": "attitude"},
                                {"rating": "neutral", "comment": 5}, {"rating": "neutral", "comment": "a\u0000b"},
                                {"rating": "neutral", "reasons": ["attitude"] * 9}]
    for bad in bad_bodies:
        with pytest.raises(BadRating):
            read_rating(bad, spec())


def test_read_rating_replaces_a_lone_surrogate_in_the_comment() -> None:
    form = read_rating({"rating": "neutral", "comment": "ab\ud800cd"}, spec())
    assert form.comment == "ab\ufffdcd"
    assert form.comment.encode("utf-8") == "ab\ufffdcd".encode()


def test_a_comment_with_a_lone_surrogate_is_passed_on_cleanly_without_a_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario() -> tuple[int, Any, list[wire.ManagerCommand]]:
        async with hall(*SERVED) as h:
            # Sent as the JSON escape "\ud800", which decodes to a lone surrogate (no UTF-8 can carry one).
            response = await h.client.post(f"/t/{token(1)}/rating", data='{"rating": "neutral", "comment": '
                                                                         '"ab\\ud800cd"}',
                                           headers={"Content-Type": "application/json"})
            return response.status, await response.json(), h.controller.commands

    status, body, commands = run(scenario)
    assert (status, body) == (200, {"ok": True, "error": None})
    [command] = commands
    assert command.comment == "ab\ufffdcd"
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []


def test_the_try_limiter_forgets_old_tries() -> None:
    limiter = TryLimiter(per_window=2, window_s=60)
    assert [limiter.allow("a", now=t) for t in (0, 1, 2, 59, 60.5, 61)] == [True, True, False, False, True, True]
    assert limiter.allow("b", now=200) and list(limiter._tries) == ["b"]


# --- in the manager's application, and on the guest network ---------------------------------------------------------


def _office(tmp_path: Path) -> Callable[[PhonePages], web.Application]:
    async def act(_command: wire.ManagerCommand) -> Any:
        raise AssertionError("not for this test")

    def build(pages: PhonePages) -> web.Application:
        return make_app(spec=spec(), users=Users.load(tmp_path / "users.json"), secure_cookies=False,
                        view=lambda: {}, act=act, hub=Hub(backlog=5), ledger=tmp_path / "ledger.sqlite3",
                        health=lambda: {}, now=lambda: at(30), phones=pages)

    return build


def test_in_the_managers_application_the_phone_needs_no_login_and_the_office_still_does(tmp_path: Path) -> None:
    async def scenario() -> list[int]:
        async with hall(*SERVED, app=_office(tmp_path)) as h:
            page = await h.get(f"/t/{token(1)}", headers={"Accept": "text/html"}, allow_redirects=False)
            status = await h.get(f"/t/{token(1)}/status")
            rated, _body = await h.rate(1, {"rating": "very_satisfied"})
            office = await h.get("/api/live")
            office_post = await h.client.post("/api/day/end", json={})
            return [page.status, status.status, rated, office.status, office_post.status]

    assert run(scenario) == [200, 200, 200, 401, 401]


def test_the_guest_networks_application_serves_the_status_pages_alone() -> None:
    async def scenario() -> list[int]:
        async with hall(issued(1, 0), app=lambda pages: pages.guest_app()) as h:
            return [(await h.get(path, allow_redirects=False)).status for path in
                    (f"/t/{token(1)}", "/t/static/phone.js", "/", "/login", "/api/live", "/static/manager.js",
                     "/healthz")]

    assert run(scenario) == [200, 200, 404, 404, 404, 404, 404]


def test_logs_never_hold_a_whole_token_nor_the_comment(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        async with hall(*SERVED) as h:
            await h.get(f"/t/{token(77)}")
            await h.rate(1, {"rating": "neutral", "comment": "Phòng chờ nóng quá"})
            h.controller.answer = Outcome(ok=False, code="already_rated")
            await h.rate(1, {"rating": "neutral"})

    run(scenario)
    # The service's own lines (its listeners keep no access log; the test server's is aiohttp's).
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("manager"))
    assert "phone rating ticket=A001 level=neutral" in text
    assert token(77) not in text and token(1) not in text and "Phòng chờ" not in text


# --- the config ----------------------------------------------------------------------------------------------------


def _manager_toml(tmp_path: Path, phones: str) -> Path:
    path = tmp_path / "manager.toml"
    path.write_text(f'[manager]\nhall_config = "{HALL_CONFIG}"\nlisten = "127.0.0.1:8443"\n'
                    f'users_file = "{tmp_path / "users.json"}"\nstate_dir = "{tmp_path}"\n\n{phones}\n'
                    '[mqtt]\nbroker = "127.0.0.1:1883"\n', encoding="utf-8")
    return path


def test_the_phones_table_is_optional_and_read_strictly(tmp_path: Path) -> None:
    default = manager_config.load(_manager_toml(tmp_path, ""))
    assert (default.phones.max_connections, default.phones.max_per_ticket, default.phones.guest_url) == (2000, 6, None)
    set_up = manager_config.load(_manager_toml(tmp_path, '[phones]\nmax_connections = 600\nmax_per_ticket = 3\n'
                                                         'guest_listen = "0.0.0.0:8080"\n'))
    assert (set_up.phones.max_connections, set_up.phones.max_per_ticket) == (600, 3)
    assert (set_up.phones.guest_host, set_up.phones.guest_port, set_up.phones.guest_url) == \
        ("0.0.0.0", 8080, "http://0.0.0.0:8080/")


@pytest.mark.parametrize(("phones", "key", "problem"), [
    ('max_connections = 0', "phones.max_connections", "at least 1"),
    ('max_per_ticket = "six"', "phones.max_per_ticket", "integer"),
    ('guest_listen = "wifi"', "phones.guest_listen", "HOST:PORT"),
    ('guest_listen = "0.0.0.0:8443"', "phones.guest_listen", "port of their own"),
    ('max_conections = 10', "phones.max_conections", ""),
])
def test_a_bad_phones_key_is_one_error_naming_it(tmp_path: Path, phones: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        manager_config.load(_manager_toml(tmp_path, f"[phones]\n{phones}\n"))
    assert key in str(caught.value) and problem in str(caught.value)


@pytest.mark.parametrize(("limit", "requested", "effective"), [
    (16384, 2000, 2000),  # the unit's LimitNOFILE: room for all
    (1024, 2000, 824),  # systemd's default for a service: what fits beside the office's 200
    (2200, 2000, 2000),  # exactly fits
    (150, 2000, 0),  # not even the margin: no stream, the JSON status still answers
    (None, 2000, 2000),  # no limit
])
def test_the_phones_bound_fits_under_the_open_files_limit(limit: int | None, requested: int,
                                                          effective: int) -> None:
    assert phone_bound(open_files_limit=limit, requested=requested) == effective


def test_the_soft_open_files_limit_is_raised_to_the_hard_one() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"the hard limit ({hard}) leaves nothing to raise")
    script = ("import resource; from manager.service import raise_open_files_limit; "
              "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], raise_open_files_limit())")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30,
                          cwd=Path(__file__).resolve().parent.parent,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)))
    before, after = done.stdout.split()
    assert before == "256"
    assert after == (str(hard) if hard != resource.RLIM_INFINITY else "None")


def test_under_a_low_hard_limit_the_service_lowers_its_phones_bound_with_one_warning(tmp_path: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"the hard limit ({hard}) is below the one this test sets")
    config = _manager_toml(tmp_path, "")
    script = ("import logging, sys; from manager import config, service; logging.basicConfig(level=logging.INFO); "
              f"print(service._fit_phones(config.load(__import__('pathlib').Path({str(config)!r})))"
              ".phones.max_connections)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30,
                          cwd=Path(__file__).resolve().parent.parent,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)))
    assert done.stdout.split() == ["824"]
    [warning] = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert "limit=1024" in warning and "only 824 phones" in warning and "max_connections=2000" in warning


def test_a_service_unit_gives_the_manager_room_for_its_phones() -> None:
    unit = (Path(__file__).resolve().parent.parent / "systemd" / "hallq-manager.service").read_text(encoding="utf-8")
    [line] = [line for line in unit.splitlines() if line.startswith("LimitNOFILE=")]
    limit = int(line.removeprefix("LimitNOFILE="))
    assert phone_bound(open_files_limit=limit, requested=manager_config.DEFAULT_PHONE_CONNECTIONS) == \
        manager_config.DEFAULT_PHONE_CONNECTIONS


def test_the_example_config_documents_the_phones_table() -> None:
    example = (Path(__file__).resolve().parent.parent / "config" / "manager.example.toml").read_text(encoding="utf-8")
    assert "[phones]" in example and "max_connections" in example and "guest_listen" in example


def test_the_rating_window_closes_on_the_halls_clock() -> None:
    async def scenario() -> tuple[bool, bool]:
        async with hall(*SERVED) as h:
            before = (await (await h.get(f"/t/{token(1)}/status")).json())["rating_open"]
            h.minutes[0] = 56
            after = (await (await h.get(f"/t/{token(1)}/status")).json())["rating_open"]
            return before, after

    assert run(scenario) == (True, False)
