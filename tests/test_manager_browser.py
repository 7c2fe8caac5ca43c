"""The hall manager's pages in a real headless Chromium against a live hall: Mosquitto, the controller and the
manager's web service, each a process of its own; accounts made with the real ``hallq-manager users add``.

Screenshots of the live view and the reports page (1366×768 and 1920×1080) are saved to build/screenshots/ for
a person to look at.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Dialog

from hallq import wire
from hallq.topics import Topics
from manager.render import csv_dialect
from testbed.broker import PrivateBroker, free_port
from testbed.display import Kiosk, chromium_path
from testbed.manager import ManagerProcess, add_user, manager_toml
from tests.support import HALL_CONFIG, HALL_ID, ROOT, ControllerProcess, Probe

SCREENSHOTS = ROOT / "build" / "screenshots"
TOPICS = Topics(hall=HALL_ID)
PASSWORD = "Mật khẩu của Lan 2026"
VIEWER_PASSWORD = "mật khẩu của Minh"
SIZES = ((1366, 768), (1920, 1080))

try:
    chromium_path()
except RuntimeError:
    pytest.skip("chromium is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def kiosk() -> Iterator[Kiosk]:
    with Kiosk(width=1366, height=768) as browser:
        yield browser


@pytest.fixture
def browser(kiosk: Kiosk) -> Kiosk:
    """The module's Chromium, logged out (the cookies of 127.0.0.1 do not depend on the port), at 1366×768."""
    kiosk.tab.context.clear_cookies()
    kiosk.tab.set_viewport_size({"width": 1366, "height": 768})
    return kiosk


@pytest.fixture
def manager(broker: PrivateBroker, controller: ControllerProcess, tmp_path: Path) -> Iterator[ManagerProcess]:
    """The manager of the controller's hall, with the account ``lan`` (manager role)."""
    hall = tmp_path / "hall.toml"
    hall.write_text(re.sub(r'(?m)^state_dir = .*$', f'state_dir = "{controller.state_dir}"',
                           HALL_CONFIG.read_text(encoding="utf-8")), encoding="utf-8")
    port = free_port()
    config = manager_toml(tmp_path / "manager.toml", hall_config=hall, broker=broker, port=port,
                          state_dir=tmp_path / "manager")
    add_user(tmp_path / "manager" / "users.json", "lan", password=PASSWORD, role="manager")
    with ManagerProcess(config=config, port=port, log_path=tmp_path / "manager.log") as process:
        yield process


@pytest.fixture
def probe(broker: PrivateBroker, controller: ControllerProcess) -> Iterator[Probe]:
    subscriptions = [TOPICS.dispenser_ticket("d1"), *(TOPICS.counter_reply(c) for c in "1234"),
                     TOPICS.counter_state("2")]
    with Probe(broker, subscriptions=subscriptions) as client:
        yield client


def _log_in(kiosk: Kiosk, manager: ManagerProcess, name: str, password: str) -> None:
    kiosk.open(manager.url + "/")  # sends the browser to /login?next=/
    kiosk.tab.fill("input[name=name]", name)
    kiosk.tab.fill("input[name=password]", password)
    kiosk.tab.click("button[type=submit]")


def _live(kiosk: Kiosk) -> None:
    """Until the live view drew the hall from its event stream."""
    kiosk.wait_for("() => document.querySelectorAll('#counters tbody tr').length === 4 "
                   "&& document.getElementById('link').dataset.state === 'up'", timeout_s=10)


def _row_text(kiosk: Kiosk, table: str, key: str, value: str, cell: str) -> str:
    return str(kiosk.evaluate(f"(v) => document.querySelector(`#{table} tr[data-{key}=\"${{v}}\"] {cell}`)"
                              ".textContent", value))


def test_wrong_password_is_refused_on_the_page_and_the_right_one_opens_the_live_view(
    browser: Kiosk, manager: ManagerProcess
) -> None:
    _log_in(browser, manager, "lan", "not the password")
    browser.wait_for("() => document.querySelector('.problem') !== null")
    assert "Sai tên đăng nhập hoặc mật khẩu" in str(browser.evaluate(
        "() => document.querySelector('.problem').textContent"))
    assert browser.tab.url.startswith(manager.url + "/login")
    _log_in(browser, manager, "lan", PASSWORD)
    _live(browser)
    assert browser.tab.url == manager.url + "/"
    assert browser.evaluate("() => document.body.dataset.role") == "manager"
    assert browser.evaluate("() => document.getElementById('user').textContent") == "lan (manager)"


def test_a_counters_next_shows_in_the_live_view_within_a_second_without_reload(
    browser: Kiosk, manager: ManagerProcess, probe: Probe
) -> None:
    _log_in(browser, manager, "lan", PASSWORD)
    _live(browser)
    browser.evaluate("() => { window.notReloaded = true; }")
    issued = probe.request_ticket("d1", "A").ticket
    assert issued is not None
    browser.wait_for("(n) => document.querySelector('#services tr[data-service=\"A\"] td.num').textContent === '1'",
                     arg="A")
    started = time.monotonic()
    reply = probe.command("1", "next")
    assert reply.ticket is not None and reply.ticket.number == issued.number
    browser.wait_for("(n) => document.querySelector('#counters tr[data-counter=\"1\"] td.number').textContent"
                     ".startsWith(n)", arg=issued.number, timeout_s=1.0)
    assert time.monotonic() - started < 1.0
    assert browser.evaluate("() => window.notReloaded === true")
    assert _row_text(browser, "services", "service", "A", "td.num") == "0"


def test_pausing_counter_2_from_the_page_changes_the_controllers_state(
    browser: Kiosk, manager: ManagerProcess, probe: Probe
) -> None:
    state_topic = TOPICS.counter_state("2")
    assert wire.CounterState.decode(probe.on(state_topic).payload).status == "open"
    _log_in(browser, manager, "lan", PASSWORD)
    _live(browser)
    asked: list[str] = []

    def confirm(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    browser.tab.on("dialog", confirm)
    browser.tab.click("#counters button[data-counter='2'][data-verb='pause']")
    probe.expect(lambda m: m.topic == state_topic and wire.CounterState.decode(m.payload).status == "paused")
    browser.wait_for("() => document.querySelector('#counters tr[data-counter=\"2\"] td.status-paused') !== null")
    assert _row_text(browser, "counters", "counter", "2", "td:nth-child(2)") == "Tạm dừng"
    browser.wait_for("() => !document.getElementById('outcome').hidden")
    assert browser.evaluate("() => document.getElementById('outcome').textContent") == \
        "Quầy 2: Tạm dừng: Đã thực hiện"
    assert browser.evaluate("() => document.querySelector("
                            "'#counters button[data-counter=\"2\"][data-verb=\"pause\"]').disabled")
    browser.tab.remove_listener("dialog", confirm)
    assert asked == []  # pausing is undone with one click: the page does not ask
    # The controller's event, in the page's language, naming the user once.
    browser.wait_for("() => document.querySelector('#events li[data-kind=\"manager_action\"]') !== null")
    assert browser.evaluate("() => document.querySelector('#events li[data-kind=\"manager_action\"] .what')"
                            ".textContent") == "lan tạm dừng Quầy 2"


def test_the_days_csv_export_reads_back_with_its_bom_and_vietnamese_text(
    browser: Kiosk, manager: ManagerProcess, probe: Probe
) -> None:
    for service in "AAB":
        probe.request_ticket("d1", service)
    for counter in "12":
        assert probe.command(counter, "next").ticket is not None
        assert probe.command(counter, "complete").ok
    _log_in(browser, manager, "lan", PASSWORD)
    _live(browser)
    browser.tab.click("#reports-link")
    browser.tab.click(".report-form button[type=submit]")
    browser.tab.wait_for_selector("a[href^='/reports/export.csv']")
    with browser.tab.expect_download() as info:
        browser.tab.click("a[href^='/reports/export.csv']")
    download = info.value
    assert download.suggested_filename.startswith(f"hallq-{HALL_ID}-")
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    # The page is in Vietnamese: the file is for Excel under Vietnamese regional settings (";", decimal commas).
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), csv_dialect("vi")))
    cells = {cell for row in rows for cell in row}
    assert "Hộ tịch" in cells, rows[:20]
    assert "Đất đai - Xây dựng" in cells, rows[:20]
    assert rows[0] == ["Tổng hợp"], rows[:3]


def test_a_viewer_sees_the_hall_without_any_action(browser: Kiosk, manager: ManagerProcess, tmp_path: Path) -> None:
    add_user(tmp_path / "manager" / "users.json", "minh", password=VIEWER_PASSWORD, role="viewer")
    _log_in(browser, manager, "minh", VIEWER_PASSWORD)
    _live(browser)
    assert browser.evaluate("() => document.body.dataset.role") == "viewer"
    visible = browser.evaluate("() => [...document.querySelectorAll('button, input:not([type=hidden]), select')]"
                               ".filter((e) => e.offsetParent !== null).map((e) => e.id || e.textContent)")
    assert visible == ["lang-toggle", "Đăng xuất"]
    refused = browser.evaluate("async () => { const s = await (await fetch('/api/session')).json(); "
                               "const r = await fetch('/api/counter/2/pause', {method: 'POST', "
                               "headers: {'X-CSRF-Token': s.csrf}}); return [r.status, (await r.json()).error.code]; }")
    assert refused == [403, "forbidden"]


def test_screenshots_of_the_live_view_and_the_reports_page(
    browser: Kiosk, manager: ManagerProcess, probe: Probe
) -> None:
    for service in "AAAABBCC":
        probe.request_ticket("d1", service)
    probe.request_ticket("d1", "B", priority=True, category="elderly")
    for counter in "13":
        assert probe.command(counter, "next").ticket is not None
    assert probe.command("1", "complete").ok
    probe.command("1", "next")
    probe.publish(TOPICS.status("d2"), wire.Presence("online", "dispenser", printer="paper_out",
                                                     detail="cover open").encode(), retain=True)
    _log_in(browser, manager, "lan", PASSWORD)
    _live(browser)
    browser.tab.click("#counters button[data-counter='2'][data-verb='pause']")
    browser.wait_for("() => document.querySelector('#counters tr[data-counter=\"2\"] td.status-paused') !== null")
    browser.tab.fill("#notice-vi", "Hệ thống tạm ngừng cấp số từ 11:30 đến 13:00")
    browser.tab.fill("#notice-en", "No tickets from 11:30 to 13:00")
    browser.tab.click("#notice-form button[type=submit]")
    browser.wait_for("() => document.getElementById('notice-text').textContent.startsWith('Hệ thống')")
    browser.wait_for("() => !document.getElementById('alarms-section').hidden")
    browser.evaluate("() => { document.getElementById('outcome').hidden = true; }")
    for width, height in SIZES:
        browser.tab.set_viewport_size({"width": width, "height": height})
        browser.evaluate("() => window.scrollTo(0, 0)")  # the clicks above scrolled to the forms
        browser.tab.wait_for_timeout(200)  # one layout after the resize; nothing to wait on
        browser.screenshot(SCREENSHOTS / f"manager-live-{width}x{height}.png")
        browser.tab.screenshot(path=str(SCREENSHOTS / f"manager-live-{width}x{height}-full.png"), full_page=True)
    browser.tab.click("#reports-link")
    browser.tab.click(".report-form button[type=submit]")
    browser.tab.wait_for_selector("iframe.report")
    frame = browser.tab.frame_locator("iframe.report")
    frame.locator("body").wait_for()
    for width, height in SIZES:
        browser.tab.set_viewport_size({"width": width, "height": height})
        browser.tab.wait_for_timeout(200)
        browser.screenshot(SCREENSHOTS / f"manager-reports-{width}x{height}.png")
    # The printable report on its own, whole, at the wide screen's width.
    browser.tab.goto(str(browser.evaluate("() => document.querySelector('iframe.report').src")))
    browser.tab.screenshot(path=str(SCREENSHOTS / "manager-report-1920-full.png"), full_page=True)
