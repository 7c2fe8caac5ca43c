"""The hall page in a real headless Chromium against a live hall: Mosquitto, the controller, the display service.

Screenshots (1920×1080) are saved to build/screenshots/ for a person to look at.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from hallq import wire
from hallq.topics import Topics
from testbed.broker import PrivateBroker, free_port
from testbed.display import DisplayProcess, Kiosk, chromium_path
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
    kiosk.wait_for("() => window.hallq.played.length >= 1")
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


SERVICE_NAMES = [("Hộ tịch", "Civil status registration"), ("Đất đai - Xây dựng", "Land and construction"),
                 ("Đăng ký kinh doanh", "Business registration"), ("Chứng thực", "Certification"),
                 ("Lao động - Thương binh và Xã hội", "Labour, invalids and social affairs"), ("Trả kết quả", "Results"),
                 ("Tư pháp", "Justice"), ("Tài nguyên và Môi trường", "Natural resources and environment"),
                 ("Y tế", "Health"), ("Giáo dục và Đào tạo", "Education and training")]


def _hall_board(*, services: int, counters: int, seq: int) -> wire.Board:
    """A district hall at mid-morning: long service and hall names, triple-digit queues, two priority counters,
    closed and paused counters, a six-character number on counter 4, and the newest call a priority recall."""
    at = datetime.now(timezone(timedelta(hours=7)))
    letters = "ABCDEFGHKL"[:services]
    board_services = tuple(wire.BoardService(service=letters[i], name_vi=vi, name_en=en, regular=10 + 17 * i,
                                             priority=i % 3) for i, (vi, en) in enumerate(SERVICE_NAMES[:services]))

    def name(i: int) -> str:
        return f"Quầy {i} - Ưu tiên" if i < 3 else f"Quầy {i}"

    def status(i: int) -> wire.CounterStatus:
        return "closed" if i % 7 == 0 else "paused" if i % 11 == 0 else "open"

    board_counters = tuple(
        wire.BoardCounter(counter=str(i), name=name(i), status=status(i),
                          number=None if status(i) != "open" else "UB1234" if i == 4
                          else f"{letters[i % services]}{100 + i:03d}", service=None)
        for i in range(1, counters + 1))
    calls = tuple(wire.Call(seq=seq - k, number="UB1005" if k == 0 else f"{letters[k % services]}{115 - k:03d}",
                            counter=str(k % counters + 1), counter_name=name(k % counters + 1), service=letters[0],
                            priority=k == 0, recall=k == 0, at=at, ticket_id=f"t{k}") for k in range(10))
    return wire.Board(hall=HALL_ID, hall_name_vi="Trung tâm Phục vụ hành chính công Quận Hoàn Kiếm",
                      hall_name_en="Hoan Kiem District Public Administrative Service Centre", seq=seq, calls=calls,
                      counters=board_counters, services=board_services, at=at, business_day=at.date().isoformat())


# Every visible element: on the screen, inside its parent's box, its content inside its own box (text that
# ends in an ellipsis may run on sideways: long names do), and no two pieces of text on top of each other.
LAYOUT_PROBLEMS = """() => {
  const shown = (e) => {
    const style = getComputedStyle(e), box = e.getBoundingClientRect();
    return style.display !== 'none' && style.visibility !== 'hidden' && box.width > 0 && box.height > 0;
  };
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + [...e.classList].map((c) => '.' + c).join('')
    + ' "' + e.textContent.trim().slice(0, 24) + '"';
  const elements = [...document.body.querySelectorAll('*')].filter((e) => e.tagName !== 'SCRIPT' && shown(e));
  const problems = [];
  for (const e of elements) {
    const box = e.getBoundingClientRect(), style = getComputedStyle(e);
    if (box.left < -1 || box.top < -1 || box.right > innerWidth + 1 || box.bottom > innerHeight + 1)
      problems.push('off the screen: ' + name(e));
    if (style.display !== 'inline') {
      if (e.scrollHeight > e.clientHeight + 1) problems.push('cut at the bottom: ' + name(e));
      if (e.scrollWidth > e.clientWidth + 1 && style.textOverflow !== 'ellipsis') problems.push('cut at the side: ' + name(e));
    }
    const parent = e.parentElement;
    if (parent === document.body) continue;
    const outer = parent.getBoundingClientRect(), sideways = getComputedStyle(parent).textOverflow === 'ellipsis';
    if (box.top < outer.top - 1 || box.bottom > outer.bottom + 1
        || (!sideways && (box.left < outer.left - 1 || box.right > outer.right + 1)))
      problems.push('outside its box: ' + name(e));
  }
  const texts = elements.filter((e) => e.children.length === 0 && e.textContent.trim());
  for (const [i, a] of texts.entries()) {
    for (const b of texts.slice(i + 1)) {
      const p = a.getBoundingClientRect(), q = b.getBoundingClientRect();
      if (p.left < q.right - 1 && q.left < p.right - 1 && p.top < q.bottom - 1 && q.top < p.bottom - 1)
        problems.push('on top of each other: ' + name(a) + ' and ' + name(b));
    }
  }
  return problems;
}"""

# What a citizen reads from across the hall. 32 px at 1080p: on a 55-inch TV the capitals are 1.5 cm tall,
# 5 minutes of arc at 10 m, the size normal sight reads. ("Đóng", "Tạm dừng" on a tile may be smaller.)
ESSENTIAL_TEXT = ("#newest-number, #newest-counter-name, #recent .number, .tile .name, .tile.open .number, "
                  ".svc-primary, .count .total")
READABLE_PX = 32
TOO_SMALL = """([selector, least]) => [...document.querySelectorAll(selector)]
  .map((e) => [e.textContent, parseFloat(getComputedStyle(e).fontSize)]).filter(([, size]) => size < least)"""
HALL_SIZES = [(4, 6), (1, 1), (2, 3), (3, 12), (6, 20), (7, 13), (10, 1), (1, 24), (10, 24)]


def test_halls_of_one_to_ten_services_and_one_to_24_counters_fit_a_1080p_screen_readably(
    kiosk: Kiosk, broker: PrivateBroker, tmp_path: Path
) -> None:
    with Probe(broker) as publisher, DisplayProcess(config=FIXTURES / "display.toml", broker_address=broker.address,
                                                    port=free_port(), log_path=tmp_path / "display.log") as display:
        kiosk.open(display.url)
        for seq, (services, counters) in enumerate(HALL_SIZES, start=100):
            board = _hall_board(services=services, counters=counters, seq=seq)
            assert publisher.link.publish_and_wait(TOPICS.board(), board.encode(), retain=True)
            kiosk.wait_for("([services, counters]) => document.querySelectorAll('.tile').length === counters && "
                           "document.querySelectorAll('#services li').length === services", arg=[services, counters])
            hall = f"{services} services, {counters} counters"
            assert kiosk.evaluate(LAYOUT_PROBLEMS) == [], hall
            assert kiosk.evaluate(TOO_SMALL, [ESSENTIAL_TEXT, READABLE_PX]) == [], hall
            assert (_newest(kiosk), kiosk.evaluate("() => document.body.scrollHeight")) == ("UB1005", 1080), hall
            kiosk.screenshot(SCREENSHOTS / f"display-hall-{services}-services-{counters}-counters.png")


CALLS_AND_NOTICE = "#newest-number, #newest-counter-name, #recent .number, .notice-primary"
LONG_NOTICE_VI = ("Hệ thống tạm dừng từ 10 giờ 00 đến 10 giờ 15 để bảo trì đường truyền. Công dân đã lấy số vui lòng "
                  "giữ phiếu và chờ tại chỗ; các số đã gọi sẽ được gọi lại theo thứ tự sau khi hệ thống hoạt động.")
LONG_NOTICE_EN = ("The system pauses from 10:00 to 10:15 for network maintenance. Please keep your ticket and wait; "
                  "numbers already called will be called again in order.")


def test_a_notice_shows_across_the_top_without_hiding_the_calls_and_goes_when_cleared(
    kiosk: Kiosk, broker: PrivateBroker, tmp_path: Path
) -> None:
    at = datetime.now(timezone(timedelta(hours=7)))
    with Probe(broker) as publisher, DisplayProcess(config=FIXTURES / "display.toml", broker_address=broker.address,
                                                    port=free_port(), log_path=tmp_path / "display.log") as display:
        kiosk.open(display.url)
        for seq, (services, counters, vi, en) in enumerate(
                [(4, 6, "Hệ thống tạm dừng 10 phút", "The system pauses for 10 minutes"),
                 (10, 24, LONG_NOTICE_VI, LONG_NOTICE_EN)], start=100):
            notice = wire.Notice(text_vi=vi, text_en=en, at=at, by="lan")
            assert publisher.link.publish_and_wait(TOPICS.board(), _hall_board(services=services, counters=counters,
                                                                               seq=seq).encode(), retain=True)
            assert publisher.link.publish_and_wait(TOPICS.notice(), notice.encode(), retain=True)
            kiosk.wait_for("([counters, vi]) => document.querySelectorAll('.tile').length === counters && "
                           "document.getElementById('notice-primary').textContent === vi", arg=[counters, vi])
            assert kiosk.evaluate("() => document.getElementById('notice-secondary').textContent") == en
            hall = f"a notice over {services} services, {counters} counters"
            assert kiosk.evaluate(LAYOUT_PROBLEMS) == [], hall
            assert kiosk.evaluate(TOO_SMALL, [CALLS_AND_NOTICE, READABLE_PX]) == [], hall
            # The longest notice over the largest hall: the footer gives up room, its text a little of its size.
            least = READABLE_PX if services < 10 else 28
            assert kiosk.evaluate(TOO_SMALL, [ESSENTIAL_TEXT, least]) == [], hall
            assert (_newest(kiosk), kiosk.evaluate("() => document.body.scrollHeight")) == ("UB1005", 1080), hall
            kiosk.screenshot(SCREENSHOTS / f"display-hall-notice-{services}-services-{counters}-counters.png")
        assert publisher.link.publish_and_wait(TOPICS.notice(), b"", retain=True)
        kiosk.wait_for("() => !document.body.classList.contains('has-notice')")
        assert kiosk.evaluate("() => getComputedStyle(document.querySelector('.hall')).display") != "none"
        assert kiosk.evaluate(LAYOUT_PROBLEMS) == []
        header_px = kiosk.evaluate("() => document.querySelector('.top').getBoundingClientRect().height")
        assert header_px == pytest.approx(1080 * 0.12, abs=0.5)  # the hall's name back, at its height
