"""The manager's live model (manager/live.py): pure, driven with fixed instants, no broker and no ledger file."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hall_controller.engine.events import (
    DayStarted,
    Event,
    TicketCalled,
    TicketFinished,
    TicketIssued,
    TicketTransferred,
)
from hall_controller.engine.spec import CounterSpec, DispenserSpec, HallSpec, ServiceSpec
from hallq import wire
from manager.live import EVENTS_KEPT, OBSERVED_KEEP_S, LiveModel

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
T0 = datetime(2026, 12, 4, 8, 0, tzinfo=ZONE)
DAY = "2026-12-04"


def spec() -> HallSpec:
    return HallSpec(
        id="h1", name_vi="Sảnh", name_en="Hall",
        services=(ServiceSpec("A", "Hộ tịch", "Civil status", "A", target_wait_s=600),
                  ServiceSpec("B", "Đất đai", "Land", "B")),
        counters=(CounterSpec("1", "Quầy 1", ("A", "B")), CounterSpec("2", "Quầy 2", ("A",))),
        dispensers=(DispenserSpec("kiosk-1", "Máy 1"),), default_service_time_s=300)


def model() -> LiveModel:
    return LiveModel(spec(), controller_id="controller", manager_id="manager", offline_alarm_s=120)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def issued(ticket_id: str, number: str, minutes: float, *, service: str = "A", priority: bool = False,
           category: str | None = None, dispenser: str = "kiosk-1") -> TicketIssued:
    return TicketIssued(at=at(minutes), ticket_id=ticket_id, day=DAY, dispenser=dispenser, request_id=ticket_id,
                        service=service, number=number, sequence=service, value=int(number[1:]), priority=priority,
                        category=category, order=0, ahead=0, estimated_wait_s=0)


def called(ticket_id: str, counter: str, minutes: float, *, recall: bool = False) -> TicketCalled:
    return TicketCalled(at=at(minutes), ticket_id=ticket_id, counter=counter, seq=1, recall=recall)


def finished(ticket_id: str, counter: str, minutes: float, outcome: str = "served") -> TicketFinished:
    return TicketFinished(at=at(minutes), ticket_id=ticket_id, counter=counter, outcome=outcome)  # type: ignore[arg-type]


def serving(ticket_id: str, number: str, minutes: float) -> wire.ServingTicket:
    return wire.ServingTicket(id=ticket_id, number=number, service="A", priority=False, called_at=at(minutes))


def state(counter: str, ticket: wire.ServingTicket | None, minutes: float, status: str = "open") -> wire.CounterState:
    return wire.CounterState(counter=counter, name=f"Quầy {counter}", status=status,  # type: ignore[arg-type]
                             services=("A",), ticket=ticket, waiting=(), at=at(minutes))


def board(regular: int, priority: int) -> wire.Board:
    return wire.Board(hall="h1", hall_name_vi="Sảnh", hall_name_en="Hall", seq=0, calls=(), counters=(),
                      services=(wire.BoardService("A", "Hộ tịch", "Civil status", regular, priority),
                                wire.BoardService("B", "Đất đai", "Land", 0, 0)), at=at(0), business_day=DAY)


def seeded(events: list[Event], *, seen_s: float = 0.0) -> LiveModel:
    live = model()
    live.seed([DayStarted(at=at(-60), day=DAY), *events], day=DAY, seen_s=seen_s)
    return live


def counter_row(live: LiveModel, counter: str, minutes: float) -> dict[str, object]:
    return next(r for r in live.view(at(minutes))["counters"] if r["counter"] == counter)


def service_row(live: LiveModel, service: str, minutes: float) -> dict[str, object]:
    return next(r for r in live.view(at(minutes))["services"] if r["service"] == service)


def device_row(live: LiveModel, client: str, minutes: float) -> dict[str, object]:
    return next(r for r in live.view(at(minutes))["devices"] if r["client"] == client)


def test_a_restart_keeps_the_days_served_count_and_median_service_time_from_the_ledger() -> None:
    live = seeded([issued("t1", "A001", 0), issued("t2", "A002", 1), issued("t3", "A003", 2),
                   called("t1", "1", 3), finished("t1", "1", 5), called("t2", "1", 6), finished("t2", "1", 10),
                   called("t3", "1", 11), finished("t3", "1", 12, "no_show")])
    row = counter_row(live, "1", 20)
    assert row["served_today"] == 2
    assert row["median_service_s"] == 180  # 2 min and 4 min; the no-show is not a service


def test_a_ticket_a_counter_stops_serving_counts_as_served_until_the_ledger_says_otherwise() -> None:
    live = seeded([issued("t1", "A001", 0)])
    live.on_counter_state(state("1", serving("t1", "A001", 1), 1), seen_s=10)
    live.on_counter_state(state("1", None, 4), seen_s=20)
    assert counter_row(live, "1", 5)["served_today"] == 1
    assert counter_row(live, "1", 5)["median_service_s"] == 180
    live.seed([DayStarted(at=at(-60), day=DAY), issued("t1", "A001", 0), called("t1", "1", 1),
               finished("t1", "1", 4, "no_show")], day=DAY, seen_s=30)
    assert counter_row(live, "1", 5)["served_today"] == 0


def test_news_the_ledger_reading_had_not_caught_up_with_is_kept() -> None:
    live = seeded([issued("t1", "A001", 0)])
    live.on_counter_state(state("1", serving("t1", "A001", 1), 1), seen_s=10)
    live.on_counter_state(state("1", None, 4), seen_s=11)
    live.seed([DayStarted(at=at(-60), day=DAY), issued("t1", "A001", 0)], day=DAY, seen_s=12)  # read before
    assert counter_row(live, "1", 5)["served_today"] == 1
    assert service_row(live, "A", 5)["oldest_number"] is None


def test_observed_news_is_forgotten_once_any_reading_must_hold_it() -> None:
    live = seeded([issued("t1", "A001", 0)])
    live.on_counter_state(state("1", serving("t1", "A001", 1), 1), seen_s=10)
    live.on_counter_state(state("1", None, 4), seen_s=11)
    live.seed([DayStarted(at=at(-60), day=DAY), issued("t1", "A001", 0)], day=DAY, seen_s=12 + OBSERVED_KEEP_S)
    assert counter_row(live, "1", 5)["served_today"] == 0


def test_the_ticket_being_served_shows_with_how_long_it_has_been_served() -> None:
    live = model()
    live.on_counter_state(state("2", serving("t9", "A009", 1), 1), seen_s=0)
    row = counter_row(live, "2", 3.5)
    assert (row["number"], row["serving_s"], row["status"]) == ("A009", 150, "open")


def test_counter_status_follows_its_retained_state() -> None:
    live = model()
    live.on_counter_state(state("1", None, 1, status="paused"), seen_s=0)
    assert counter_row(live, "1", 2)["status"] == "paused"


def test_waiting_counts_per_lane_come_from_the_board() -> None:
    live = seeded([issued("t1", "A001", 0)])
    live.on_board(board(7, 2))
    row = service_row(live, "A", 1)
    assert (row["regular"], row["priority"]) == (7, 2)


def test_priority_categories_and_the_oldest_wait_come_from_the_ledgers_waiting_tickets() -> None:
    live = seeded([issued("t1", "A001", 0), issued("t2", "A002", 1, priority=True, category="elderly"),
                   issued("t3", "A003", 2, priority=True, category="pregnant"),
                   issued("t4", "A004", 3, priority=True, category="elderly"), called("t1", "1", 4)])
    row = service_row(live, "A", 6)
    assert row["categories"] == {"elderly": 2, "pregnant": 1}
    assert (row["oldest_number"], row["oldest_wait_s"]) == ("A002", 300)


def test_a_ticket_called_since_the_reading_no_longer_counts_as_waiting() -> None:
    live = seeded([issued("t1", "A001", 0), issued("t2", "A002", 1)])
    live.on_call(wire.Call(seq=1, number="A001", counter="1", counter_name="Quầy 1", service="A", priority=False,
                           recall=False, at=at(2), ticket_id="t1"), seen_s=5)
    assert service_row(live, "A", 3)["oldest_number"] == "A002"


def test_a_transferred_ticket_waits_in_its_new_service_from_the_transfer() -> None:
    live = seeded([issued("t1", "A001", 0), called("t1", "1", 1),
                   TicketTransferred(at=at(2), ticket_id="t1", counter="1", to_service="B", order=0)])
    assert service_row(live, "A", 5)["oldest_number"] is None
    assert (service_row(live, "B", 5)["oldest_number"], service_row(live, "B", 5)["oldest_wait_s"]) == ("A001", 180)


def test_the_oldest_wait_past_the_services_target_is_an_alarm() -> None:
    live = seeded([issued("t1", "A001", 0)])
    assert not service_row(live, "A", 9)["alarm"]
    assert service_row(live, "A", 11)["alarm"]
    assert any(a["kind"] == "wait" and a["service"] == "A" for a in live.view(at(11))["alarms"])


def test_estimated_wait_is_waiting_times_service_time_over_open_counters() -> None:
    live = seeded([])
    live.on_board(board(4, 2))
    assert service_row(live, "A", 0)["estimated_wait_s"] == 6 * 300 // 2  # both counters serve A, both open


def test_no_estimate_when_no_counter_serving_the_service_is_open() -> None:
    live = seeded([])
    live.on_board(board(1, 0))
    live.on_counter_state(state("1", None, 0, status="closed"), seen_s=0)
    live.on_counter_state(state("2", None, 0, status="closed"), seen_s=0)
    assert service_row(live, "A", 0)["estimated_wait_s"] is None


def test_configured_devices_are_listed_before_any_presence_and_unknown() -> None:
    clients = {(r["client"], r["state"]) for r in model().view(T0)["devices"]}
    assert {("controller", "unknown"), ("kiosk-1", "unknown"), ("counter-1", "unknown"),
            ("counter-2", "unknown")} <= clients


def test_a_device_offline_longer_than_the_alarm_time_is_an_alarm() -> None:
    live = model()
    live.on_presence("kiosk-1", wire.Presence("offline", "dispenser"), now=at(0))
    assert device_row(live, "kiosk-1", 1)["alarm"] is None
    assert device_row(live, "kiosk-1", 3)["alarm"] == "offline"


def test_a_kiosk_out_of_paper_is_an_alarm_with_its_detail() -> None:
    live = model()
    live.on_presence("kiosk-1", wire.Presence("online", "dispenser", printer="paper_out", detail="paper roll empty"),
                     now=at(0))
    alarms = live.view(at(0))["alarms"]
    assert alarms == [{"kind": "printer_paper_out", "client": "kiosk-1", "role": "dispenser", "name": "Máy 1",
                       "detail": "paper roll empty"}]


def test_paper_low_is_shown_but_is_no_alarm() -> None:
    live = model()
    live.on_presence("kiosk-1", wire.Presence("online", "dispenser", printer="paper_low"), now=at(0))
    assert device_row(live, "kiosk-1", 0)["printer"] == "paper_low"
    assert device_row(live, "kiosk-1", 0)["alarm"] is None


def test_a_device_seen_only_by_its_presence_is_listed_with_its_role() -> None:
    live = model()
    live.on_presence("display-1", wire.Presence("online", "display"), now=at(0))
    row = device_row(live, "display-1", 0)
    assert (row["role"], row["configured"], row["state"]) == ("display", False, "online")


def test_the_managers_own_presence_is_not_a_device() -> None:
    live = model()
    live.on_presence("manager", wire.Presence("online", "manager"), now=at(0))
    assert all(r["client"] != "manager" for r in live.view(at(0))["devices"])


def test_online_since_changes_only_when_the_state_does() -> None:
    live = model()
    live.on_presence("kiosk-1", wire.Presence("online", "dispenser", printer="ok"), now=at(0))
    live.on_presence("kiosk-1", wire.Presence("online", "dispenser", printer="paper_low"), now=at(5))
    assert device_row(live, "kiosk-1", 6)["since"] == wire.iso(at(0))


def test_a_kiosks_last_ticket_comes_from_the_ledger() -> None:
    live = seeded([issued("t1", "A001", 0), issued("t2", "B001", 1, service="B")])
    row = device_row(live, "kiosk-1", 2)
    assert (row["last_ticket"], row["last_ticket_at"]) == ("B001", wire.iso(at(1)))


def test_events_are_listed_newest_first_and_only_the_last_200() -> None:
    live = model()
    for i in range(EVENTS_KEPT + 5):
        live.on_event(wire.HallEvent(kind="refused", at=at(i / 60), message=f"m{i}"))
    events = live.view(at(10))["events"]
    assert len(events) == EVENTS_KEPT
    assert events[0]["message"] == f"m{EVENTS_KEPT + 4}"


def test_a_storage_fault_is_an_alarm_until_storage_is_ok() -> None:
    live = model()
    live.on_event(wire.HallEvent(kind="storage_fault", at=at(0), message="disk full"))
    assert {"kind": "storage_fault", "message": "disk full"} in live.view(at(0))["alarms"]
    live.on_event(wire.HallEvent(kind="storage_ok", at=at(1), message="ok"))
    assert live.view(at(1))["alarms"] == []


def test_a_voided_ticket_no_longer_waits() -> None:
    live = seeded([issued("t1", "A001", 0)])
    live.on_event(wire.HallEvent(kind="ticket_voided", at=at(1), message="left", number="A001"))
    assert service_row(live, "A", 2)["oldest_number"] is None


def test_the_notice_shows_until_cleared() -> None:
    live = model()
    live.on_notice(wire.Notice(text_vi="Tạm dừng", at=at(0), text_en="Paused", by="lan"))
    assert live.view(at(0))["notice"]["text_en"] == "Paused"
    live.on_notice(None)
    assert live.view(at(0))["notice"] is None


def test_every_change_moves_the_version() -> None:
    live = model()
    before = live.version
    live.on_board(board(1, 0))
    assert live.version > before


def test_an_unreadable_ledger_is_said_in_the_view() -> None:
    live = model()
    live.ledger_unreadable("there is no ledger /x")
    assert live.view(at(0))["ledger_problem"] == "there is no ledger /x"
