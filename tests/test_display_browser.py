"""The hall page in a real headless Chromium against a live hall: Mosquitto, the controller, the display service.

Screenshots (1920×1080) are saved to build/screenshots/ for a person to look at.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from display.harness import DisplayProcess, Kiosk, chromium_path
from hallq import wire
from hallq.broker import PrivateBroker, free_port
from hallq.topics import Topics
from tests.support import FIXTURES, HALL_ID, ROOT, ControllerProcess, Probe

SCREENSHOTS = ROOT / "build" / "screenshots"
TOPICS = Topics(hall=HALL_ID)

try:
    chromium_path()
except RuntimeError:
    pytest.skip("chromium is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def kiosk() -> Iterator[Kiosk]:
    with Kiosk() as browser:
        yield browser


@pytest.fixture
def display(broker: PrivateBroker, controller: ControllerProcess, tmp_path: Path) -> Iterator[DisplayProcess]:
    with DisplayProcess(config=FIXTURES / "display.toml", broker_address=broker.address, port=free_port(),
                        log_path=tmp_path / "display.log") as process:
        yield process


@pytest.fixture
def probe(broker: PrivateBroker, controller: ControllerProcess) -> Iterator[Probe]:
    replies = [TOPICS.counter_reply(c) for c in ("1", "2", "3", "4")]
    with Probe(broker, subscriptions=[TOPICS.dispenser_ticket("d1"), *replies]) as client:
        yield client


def _newest(kiosk: Kiosk) -> str:
    return str(kiosk.evaluate("() => document.getElementById('newest-number').textContent"))


def _show(kiosk: Kiosk, number: str, *, timeout_s: float = 5.0, element: str = "newest-number") -> None:
    kiosk.wait_for(f"(n) => document.getElementById('{element}').textContent === n", arg=number, timeout_s=timeout_s)


def test_next_appears_on_the_page_within_a_second(kiosk: Kiosk, display: DisplayProcess, probe: Probe) -> None:
    for service in "AAABBCAB":
        probe.request_ticket("d1", service)
    probe.request_ticket("d1", "B", priority=True, category="elderly")
    kiosk.open(display.url)
    kiosk.wait_for("() => window.hallq.screens > 0 && !document.body.classList.contains('waiting-board')")
    for counter in ("1", "2", "3"):
        probe.command(counter, "next")
    _show(kiosk, "A002")
    issued = probe.request_ticket("d1", "A").ticket
    assert issued is not None
    started = time.monotonic()
    reply = probe.command("2", "next")
    assert reply.ticket is not None
    _show(kiosk, reply.ticket.number, timeout_s=1.0)
    assert time.monotonic() - started < 1.0
    recent = kiosk.evaluate("() => [...document.querySelectorAll('#recent .number')].map(e => e.textContent)")
    assert recent[:3] == ["A002", "A001", "UB001"]
    tiles = kiosk.evaluate("() => Object.fromEntries([...document.querySelectorAll('.tile')].map("
                           "t => [t.dataset.counter, t.querySelector('.number').textContent]))")
    assert tiles == {"1": "UB001", "2": reply.ticket.number, "3": "A002", "4": "Đóng"}
    kiosk.wait_for("() => !document.getElementById('newest').classList.contains('flash')", timeout_s=5)
    kiosk.screenshot(SCREENSHOTS / "display-hall.png")


def test_page_shows_the_board_again_after_the_display_service_restarts(
    kiosk: Kiosk, display: DisplayProcess, probe: Probe
) -> None:
    probe.request_ticket("d1", "A")
    probe.request_ticket("d1", "A")
    probe.command("3", "next")
    kiosk.open(display.url)
    _show(kiosk, "A001")
    kiosk.evaluate("() => { window.notReloaded = true; }")
    display.stop()
    kiosk.wait_for("() => document.body.classList.contains('offline')")
    probe.command("3", "next")  # called while the display is away: the retained board carries it
    display.start()
    _show(kiosk, "A002", timeout_s=5.0)
    assert kiosk.evaluate("() => window.notReloaded === true")
    kiosk.wait_for("() => !document.body.classList.contains('offline')")


def test_page_recovers_when_the_broker_restarts(
    kiosk: Kiosk, broker: PrivateBroker, controller: ControllerProcess, display: DisplayProcess
) -> None:
    kiosk.open(display.url)
    kiosk.wait_for("() => window.hallq.screens > 0 && !document.body.classList.contains('waiting-board')")
    broker.restart()
    kiosk.wait_for("() => document.body.classList.contains('offline')", timeout_s=5)
    kiosk.wait_for("() => !document.body.classList.contains('offline')", timeout_s=15)
    controller.wait_ready(timeout_s=15)
    with Probe(broker, subscriptions=[TOPICS.dispenser_ticket("d1"), TOPICS.counter_reply("1")]) as client:
        client.request_ticket("d1", "C")
        reply = client.command("1", "next")
    assert reply.ticket is not None
    _show(kiosk, reply.ticket.number)


def test_recall_flashes_again_and_announcements_play_one_after_another(
    kiosk: Kiosk, display: DisplayProcess, probe: Probe
) -> None:
    probe.request_ticket("d1", "A")
    kiosk.open(display.url)
    kiosk.wait_for("() => window.hallq.screens > 0 && !document.body.classList.contains('waiting-board')")
    probe.command("2", "next")
    probe.command("2", "recall")
    kiosk.wait_for("() => document.getElementById('newest').classList.contains('recall')")
    assert kiosk.wait_for("() => window.hallq.flashed.length >= 2 && window.hallq.flashed") == [1, 2]
    # The recall arrived while the first announcement played: it starts only after that one ended.
    played = kiosk.wait_for("() => window.hallq.played.length >= 2 && window.hallq.played", timeout_s=15)
    assert [p["number"] for p in played] == ["A001", "A001"]
    assert played[0]["error"] is None, played
    assert played[0]["end"] is not None and played[1]["start"] >= played[0]["end"]
    assert played[0]["end"] - played[0]["start"] > 2000  # it really played (chime and voice), in ms
    wav = kiosk.evaluate("async () => { const r = await fetch('/audio/2-A001.wav'); "
                         "return [r.status, r.headers.get('content-type'), (await r.arrayBuffer()).byteLength]; }")
    assert wav[0] == 200 and wav[1] == "audio/wav" and wav[2] > 50_000


def test_counter_page_shows_its_own_number(kiosk: Kiosk, display: DisplayProcess, probe: Probe) -> None:
    probe.request_ticket("d1", "A")
    probe.request_ticket("d1", "B")
    kiosk.open(display.url + "/counter/2")
    kiosk.wait_for("() => window.hallq.screens > 0")
    assert kiosk.evaluate("() => document.getElementById('one-name').textContent") == "Quầy 2"
    probe.command("1", "next")  # another counter: this page does not change
    probe.command("2", "next")
    _show(kiosk, "B001", element="one-number", timeout_s=1.0)
    kiosk.wait_for("() => !document.getElementById('one-counter').classList.contains('flash')", timeout_s=5)
    kiosk.screenshot(SCREENSHOTS / "display-counter.png")
    kiosk.open(display.url + "/counter/4")
    kiosk.wait_for("() => document.getElementById('one-status').textContent === 'Đóng · Closed'")


def _busy_board() -> wire.Board:
    """A district hall at mid-morning: twenty counters (one closed, one paused), six services, long numbers."""
    at = datetime.now(timezone(timedelta(hours=7)))
    names = [("Hộ tịch", "Civil status registration"), ("Đất đai - Xây dựng", "Land and construction"),
             ("Đăng ký kinh doanh", "Business registration"), ("Chứng thực", "Certification"),
             ("Lao động - Thương binh và Xã hội", "Labour, invalids and social affairs"), ("Trả kết quả", "Results")]
    services = tuple(wire.BoardService(service="ABCDEF"[i], name_vi=vi, name_en=en, regular=10 + 7 * i,
                                       priority=i % 3) for i, (vi, en) in enumerate(names))

    def name(i: int) -> str:
        return f"Quầy {i} - Ưu tiên" if i < 3 else f"Quầy {i}"

    counters = tuple(
        wire.BoardCounter(counter=str(i), name=name(i), status="closed" if i in (7, 19) else "paused" if i == 12
                          else "open", number=None if i in (7, 12, 19) else "UB1234" if i == 4
                          else f"{'ABCDEF'[i % 6]}{100 + i:03d}", service=None)
        for i in range(1, 21))
    calls = tuple(wire.Call(seq=120 - k, number="UB1005" if k == 0 else f"{'ABCDEF'[k % 6]}{115 - k:03d}",
                            counter=str(k + 1), counter_name=name(k + 1), service="A", priority=k == 0,
                            recall=k == 0, at=at, ticket_id=f"t{k}") for k in range(10))
    return wire.Board(hall=HALL_ID, hall_name_vi="Trung tâm Phục vụ hành chính công Quận Hoàn Kiếm",
                      hall_name_en="Hoan Kiem District Public Administrative Service Centre", seq=120, calls=calls,
                      counters=counters, services=services, at=at, business_day=at.date().isoformat())


def test_twenty_counters_and_six_services_fit_a_1080p_screen(
    kiosk: Kiosk, broker: PrivateBroker, tmp_path: Path
) -> None:
    with Probe(broker) as publisher:
        assert publisher.link.publish_and_wait(TOPICS.board(), _busy_board().encode(), retain=True)
    with DisplayProcess(config=FIXTURES / "display.toml", broker_address=broker.address, port=free_port(),
                        log_path=tmp_path / "display.log") as display:
        kiosk.open(display.url)
        kiosk.wait_for("() => window.hallq.screens > 0 && !document.body.classList.contains('waiting-board')")
        # No region cut at the bottom, no number cut at the side (names may end in an ellipsis).
        too_tall = kiosk.evaluate("() => [...document.querySelectorAll('header, main, footer, section')]"
                                  ".filter(e => e.scrollHeight > e.clientHeight + 1).map(e => e.className)")
        too_wide = kiosk.evaluate("() => [...document.querySelectorAll('#newest-number, .tile .number')]"
                                  ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)")
        assert (too_tall, too_wide) == ([], [])
        assert kiosk.evaluate("() => document.documentElement.scrollHeight") <= 1080
        assert kiosk.evaluate("() => document.querySelectorAll('.tile').length") == 20
        assert _newest(kiosk) == "UB1005"
        kiosk.screenshot(SCREENSHOTS / "display-hall-20-counters.png")
