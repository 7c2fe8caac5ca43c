"""The manager's web service end to end: a real broker, the real controller, the service on a free port, and an
HTTP client that logs in like a browser (login form, session cookie, CSRF token)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hall_controller import config as hall_config_mod
from hallq import wire
from hallsim.history import write_history
from manager import cache
from manager import config as manager_config
from manager import service as manager_service
from manager.service import ManagerService
from manager.users import Users
from testbed.broker import PrivateBroker, free_port
from tests.support import HALL_CONFIG, ControllerProcess, Probe

pytestmark = pytest.mark.slow

PASSWORD = "mật-khẩu-đủ-dài"


@pytest.fixture
def hall_config(tmp_path: Path) -> Path:
    """The test hall with a manager (``[manager] id = "manager"``)."""
    text = HALL_CONFIG.read_text(encoding="utf-8")
    if not re.search(r"^\[manager\]", text, flags=re.MULTILINE):
        text += '\n[manager]\nid = "manager"\n'
    path = tmp_path / "hall.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def hall(broker: PrivateBroker, hall_config: Path, tmp_path: Path) -> Iterator[ControllerProcess]:
    with ControllerProcess(config=hall_config, broker=broker, state_dir=tmp_path / "state") as process:
        yield process


@pytest.fixture
def manager_toml(broker: PrivateBroker, hall_config: Path, tmp_path: Path) -> Path:
    users_file = tmp_path / "manager" / "users.json"
    users = Users.load(users_file)
    users.add("lan", PASSWORD, "manager")
    users.add("minh", PASSWORD, "viewer")
    path = tmp_path / "manager.toml"
    path.write_text(f"""[manager]
hall_config = "{hall_config}"
ledger = "{tmp_path / 'state' / 'ledger.sqlite3'}"
listen = "127.0.0.1:{free_port()}"
users_file = "{users_file}"
state_dir = "{tmp_path / 'manager'}"

[mqtt]
broker = "{broker.address}"
""", encoding="utf-8")
    return path


@dataclass
class Office:
    """A browser of the hall's office, logged in as one user."""

    http: aiohttp.ClientSession
    base: str
    csrf: str

    async def post(self, path: str, body: dict[str, Any] | None = None, *, csrf: bool = True) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf} if csrf else {}
        async with self.http.post(self.base + path, json=body or {}, headers=headers) as response:
            return response.status, await response.json()

    async def live(self) -> dict[str, Any]:
        async with self.http.get(self.base + "/api/live") as response:
            assert response.status == 200
            data: dict[str, Any] = await response.json()
            return data


@asynccontextmanager
async def running(config_path: Path) -> AsyncIterator[tuple[ManagerService, str]]:
    cfg = manager_config.load(config_path)
    service = ManagerService(cfg, users=Users.load(cfg.users_file))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    deadline = time.monotonic() + 10
    while not (service.listening and service.link is not None and service.link.up.is_set()):
        assert time.monotonic() < deadline, "the manager did not start"
        assert not task.done(), task
        await asyncio.sleep(0.02)
    try:
        yield service, cfg.url.rstrip("/")
    finally:
        stop.set()
        await task


@asynccontextmanager
async def logged_in(base: str, name: str) -> AsyncIterator[Office]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(base + "/login") as response:
            page = await response.text()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token
        async with http.post(base + "/login", data={"name": name, "password": PASSWORD, "csrf_token": token.group(1),
                                                    "next": "/"}) as response:
            assert response.status == 200, await response.text()
        async with http.get(base + "/api/session") as response:
            session = await response.json()
        yield Office(http, base, session["csrf"])


async def _in_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, lambda: function(*args, **kwargs))


def _counter(view: dict[str, Any], counter: str) -> dict[str, Any]:
    return next(c for c in view["counters"] if c["counter"] == counter)


def test_the_live_stream_shows_a_counters_next_ticket_within_a_second(
        broker: PrivateBroker, hall: ControllerProcess, manager_toml: Path) -> None:
    async def scenario() -> float:
        async with running(manager_toml) as (_service, base), logged_in(base, "minh") as office, \
                office.http.get(base + "/events") as stream:
            with Probe(broker, subscriptions=["qms/test-hall/dispenser/d1/ticket", "qms/test-hall/counter/3/reply"]) \
                    as probe:
                reply = await _in_thread(probe.request_ticket, "d1", "A")
                number = reply.ticket.number
                started = time.monotonic()
                answer = await _in_thread(probe.command, "3", "next")
                assert answer.ok, answer
                try:
                    async for line in stream.content:
                        if line.startswith(b"data: ") and _counter(json.loads(line[6:]), "3")["number"] == number:
                            return time.monotonic() - started
                finally:
                    # The stream never ends by itself: close it here, or leaving its context waits for its end
                    # while the manager that would end it is only stopped after.
                    stream.close()
                raise AssertionError("the stream ended")

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) < 1.0


def test_a_restarted_manager_knows_the_days_work_from_the_ledger(
        broker: PrivateBroker, hall: ControllerProcess, manager_toml: Path) -> None:
    with Probe(broker, subscriptions=["qms/test-hall/dispenser/d1/ticket", "qms/test-hall/counter/3/reply"]) as probe:
        probe.request_ticket("d1", "A")
        assert probe.command("3", "next").ok
        assert probe.command("3", "complete").ok
        probe.request_ticket("d1", "A", priority=True, category="elderly")

    async def scenario() -> dict[str, Any]:
        async with running(manager_toml) as (service, base), logged_in(base, "minh") as office:
            deadline = time.monotonic() + 5
            while service.model.ledger_day is None:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            return await office.live()

    view = asyncio.run(scenario())
    assert _counter(view, "3")["served_today"] == 1
    service_a = next(s for s in view["services"] if s["service"] == "A")
    assert service_a["categories"] == {"elderly": 1}
    assert next(d for d in view["devices"] if d["client"] == "d1")["last_ticket"] == "A002"


def test_presence_and_a_kiosk_out_of_paper_show_as_an_alarm(
        broker: PrivateBroker, hall: ControllerProcess, manager_toml: Path) -> None:
    async def scenario() -> dict[str, Any]:
        async with running(manager_toml) as (_service, base), logged_in(base, "minh") as office:
            with Probe(broker) as probe:
                probe.publish("qms/test-hall/status/d2", wire.Presence("online", "dispenser", printer="paper_out",
                                                                       detail="paper roll empty").encode(), retain=True)
                deadline = time.monotonic() + 2
                while True:
                    view = await office.live()
                    if any(a["kind"] == "printer_paper_out" for a in view["alarms"]):
                        return view
                    assert time.monotonic() < deadline, view["alarms"]
                    await asyncio.sleep(0.05)

    view = asyncio.run(scenario())
    assert next(d for d in view["devices"] if d["client"] == "controller")["state"] == "online"


def test_pausing_a_counter_round_trips_through_the_controller(
        broker: PrivateBroker, hall: ControllerProcess, manager_toml: Path) -> None:
    async def scenario() -> tuple[tuple[int, Any], dict[str, Any]]:
        async with running(manager_toml) as (_service, base), logged_in(base, "lan") as office:
            answer = await office.post("/api/counter/2/pause")
            deadline = time.monotonic() + 2
            while _counter(view := await office.live(), "2")["status"] != "paused":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            return answer, view

    (status, body), view = asyncio.run(scenario())
    assert (status, body) == (200, {"ok": True, "error": None})
    assert any(e["kind"] == "manager_action" and e["user"] == "lan" for e in view["events"])


def test_a_refused_action_answers_the_controllers_code_in_plain_words(
        broker: PrivateBroker, hall: ControllerProcess, manager_toml: Path) -> None:
    async def scenario() -> tuple[int, Any]:
        async with running(manager_toml) as (_service, base), logged_in(base, "lan") as office:
            return await office.post("/api/ticket/A999/void")

    status, body = asyncio.run(scenario())
    assert status == 200 and body["ok"] is False
    assert body["error"]["code"] == "unknown_ticket"
    assert body["error"]["label"].startswith("Không tìm thấy số này")
    assert body["error"]["message"]


def test_voiding_a_waiting_ticket_and_setting_and_clearing_the_notice(
        broker: PrivateBroker, hall: ControllerProcess, manager_toml: Path) -> None:
    with Probe(broker, subscriptions=["qms/test-hall/dispenser/d1/ticket"]) as probe:
        ticket = probe.request_ticket("d1", "A").ticket
    assert ticket is not None

    async def scenario() -> list[tuple[int, Any]]:
        async with running(manager_toml) as (_service, base), logged_in(base, "lan") as office:
            answers = [await office.post(f"/api/ticket/{ticket.number}/void"),
                       await office.post("/api/notice", {"text_vi": "Tạm dừng 10 phút", "text_en": "Paused"})]
            deadline = time.monotonic() + 2
            while (await office.live())["notice"] is None:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            answers.append(await office.post("/api/notice/clear"))
            while (await office.live())["notice"] is not None:
                assert time.monotonic() < deadline + 2
                await asyncio.sleep(0.05)
            return answers

    assert [body for _status, body in asyncio.run(scenario())] == [{"ok": True, "error": None}] * 3


def test_transferring_a_waiting_ticket_to_another_service(
        broker: PrivateBroker, hall: ControllerProcess, manager_toml: Path) -> None:
    with Probe(broker, subscriptions=["qms/test-hall/dispenser/d1/ticket"]) as probe:
        ticket = probe.request_ticket("d1", "A").ticket
    assert ticket is not None

    async def scenario() -> list[tuple[int, Any]]:
        async with running(manager_toml) as (_service, base), logged_in(base, "lan") as office:
            return [await office.post(f"/api/ticket/{ticket.number}/transfer", {"service": "C"}),
                    await office.post("/api/counter/2/pause")]

    assert [body for _status, body in asyncio.run(scenario())] == [{"ok": True, "error": None}] * 2


def test_a_viewer_sees_but_may_not_act(broker: PrivateBroker, hall: ControllerProcess, manager_toml: Path) -> None:
    async def scenario() -> tuple[tuple[int, Any], int]:
        async with running(manager_toml) as (_service, base), logged_in(base, "minh") as office:
            refused = await office.post("/api/day/end")
            async with office.http.get(base + "/") as page:
                return refused, page.status

    (status, body), page_status = asyncio.run(scenario())
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert page_status == 200


def test_an_action_without_the_csrf_token_is_refused(
        broker: PrivateBroker, hall: ControllerProcess, manager_toml: Path) -> None:
    async def scenario() -> tuple[int, Any]:
        async with running(manager_toml) as (_service, base), logged_in(base, "lan") as office:
            return await office.post("/api/counter/2/pause", csrf=False)

    status, body = asyncio.run(scenario())
    assert status == 403 and body["error"]["code"] == "csrf"


def test_pages_need_a_login(broker: PrivateBroker, hall: ControllerProcess, manager_toml: Path) -> None:
    async def scenario() -> tuple[int, str, int]:
        async with running(manager_toml) as (_service, base), aiohttp.ClientSession() as http:
            async with http.get(base + "/", headers={"Accept": "text/html"}, allow_redirects=False) as page:
                location = page.headers.get("Location", "")
                page_status = page.status
            async with http.get(base + "/api/live") as api:
                return page_status, location, api.status

    assert asyncio.run(scenario()) == (302, "/login?next=%2F", 401)


def test_reports_show_inline_and_export_csv_and_xlsx(
        broker: PrivateBroker, hall: ControllerProcess, manager_toml: Path) -> None:
    with Probe(broker, subscriptions=["qms/test-hall/dispenser/d1/ticket"]) as probe:
        ticket = probe.request_ticket("d1", "A").ticket
    assert ticket is not None
    day = ticket.issued_at.date().isoformat()  # the hall's local date; the test runs after 04:00 or the day before

    async def scenario() -> list[tuple[int, str, bytes]]:
        async with running(manager_toml) as (service, base), logged_in(base, "minh") as office:
            day_now = service.spec.business_day(service.now())
            results = []
            for path in (f"/reports?period=day&day={day_now}", f"/reports/report.html?period=day&day={day_now}",
                         f"/reports/export.csv?period=day&day={day_now}",
                         f"/reports/export.xlsx?period=day&day={day_now}&lang=en",
                         "/reports/export.csv?period=week&week=nonsense"):
                async with office.http.get(base + path) as response:
                    results.append((response.status, response.content_type, await response.read()))
            return results

    page, report, csv, xlsx, bad = asyncio.run(scenario())
    assert page[0] == 200 and b'<iframe class="report"' in page[2] and b"export.xlsx" in page[2]
    assert report[0] == 200 and report[1] == "text/html"
    assert csv[0] == 200 and csv[2].startswith(b"\xef\xbb\xbf")
    assert xlsx[0] == 200 and xlsx[2].startswith(b"PK")
    assert bad[0] == 400
    assert day


def test_the_closed_days_are_summarised_into_the_report_cache_in_the_background(
        broker: PrivateBroker, hall_config: Path, manager_toml: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    controller = hall_config_mod.load(hall_config)
    (tmp_path / "state").mkdir()
    write_history(dataclasses.replace(controller, state_dir=tmp_path / "state"), days=3, tickets_per_day=60)
    monkeypatch.setattr(manager_service, "WARM_AFTER_S", 0.0)
    caplog.set_level("INFO", logger="manager.service")

    async def scenario() -> None:
        async with running(manager_toml):
            deadline = time.monotonic() + 20
            while not any("report cache warm up to" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
                await asyncio.sleep(0.05)

    asyncio.run(scenario())
    # Every closed day is in the cache (today is not: it is still open).
    db = sqlite3.connect(f"file:{tmp_path / 'manager' / cache.CACHE_FILE}?mode=ro", uri=True)
    try:
        cached = {row[0] for row in db.execute("SELECT day FROM days")}
    finally:
        db.close()
    assert len(cached) >= 2  # three past days, less a Sunday


def test_the_manager_reads_the_audit_of_profiles_and_a_viewer_cannot(
        broker: PrivateBroker, hall: ControllerProcess, manager_toml: Path, tmp_path: Path) -> None:
    from datetime import date, datetime  # noqa: PLC0415

    from hall_controller import profiles  # noqa: PLC0415
    from hallq.cards import CitizenCard, parse  # noqa: PLC0415

    key = tmp_path / "profile.key"
    key.write_text(profiles.new_key_text(), encoding="ascii")
    store = profiles.ProfileStore(tmp_path / "state" / profiles.FILE_NAME, profiles.load_key(key), keep=("name",))
    card = parse("001050012345||Nguyễn Văn An|01011950|Nam|Hà Nội|15082021", today=date(2026, 12, 5))
    assert isinstance(card, CitizenCard)
    at = datetime.fromisoformat("2026-12-05T09:15:00+07:00")
    seen = store.citizen(card, now=at)
    store.show(seen.ref, ticket_id="t1", counter="3", number="A007", today=at.date(), now=at)
    store.close()

    async def scenario() -> tuple[int, str, int]:
        async with running(manager_toml) as (_service, base):
            async with logged_in(base, "lan") as office, office.http.get(base + "/audit") as response:
                page = (response.status, await response.text())
            async with logged_in(base, "minh") as viewer, viewer.http.get(base + "/audit") as response:
                return page[0], page[1], response.status

    status, page, viewer_status = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert status == 200 and viewer_status == 403
    assert "Quầy 3" in page and "A007" in page and seen.ref[:8] in page and "09:15:00" in page and ">xem<" in page
    assert "Nguy" not in page and "001050012345" not in page
