"""The ticket's status page in a real headless Chromium at a phone's 360×640, against a live hall: a private
Mosquitto, the controller and the manager's web service, each a process of its own. The phone reaches the page as
a citizen on the hall's guest Wi-Fi would: through ``[phones] guest_listen``.

The page follows one ticket from waiting to called (with the chime the citizen turned on) to served, is rated
"Bình thường" with a reason and a comment, and recovers by itself after the manager's service and then the broker
restart. Screenshots go to ``phone-shots/`` under the test's directory and are copied to ``/tmp/phone-shots/`` for a
person to look at.

The page's own recovery (``LocalPages``: the phone routes alone over a model fed by hand, in a thread of their
own, and the page's timers on Playwright's fake clock): a service that has just started answers 503 until it has
read the ledger, and the page comes back by itself, never saying "not of today"; a stream that falls silent is
opened again after a minute, and one that brings heartbeats is left alone.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import pytest
from aiohttp import web

from hall_controller import config as hall_config_mod
from hall_controller.engine.events import TicketRated
from hallq.topics import Topics
from manager import journal
from manager.phone_web import HEARTBEAT_S, PhonePages
from manager.phones import PhoneModel
from testbed.broker import PrivateBroker, free_port
from testbed.display import Kiosk, chromium_path
from testbed.manager import ManagerProcess, manager_toml
from tests.support import HALL_CONFIG, HALL_ID, ControllerProcess, Probe, wait_until
from tests.test_manager_phones import DAY, at, day_started, issued, spec, token

pytestmark = pytest.mark.slow

TOPICS = Topics(hall=HALL_ID)
LOOK_AT = Path("/tmp/phone-shots")  # a fixed place a person opens after the run
WIDTH, HEIGHT = 360, 640

try:
    chromium_path()
except RuntimeError:
    pytest.skip("chromium is not installed", allow_module_level=True)


@pytest.fixture
def phone() -> Iterator[Kiosk]:
    with Kiosk(width=WIDTH, height=HEIGHT) as browser:
        yield browser


@pytest.fixture
def manager(broker: PrivateBroker, controller: ControllerProcess, tmp_path: Path) -> Iterator[ManagerProcess]:
    """The manager of the controller's hall, its status pages also on a guest listener of their own."""
    hall = tmp_path / "hall.toml"
    hall.write_text(re.sub(r'(?m)^state_dir = .*$', f'state_dir = "{controller.state_dir}"',
                           HALL_CONFIG.read_text(encoding="utf-8")), encoding="utf-8")
    port = free_port()
    config = manager_toml(tmp_path / "manager.toml", hall_config=hall, broker=broker, port=port,
                          state_dir=tmp_path / "manager", phones={"guest_listen": f"127.0.0.1:{free_port()}"})
    with ManagerProcess(config=config, port=port, log_path=tmp_path / "manager.log") as process:
        yield process


def _guest_url(manager: ManagerProcess) -> str:
    text = manager.config.read_text(encoding="utf-8")
    found = re.search(r'guest_listen = "([^"]+)"', text)
    assert found is not None
    return f"http://{found.group(1)}"


def _ready(manager: ManagerProcess) -> None:
    """Until the service listens for the office and for the guests, and is connected to the broker."""
    wait_until(lambda: manager.health().get("healthy") and manager.health().get("guest_listening"), timeout_s=15,
               what="the manager healthy and listening on the guest network")


def _state(phone: Kiosk, state: str, *, timeout_s: float = 5.0, extra: str = "true") -> None:
    phone.wait_for(f"() => document.body.dataset.state === '{state}' && document.body.dataset.link === 'up' "
                   f"&& ({extra})", timeout_s=timeout_s)


def _text(phone: Kiosk, element: str) -> str:
    return str(phone.evaluate(f"() => document.getElementById('{element}').textContent"))


def _shot(phone: Kiosk, folder: Path, name: str, *, full: bool = False) -> None:
    # Nothing may run wider than the phone: a page that scrolls sideways hides half of every line.
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= WIDTH, name
    path = folder / f"{name}.png"
    folder.mkdir(parents=True, exist_ok=True)
    phone.tab.screenshot(path=str(path), full_page=full)


def test_a_phone_follows_its_ticket_from_waiting_to_rated_through_restarts(
    phone: Kiosk, broker: PrivateBroker, controller: ControllerProcess, manager: ManagerProcess, tmp_path: Path
) -> None:
    shots = tmp_path / "phone-shots"
    errors: list[str] = []
    phone.tab.on("pageerror", lambda error: errors.append(str(error)))
    phone.tab.add_init_script("window.policyRefusals = []; document.addEventListener('securitypolicyviolation', "
                              "(event) => window.policyRefusals.push(event.violatedDirective));")
    _ready(manager)
    guest = _guest_url(manager)
    subscriptions = [TOPICS.dispenser_ticket("d1"), TOPICS.counter_reply("3")]
    with Probe(broker, subscriptions=subscriptions) as kiosk_and_counter:
        for _ in range(2):
            kiosk_and_counter.request_ticket("d1", "A")
        mine = kiosk_and_counter.request_ticket("d1", "A").ticket
        assert mine is not None and mine.token is not None

        # Printed a moment ago: the page finds it at once (a fresh reading of the ledger), on the guest network.
        phone.open(f"{guest}/t/{mine.token}")
        _state(phone, "waiting", extra="document.getElementById('ahead').textContent === '2'")
        assert _text(phone, "number") == mine.number
        assert _text(phone, "service") == "Hộ tịch"
        assert _text(phone, "wait") == "khoảng 3 phút"  # 2 ahead × 300 s ÷ 3 counters open for A (1, 2, 3)
        phone.evaluate("() => { window.notReloaded = true; }")
        phone.tab.click("#sound")
        phone.wait_for("() => document.getElementById('sound').getAttribute('aria-pressed') === 'true' "
                       "&& document.body.dataset.chimes === '1'")
        _shot(phone, shots, "1-waiting")

        assert kiosk_and_counter.command("3", "next").ok
        _state(phone, "waiting", timeout_s=2, extra="document.getElementById('ahead').textContent === '1'")

        # The manager's service restarts: the page follows again by itself.
        manager.stop()
        phone.wait_for("() => document.body.dataset.link === 'down'", timeout_s=5)
        manager.start()
        _ready(manager)
        assert kiosk_and_counter.command("3", "next").ok
        _state(phone, "waiting", timeout_s=10, extra="document.getElementById('ahead').textContent === '0'")
        assert _text(phone, "headline") == "Bạn là người tiếp theo"
        assert phone.evaluate("() => window.notReloaded === true")

    # The broker restarts: the controller and the manager reconnect, and so does the page's news.
    broker.restart()
    controller.wait_ready(timeout_s=15)
    _ready(manager)
    with Probe(broker, subscriptions=subscriptions) as counter:
        started = time.monotonic()
        reply = counter.command("3", "next")
        assert reply.ticket is not None and reply.ticket.number == mine.number
        _state(phone, "called", timeout_s=2, extra="document.getElementById('call-counter').textContent === 'Quầy 3'")
        call_s = time.monotonic() - started
        assert call_s < 2.0, call_s
        assert _text(phone, "call-lead") == "Mời bạn đến"
        assert phone.evaluate("() => document.body.dataset.chimes") == "2"  # the call chimed
        assert phone.evaluate("() => window.notReloaded === true")
        _shot(phone, shots, "2-called")

        assert counter.command("3", "complete").ok
        # Whether the visit was served only the ledger says: the service reads it again at once (paced).
        _state(phone, "served", timeout_s=8, extra="!document.getElementById('rating').hidden")
    assert _text(phone, "headline") == "Đã hoàn thành"
    phone.tab.check("input[name=rating][value=neutral]")
    phone.wait_for("() => !document.getElementById('why').hidden")
    phone.tab.check("#reasons input[value=waiting_time]")
    phone.tab.fill("#comment", "Nên có thêm ghế chờ cho người cao tuổi")
    phone.evaluate("() => { document.getElementById('comment').blur(); window.scrollTo(0, 0); }")
    _shot(phone, shots, "3-rating-form")
    _shot(phone, shots, "3-rating-form-full", full=True)
    phone.tab.click("#rating-send")
    phone.wait_for("() => !document.getElementById('thanks').hidden", timeout_s=8)
    assert _text(phone, "thanks-level") == "Bạn đã chọn: Bình thường"
    phone.evaluate("() => window.scrollTo(0, 0)")
    _shot(phone, shots, "4-thanks")

    # The ledger holds the rating, from the phone, with its reason and the citizen's words.
    day = date.fromisoformat(hall_config_mod.load(HALL_CONFIG).hall.business_day(mine.issued_at))
    rated = [e for e in journal.read_events(controller.state_dir / "ledger.sqlite3", first_day=day, last_day=day,
                                            kinds=(TicketRated.kind,)) if isinstance(e, TicketRated)]
    assert len(rated) == 1
    assert (rated[0].ticket_id, rated[0].level, rated[0].channel, rated[0].counter, rated[0].reasons,
            rated[0].comment) == (mine.id, "neutral", "phone", "3", ["waiting_time"],
                                  "Nên có thêm ghế chờ cho người cao tuổi")

    # English, remembered on this phone.
    phone.tab.click("#lang")
    phone.wait_for("() => document.documentElement.lang === 'en'")
    assert _text(phone, "headline") == "Done" and _text(phone, "thanks-level") == "You chose: Neutral"
    _shot(phone, shots, "5-thanks-en")
    phone.tab.click("#lang")
    assert errors == [] and phone.evaluate("() => window.policyRefusals") == []  # no script error, nothing the policy refused

    # A link that is not a ticket of today: a friendly page, on the office's listener as on the guests'.
    phone.open(f"{manager.url}/t/{'0' * 24}")
    assert phone.evaluate("() => document.querySelector('#not_found h1').textContent") == "Không tìm thấy số thứ tự"
    _shot(phone, shots, "6-unknown")

    LOOK_AT.mkdir(parents=True, exist_ok=True)
    for shot in shots.glob("*.png"):
        shutil.copy(shot, LOOK_AT / shot.name)


# --- the page's own recovery, against the phone routes alone --------------------------------------------------------

T = TypeVar("T")


class LocalPages:
    """The phone routes (``PhonePages.guest_app``) on a loopback port, served by an event loop in a thread of its
    own, over a ``PhoneModel`` fed by hand. ``requests`` lists each request's path and answer as it ends (a
    stream's when it ends); ``restart()`` stops the service and starts a new one that has not read the ledger;
    ``read_ledger()`` is its first reading. The streams' monotonic clock (``clock_s``) moves only when a test moves
    it: no heartbeat comes by itself."""

    def __init__(self, *events: Any) -> None:
        self.events = [day_started(), *events]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.clock_s = 100.0
        self.requests: list[tuple[str, int]] = []
        self.started: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.model = PhoneModel(spec())
        self.model.seed(self.events, day=DAY, seen_s=0)
        self.pages = self._pages(self.model)

    def _pages(self, model: PhoneModel) -> PhonePages:
        async def act(_command: Any) -> Any:
            raise AssertionError("not for this test")

        async def fresh() -> None:
            model.seed(self.events, day=DAY, seen_s=0)

        return PhonePages(spec=spec(), model=model, now=lambda: at(30), act=act, fresh_ledger=fresh,
                          clock=lambda: self.clock_s, gone_check_s=0.05)

    def __enter__(self) -> LocalPages:
        self._thread.start()
        self.call(self._start)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.call(self._stop)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def call(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` on the service's loop and return its result."""
        done: Future[T] = asyncio.run_coroutine_threadsafe(_awaited(work), self._loop)
        return done.result(timeout=10)

    def read_ledger(self) -> None:
        async def read() -> None:
            self.model.seed(self.events, day=DAY, seen_s=0)
        self.call(read)

    def restart(self) -> None:
        async def restart() -> None:
            await self._stop()
            self.model = PhoneModel(spec())
            self.pages = self._pages(self.model)
            await self._start()
        self.call(restart)

    def answers(self, path: str) -> list[int]:
        return [status for seen, status in list(self.requests) if seen == path]

    async def _start(self) -> None:
        app = self.pages.guest_app()

        @web.middleware
        async def record(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) \
                -> web.StreamResponse:
            self.started.append(request.path)
            response = await handler(request)
            self.requests.append((request.path, response.status))
            return response

        app.middlewares.append(record)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0,
                                     handler_cancellation=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def _stop(self) -> None:
        self.pages.streams.close()  # as the manager's service does when it stops
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def _awaited(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


@pytest.fixture
def local_pages() -> Iterator[LocalPages]:
    with LocalPages(issued(1, 0), issued(2, 1)) as pages:
        yield pages


def _until(phone: Kiosk, expression: str, *, timeout_s: float = 5.0) -> None:
    """Until ``expression`` is true on the page, asked from here: with the page's clock fake, its animation
    frames (``Kiosk.wait_for``'s polling) stand still."""
    wait_until(lambda: bool(phone.evaluate(expression)), timeout_s=timeout_s, what=expression)


FOLLOWING = ("() => document.body.dataset.state === 'waiting' && document.body.dataset.link === 'up' "
             "&& document.getElementById('ahead').textContent === '1'")


def _follow(phone: Kiosk, pages: LocalPages) -> None:
    """The page of ticket 2 open, its timers on the fake clock, following (1 ahead)."""
    phone.tab.clock.install()
    phone.open(f"{pages.url}/t/{token(2)}")
    _until(phone, FOLLOWING)


def test_a_page_whose_service_restarts_waits_through_the_503s_and_is_never_told_not_of_today(
        phone: Kiosk, local_pages: LocalPages) -> None:
    events, status = f"/t/{token(2)}/events", f"/t/{token(2)}/status"
    _follow(phone, local_pages)
    local_pages.restart()  # the new service has not read the ledger yet
    # The stream dropped: the browser opens it again by itself (retry: 2 s), is refused (503), and looks at
    # the status once (503, Retry-After: 5): try again later, not "gone".
    wait_until(lambda: 503 in local_pages.answers(status), timeout_s=10, what="the page's look at /status")
    assert 503 in local_pages.answers(events)
    _until(phone, "() => document.body.dataset.link === 'down'")
    assert phone.evaluate("() => document.body.dataset.state") == "waiting"
    local_pages.read_ledger()
    phone.tab.clock.fast_forward(8000)  # past Retry-After, with its jitter (at most × 1.5)
    _until(phone, FOLLOWING)
    assert local_pages.answers(status) == [503]


def test_a_stream_that_falls_silent_is_opened_again_after_a_minute_and_one_with_heartbeats_is_not(
        phone: Kiosk, local_pages: LocalPages) -> None:
    events = f"/t/{token(2)}/events"
    _follow(phone, local_pages)
    assert local_pages.started.count(events) == 1
    # The server's heartbeat: a ping event 25 s after the status (the streams' clock moved by hand).
    phone.tab.clock.fast_forward(30_000)
    local_pages.clock_s += HEARTBEAT_S
    time.sleep(0.3)  # the stream looks every 0.05 s: the ping is on its way; nothing on the page waits for it
    phone.tab.clock.fast_forward(40_000)  # 70 s after the status, 40 s after the ping: alive, left alone
    assert local_pages.started.count(events) == 1
    # Then silence (a half-open connection): over 60 s without any event, the page opens its stream again.
    phone.tab.clock.fast_forward(30_000)
    wait_until(lambda: local_pages.started.count(events) == 2, timeout_s=5, what="the stream opened again")
    _until(phone, FOLLOWING)
