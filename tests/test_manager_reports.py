"""Reports of the hall manager: a scripted hall run through the real engine into a real ledger, each figure
checked against a recomputation from the script's own list of tickets."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import random
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import partial
from itertools import chain
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hall_controller.engine import CounterSpec, DispenserSpec, Engine, HallSpec, ServiceSpec
from hall_controller.engine.events import ActAtCounter, DayCorrected, Event, IssueTicket, ReportPrint, Tick
from hall_controller.ledger import Ledger
from hallq.errors import InvariantError
from manager import journal, reports
from manager.cli import main
from manager.render import (
    csv_dialect,
    render_csv,
    render_csv_table,
    render_html,
    render_text,
    render_xlsx,
    report_tables,
)
from manager.render.html import bar_chart

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
DAY1 = date(2026, 12, 3)
DAY2 = date(2026, 12, 4)
HOURS = ((time(7, 30), time(11, 30)), (time(13, 0), time(17, 0)))
TARGET_A_S = 10 * 60


def spec() -> HallSpec:
    return HallSpec(
        id="h", name_vi="Trung tâm thử", name_en="Test centre",
        services=(ServiceSpec(id="A", name_vi="Hộ tịch", name_en="Civil", prefix="A", hours=HOURS,
                              target_wait_s=TARGET_A_S),
                  ServiceSpec(id="B", name_vi="Đất đai", name_en="Land", prefix="B", priority_prefix="UB")),
        counters=(CounterSpec(id="1", name="Quầy 1", services=("A", "B"), policy="priority_first"),
                  CounterSpec(id="2", name="Quầy 2", services=("A", "B")),
                  CounterSpec(id="3", name="Quầy 3", services=("A",))),
        dispensers=(DispenserSpec(id="d1"),),
        day_starts_at=time(4, 0),
    )


def at(day: date, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), tzinfo=ZONE)


@dataclass
class Visit:
    """The script's own record of a ticket's stay in a service: what the report must find."""

    ticket: str
    day: str
    service: str
    priority: bool
    category: str | None
    arrived: datetime
    transferred_in: bool = False
    called: datetime | None = None
    counter: str | None = None
    ended: datetime | None = None
    outcome: str = "open"


class Hall:
    """Runs the real engine with explicit times, journals into a real ledger, and keeps the script's list."""

    def __init__(self, path: Path) -> None:
        self.engine = Engine(spec())
        self.ledger = Ledger(path, hall_id="h")
        self.visits: list[Visit] = []
        self.numbers: dict[str, str] = {}
        self.named: dict[str, str] = {}  # the script's special tickets by role
        self._n = 0

    def _do(self, command: IssueTicket | ReportPrint | ActAtCounter, now: datetime) -> str | None:
        decision = self.engine.handle(command, now=now)
        assert decision.ok, decision.refusal
        self.ledger.append(list(decision.events))
        return decision.ticket_id

    def _open(self, ticket: str) -> Visit:
        return next(v for v in reversed(self.visits) if v.ticket == ticket and v.ended is None)

    def issue(self, now: datetime, service: str, *, category: str | None = None) -> str:
        self._n += 1
        tid = f"t{self._n}"
        self._do(IssueTicket("d1", f"r{self._n}", service, category is not None, category, tid), now)
        self.numbers[tid] = self.engine.tickets[tid].number
        self.visits.append(Visit(tid, self.engine.day, service, category is not None, category, now))
        return tid

    def counter(self, now: datetime, counter: str, action: str, *, ticket: str | None = None,
                service: str | None = None) -> None:
        self._n += 1
        self._do(ActAtCounter(counter, f"c{self._n}", action, None if ticket is None else self.numbers[ticket],  # type: ignore[arg-type]
                                service), now)

    def call(self, now: datetime, counter: str, ticket: str) -> None:
        self.counter(now, counter, "call", ticket=ticket)
        visit = self._open(ticket)
        visit.called, visit.counter = now, counter

    def finish(self, now: datetime, counter: str, ticket: str, outcome: str = "served") -> None:
        self.counter(now, counter, "complete" if outcome == "served" else "no_show")
        visit = self._open(ticket)
        visit.ended, visit.outcome = now, outcome

    def transfer(self, now: datetime, counter: str, ticket: str, to: str) -> None:
        self.counter(now, counter, "transfer", service=to)
        old = self._open(ticket)
        old.ended, old.outcome = now, "transferred"
        self.visits.append(Visit(ticket, old.day, to, old.priority, old.category, now, transferred_in=True))

    def void(self, now: datetime, ticket: str) -> None:
        self._do(ReportPrint("d1", ticket, ok=False, reason="paper_out"), now)
        visit = self._open(ticket)
        visit.ended, visit.outcome = now, "voided"

    def expire_open(self, now: datetime) -> None:
        for visit in self.visits:
            if visit.ended is None:
                visit.ended, visit.outcome = now, "expired"


PLAN = [  # (issued h:m, service, category, counter, wait min, service min, outcome) on DAY1
    ((8, 0), "A", None, "3", 4, 6, "served"),
    ((8, 2), "A", None, "1", 12, 5, "served"),
    ((8, 5), "B", "elderly", "2", 2, 9, "served"),
    ((8, 6), "A", None, "3", 9, 3, "no_show"),
    ((8, 10), "B", None, "1", 30, 7, "served"),
    ((8, 11), "A", "disabled", "2", 15, 4, "served"),
    ((9, 40), "A", None, "3", 1, 11, "served"),
    ((9, 45), "B", "elderly", "2", 6, 2, "served"),
    ((10, 0), "A", None, "1", 25, 8, "served"),
    ((13, 5), "A", None, "3", 7, 5, "served"),
]


def script(path: Path) -> Hall:
    """Two business days. DAY1: the plan's tickets; a transfer (A at counter 3 → B, served at counter 1); a
    recall; a voided ticket; a ticket called and never finished and one never called (both expire); counter 2
    paused 09:00-09:30 and closed at 16:00; B tickets issued at 03:50 and 03:52 the next morning (still DAY1's
    business day: one served before 04:00, one expiring at the roll). DAY2: two tickets."""
    h = Hall(path)
    d = DAY1
    steps: list[tuple[datetime, int, Callable[[datetime], object]]] = []
    ids: dict[str, str] = {}

    def add(when: datetime, fn: Callable[[datetime], object]) -> None:
        steps.append((when, len(steps), fn))

    def issue_step(key: str, service: str, category: str | None, now: datetime) -> None:
        ids[key] = h.issue(now, service, category=category)

    def call_step(key: str, counter: str, now: datetime) -> None:
        h.call(now, counter, ids[key])

    def finish_step(key: str, counter: str, outcome: str, now: datetime) -> None:
        h.finish(now, counter, ids[key], outcome)

    for index, ((hh, mm), service, category, counter, wait, service_min, outcome) in enumerate(PLAN):
        issued = at(d, hh, mm)
        key = f"p{index}"
        add(issued, partial(issue_step, key, service, category))
        add(issued + timedelta(minutes=wait), partial(call_step, key, counter))
        add(issued + timedelta(minutes=wait + service_min), partial(finish_step, key, counter, outcome))
    add(at(d, 9, 0), lambda now: h.counter(now, "2", "pause"))
    add(at(d, 9, 30), lambda now: h.counter(now, "2", "open"))
    add(at(d, 16, 0), lambda now: h.counter(now, "2", "close"))
    for when, _order, action in sorted(steps, key=lambda step: step[:2]):
        action(when)
    # After the plan (its last step is 13:18).
    tx = h.issue(at(d, 14, 0), "A")
    h.call(at(d, 14, 3), "3", tx)
    h.transfer(at(d, 14, 10), "3", tx, "B")
    h.call(at(d, 14, 15), "1", tx)
    h.finish(at(d, 14, 19), "1", tx)
    rc = h.issue(at(d, 14, 30), "A")
    h.call(at(d, 14, 32), "3", rc)
    h.counter(at(d, 14, 34), "3", "recall")
    h.finish(at(d, 14, 40), "3", rc)
    vd = h.issue(at(d, 15, 0), "A")
    h.void(at(d, 15, 0, 5), vd)
    stuck = h.issue(at(d, 15, 10), "A")
    h.named.update(transfer=tx, void=vd, stuck=stuck)
    h.call(at(d, 15, 20), "3", stuck)
    h.issue(at(d, 16, 30), "A", category="elderly")  # never called
    night = DAY2
    early = h.issue(at(night, 3, 50), "B")
    h.call(at(night, 3, 52), "1", early)
    h.finish(at(night, 3, 58), "1", early)
    h.issue(at(night, 3, 52, 30), "B")  # still waiting at 04:00
    # DAY2: the first command rolls the day (expiring what is open), then two tickets.
    roll = at(night, 8, 0)
    h.expire_open(roll)
    a = h.issue(roll, "A")
    b = h.issue(at(night, 8, 1), "B", category="pregnant")
    h.counter(at(night, 8, 2), "2", "open")
    h.call(at(night, 8, 3), "2", b)
    h.finish(at(night, 8, 10), "2", b)
    h.call(at(night, 8, 20), "3", a)
    h.finish(at(night, 8, 25), "3", a)
    h.ledger.close()
    return h


@pytest.fixture(scope="module")
def hall_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Hall, Path]:
    path = tmp_path_factory.mktemp("ledger") / "ledger.sqlite3"
    return script(path), path


def events_of(path: Path, first: date, last: date) -> list[Event]:
    return list(journal.read_events(path, first_day=first, last_day=last))


def report(path: Path, period: reports.Period, **filters: str) -> reports.Report:
    return reports.build_report(events_of(path, period.first, period.last), spec=spec(), period=period,
                                filters=reports.Filters(**filters),  # type: ignore[arg-type]
                                now=at(DAY2, 23, 0))


# --- the independent recomputation ---------------------------------------------------------------------------


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered)) - 1]


def middle(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def check_stats(stats: reports.DurationStats, samples: list[float]) -> None:
    assert stats.count == len(samples)
    if not samples:
        assert stats.mean_s is None
        return
    assert stats.mean_s == pytest.approx(sum(samples) / len(samples))
    assert stats.median_s == pytest.approx(middle(samples))
    assert stats.p90_s == pytest.approx(nearest_rank(samples, 0.9))
    assert stats.max_s == pytest.approx(max(samples))


def check_figures(figures: reports.Figures, visits: list[Visit], targets: dict[str, int]) -> None:
    o = figures.outcomes
    assert o.issued == sum(not v.transferred_in for v in visits)
    assert o.transferred_in == sum(v.transferred_in for v in visits)
    for name in ("served", "no_show", "transferred", "voided", "expired", "open"):
        assert getattr(o, name) == sum(v.outcome == name for v in visits), name
    waits = [(v.called - v.arrived).total_seconds() for v in visits if v.called is not None]
    check_stats(figures.wait, [wait for wait in waits if wait >= 0])  # a negative one (clock glitch) is left out
    services = [(v.ended - v.called).total_seconds() for v in visits
                if v.outcome == "served" and v.called is not None and v.ended is not None]
    check_stats(figures.service_time, services)
    called = [v for v in visits if v.called is not None]
    within = sum((v.called - v.arrived).total_seconds() <= targets[v.service] for v in called  # type: ignore[operator]
                 )
    base = len(called) + sum(v.outcome == "expired" and v.called is None for v in visits)
    assert (figures.within_target, figures.target_base) == (within, base)


TARGETS = {"A": TARGET_A_S, "B": 20 * 60}


def day1(h: Hall) -> list[Visit]:
    return [v for v in h.visits if v.day == DAY1.isoformat()]


# --- tests ---------------------------------------------------------------------------------------------------


def test_totals_of_a_day_match_the_script(hall_run: tuple[Hall, Path]) -> None:
    h, path = hall_run
    r = report(path, reports.day_period("2026-12-03"))
    check_figures(r.totals, day1(h), TARGETS)
    assert r.days_worked == ("2026-12-03",)
    assert r.totals.outcomes.issued == len(PLAN) + 7


def test_each_service_counter_lane_and_category_matches_the_script(hall_run: tuple[Hall, Path]) -> None:
    h, path = hall_run
    r = report(path, reports.day_period("2026-12-03"))
    visits = day1(h)
    for row in r.services:
        check_figures(row.figures, [v for v in visits if v.service == row.service], TARGETS)
    assert [row.service for row in r.services] == ["A", "B"]
    for crow in r.counters:
        check_figures(crow.figures, [v for v in visits if v.counter == crow.counter], TARGETS)
    lanes = {(row.lane, row.category): row.figures for row in r.lanes}
    check_figures(lanes[("regular", None)], [v for v in visits if not v.priority], TARGETS)
    check_figures(lanes[("priority", None)], [v for v in visits if v.priority], TARGETS)
    for category in ("elderly", "disabled"):
        check_figures(lanes[("priority", category)], [v for v in visits if v.category == category], TARGETS)


def test_hours_count_arrivals_calls_and_waits_in_local_time(hall_run: tuple[Hall, Path]) -> None:
    h, path = hall_run
    r = report(path, reports.day_period("2026-12-03"))
    visits = day1(h)
    for row in r.hours:
        assert row.arrivals == sum(not v.transferred_in and v.arrived.hour == row.hour for v in visits)
        assert row.calls == sum(v.called is not None and v.called.hour == row.hour for v in visits)
        check_stats(row.wait, [(v.called - v.arrived).total_seconds() for v in visits
                               if v.called is not None and v.arrived.hour == row.hour])
    assert r.hours[3].arrivals == 2  # issued at 03:50 and 03:52 the next morning: still DAY1's


def test_filters_keep_only_matching_visits(hall_run: tuple[Hall, Path]) -> None:
    h, path = hall_run
    period = reports.day_period("2026-12-03")
    visits = day1(h)
    check_figures(report(path, period, service="B").totals, [v for v in visits if v.service == "B"], TARGETS)
    check_figures(report(path, period, counter="3").totals, [v for v in visits if v.counter == "3"], TARGETS)
    check_figures(report(path, period, lane="priority").totals, [v for v in visits if v.priority], TARGETS)
    check_figures(report(path, period, lane="regular").totals, [v for v in visits if not v.priority], TARGETS)
    check_figures(report(path, period, category="elderly").totals,
                  [v for v in visits if v.category == "elderly"], TARGETS)
    assert [c.counter for c in report(path, period, counter="3").counters] == ["3"]


def test_a_transferred_ticket_counts_once_per_service_with_its_own_wait(hall_run: tuple[Hall, Path]) -> None:
    h, path = hall_run
    r = report(path, reports.day_period("2026-12-03"))
    by_service = {row.service: row.figures.outcomes for row in r.services}
    assert by_service["A"].transferred == 1
    assert by_service["B"].transferred_in == 1
    facts = reports.collect(events_of(path, DAY1, DAY1), spec=spec())
    moved = [v for v in facts.visits if v.ticket_id == h.named["transfer"]]
    assert [(v.service, v.outcome) for v in moved] == [("A", "transferred"), ("B", "served")]
    assert [(v.called_at - v.arrived_at).total_seconds() for v in moved] == [180, 300]  # type: ignore[operator]


def test_expired_and_voided_tickets_never_count_as_served(hall_run: tuple[Hall, Path]) -> None:
    h, path = hall_run
    facts = reports.collect(events_of(path, DAY1, DAY1), spec=spec())
    outcome = {v.ticket_id: v.outcome for v in facts.visits}
    assert outcome[h.named["void"]] == "voided"
    assert outcome[h.named["stuck"]] == "expired"  # called, never finished
    r = report(path, reports.day_period("2026-12-03"))
    assert r.totals.outcomes.expired == 3
    assert r.totals.service_time.count == r.totals.outcomes.served


def test_a_ticket_spanning_the_day_start_counts_on_its_issue_day(hall_run: tuple[Hall, Path]) -> None:
    h, path = hall_run
    two = report(path, reports.range_period("2026-12-03", "2026-12-04"))
    day2 = report(path, reports.day_period("2026-12-04"))
    assert [row.day for row in two.days] == ["2026-12-03", "2026-12-04"]
    check_figures(day2.totals, [v for v in h.visits if v.day == "2026-12-04"], TARGETS)
    assert day2.totals.outcomes.issued == 2
    check_figures(two.totals, h.visits, TARGETS)


def test_counter_time_by_status_within_business_hours(hall_run: tuple[Hall, Path]) -> None:
    _h, path = hall_run
    r = report(path, reports.day_period("2026-12-03"))
    rows = {row.counter: row for row in r.counters}
    # Counter 3 serves A only: 07:30-11:30 and 13:00-17:00, open throughout.
    assert (rows["3"].open_s, rows["3"].paused_s, rows["3"].closed_s) == (8 * 3600, 0, 0)
    # Counter 2 serves B (always open): the whole business day 04:00-04:00; paused 09:00-09:30, closed at 16:00.
    assert (rows["2"].open_s, rows["2"].paused_s, rows["2"].closed_s) == (11.5 * 3600, 0.5 * 3600, 12 * 3600)


def test_a_week_and_a_month_cover_their_days(hall_run: tuple[Hall, Path]) -> None:
    h, path = hall_run
    week = report(path, reports.week_period("2026-W49"))
    assert (week.period.first, week.period.last) == (date(2026, 11, 30), date(2026, 12, 6))
    check_figures(week.totals, h.visits, TARGETS)
    month = report(path, reports.month_period("2026-12"))
    assert month.period.last == date(2026, 12, 31)
    assert month.totals == week.totals
    assert report(path, reports.day_period("2026-12-05")).totals.outcomes.visits == 0


@pytest.mark.parametrize(("make", "text"), [
    (reports.day_period, "2026-13-01"), (reports.day_period, "2026-1-1"), (reports.week_period, "2026-W54"),
    (reports.month_period, "2026-13"), (reports.week_period, "2026-49"),
])
def test_bad_dates_are_refused(make: object, text: str) -> None:
    with pytest.raises(reports.ReportError):
        make(text)  # type: ignore[operator]


def test_csv_has_a_bom_and_reads_back(hall_run: tuple[Hall, Path]) -> None:
    _h, path = hall_run
    r = report(path, reports.day_period("2026-12-03"))
    data = render_csv(r)
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), csv_dialect("vi")))
    assert rows[0] == ["Tổng hợp"]
    one = list(csv.reader(io.StringIO(render_csv_table(r, "services", "en").decode("utf-8-sig")), csv_dialect("en")))
    assert one[0][:3] == ["Service", "Name", "Target wait (min)"]
    assert [row[0] for row in one[1:]] == ["A", "B"]
    issued = one[0].index("Tickets issued")
    assert [int(row[issued]) for row in one[1:]] == [row.figures.outcomes.issued for row in r.services]


def test_vietnamese_csv_is_for_excel_in_vietnam_and_english_csv_for_excel_in_english(
        hall_run: tuple[Hall, Path]) -> None:
    """vi: ";" between fields and decimal commas (Excel's vi-VN regional settings); en: "," and decimal points."""
    _h, path = hall_run
    r = report(path, reports.day_period("2026-12-03"))
    vi = render_csv_table(r, "services", "vi").decode("utf-8-sig")
    en = render_csv_table(r, "services", "en").decode("utf-8-sig")
    assert vi.splitlines()[0].startswith("Dịch vụ;Tên;Mục tiêu chờ (phút);")
    assert en.splitlines()[0].startswith("Service,Name,Target wait (min),")
    vi_rows = list(csv.reader(io.StringIO(vi), csv_dialect("vi")))
    en_rows = list(csv.reader(io.StringIO(en), csv_dialect("en")))
    column = en_rows[0].index("Wait mean (min)")
    for vi_row, en_row, row in zip(vi_rows[1:], en_rows[1:], r.services, strict=True):
        assert len(vi_row) == len(en_row) == len(en_rows[0])
        mean = row.figures.wait.mean_s
        if mean is None:
            assert vi_row[column] == en_row[column] == ""
        else:
            assert float(en_row[column]) == round(mean / 60, 1)
            assert vi_row[column] == en_row[column].replace(".", ",") and "." not in vi_row[column]
    assert any("," in row[column] for row in vi_rows[1:]), vi_rows  # the fixture has waits of fractional minutes
    assert render_csv(r, "en").startswith(b"\xef\xbb\xbf")


def test_a_chart_with_nothing_to_show_says_so() -> None:
    assert "không có dữ liệu" in bar_chart(["07", "08"], [[0, 0], [0, 0]], title="t", empty="không có dữ liệu")
    assert "no data" in bar_chart([], [], title="t")
    zero = bar_chart(["07"], [[0.0]], title="t", empty="no data", zero="every value is 0")
    assert "every value is 0" in zero and "<rect class=\"bar" not in zero
    assert "every value is 0" not in bar_chart(["07"], [[None]], title="t", zero="every value is 0")
    assert "<rect class=\"bar1\"" in bar_chart(["07"], [[2]], title="t")


def test_the_report_says_when_it_was_made_in_the_halls_time_and_its_open_tickets_are_not_a_counter_state(
        hall_run: tuple[Hall, Path]) -> None:
    _h, path = hall_run
    r = report(path, reports.day_period("2026-12-03"))
    made = r.generated_at
    assert made is not None
    summary = {row[0]: row[1] for row in next(t for t in report_tables(r, "vi") if t.name == "summary").rows}
    assert summary["Lập lúc"] == made.strftime("%d/%m/%Y %H:%M")
    assert made.strftime("%d/%m/%Y %H:%M") in render_html(r)
    assert "Chưa xong" in summary and "Đang mở" not in summary
    assert "Still open" in {row[0] for row in next(t for t in report_tables(r, "en") if t.name == "summary").rows}


def test_xlsx_holds_a_sheet_per_table_with_the_figures(hall_run: tuple[Hall, Path]) -> None:
    _h, path = hall_run
    r = report(path, reports.day_period("2026-12-03"))
    with zipfile.ZipFile(io.BytesIO(render_xlsx(r, "en"))) as book:
        names = book.namelist()
        workbook = book.read("xl/workbook.xml").decode()
        shared = book.read("xl/sharedStrings.xml").decode()
        sheet2 = book.read("xl/worksheets/sheet2.xml").decode()
    assert sum(n.startswith("xl/worksheets/sheet") for n in names) == len(report_tables(r, "en")) == 13
    assert 'name="By service"' in workbook
    assert "Tickets issued" in shared
    # The services sheet's row 2, column D: service A's tickets issued, as a number.
    assert re.search(rf'<c r="D2"[^>]*><v>{r.services[0].figures.outcomes.issued}</v>', sheet2)


def test_html_is_self_contained_with_svg_charts_in_either_language(hall_run: tuple[Hall, Path]) -> None:
    _h, path = hall_run
    r = report(path, reports.day_period("2026-12-03"))
    page = render_html(r)
    assert page.count("<svg") == 3
    assert page.count('class="swatch bar') == 2  # the two-series chart's legend says which colour is which
    assert "<script" not in page and "http" not in page and "@media print" in page
    assert "Theo dịch vụ" in page and 'lang="vi"' in page
    assert "By service" in render_html(r, "en")
    assert "Tổng hợp" in render_text(r)


# --- the command line ----------------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "hall.toml"
    path.write_text("""
[hall]
id = "h"
name_vi = "Trung tâm thử"
name_en = "Test centre"
[controller]
state_dir = "STATE_DIR"
[[services]]
id = "A"
name_vi = "Hộ tịch"
name_en = "Civil"
prefix = "A"
hours = ["07:30-11:30", "13:00-17:00"]
target_wait_min = 10
[[services]]
id = "B"
name_vi = "Đất đai"
name_en = "Land"
prefix = "B"
priority_prefix = "UB"
[[counters]]
id = "1"
services = ["A", "B"]
policy = "priority_first"
[[counters]]
id = "2"
services = ["A", "B"]
[[counters]]
id = "3"
services = ["A"]
[[dispensers]]
id = "d1"
""".replace("STATE_DIR", str(tmp_path)), encoding="utf-8")
    return path


def test_cli_writes_each_format(hall_run: tuple[Hall, Path], config: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    _h, ledger = hall_run
    for fmt in ("text", "csv", "xlsx", "html"):
        out = tmp_path / f"r.{fmt}"
        assert main(["report", "--config", str(config), "--ledger", str(ledger), "--cache", str(tmp_path), "--day",
                     "2026-12-03", "--format", fmt, "--output", str(out)]) == 0
        assert out.stat().st_size > 100
    assert main(["report", "--config", str(config), "--ledger", str(ledger), "--no-cache", "--from", "2026-12-03",
                 "--to", "2026-12-04", "--service", "B", "--lang", "en"]) == 0
    assert "By service" in capsys.readouterr().out


@pytest.mark.parametrize(("extra", "message"), [
    (["--day", "2026-02-30"], "not a date"),
    (["--week", "2026-W60"], "not an ISO week"),
    (["--from", "2026-12-04", "--to", "2026-12-01"], "ends"),
    (["--from", "2026-12-04"], "go together"),
    (["--day", "2026-12-03", "--service", "Z"], "unknown service 'Z'"),
    (["--day", "2026-12-03", "--counter", "99"], "unknown counter '99'"),
])
def test_cli_refuses_bad_arguments_with_status_2(hall_run: tuple[Hall, Path], config: Path, extra: list[str],
                                                 message: str, caplog: pytest.LogCaptureFixture) -> None:
    _h, ledger = hall_run
    assert main(["report", "--config", str(config), "--ledger", str(ledger), *extra]) == 2
    assert message in caplog.text


def test_cli_refuses_a_missing_ledger_with_status_2(config: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert main(["report", "--config", str(config), "--day", "2026-12-03"]) == 2
    assert "there is no ledger" in caplog.text


def test_reading_never_creates_or_changes_the_ledger(hall_run: tuple[Hall, Path]) -> None:
    _h, path = hall_run
    before = path.read_bytes()
    events_of(path, DAY1, DAY2)
    assert path.read_bytes() == before
    with pytest.raises(journal.JournalError):
        list(journal.read_events(path.with_name("nothing.sqlite3"), first_day=DAY1, last_day=DAY1))
    assert not path.with_name("nothing.sqlite3").exists()


# --- a corrected business day ----------------------------------------------------------------------------------

GLITCH_DAY = date(2027, 3, 1)  # where a clock glitch puts the hall, months ahead


def corrected_script(path: Path) -> Hall:
    """DAY1: two tickets, one served. At 10:00 the clock jumps to GLITCH_DAY (the day rolls: the waiting ticket
    expires, a ticket is issued there); at 10:05 an operator confirms the real clock (``DayCorrected`` back to
    DAY1), and two tickets follow, one served. DAY2: one ticket, served."""
    h = Hall(path)
    a = h.issue(at(DAY1, 8, 0), "B")
    h.call(at(DAY1, 8, 5), "1", a)
    h.finish(at(DAY1, 8, 9), "1", a)
    h.issue(at(DAY1, 9, 0), "B")
    glitch = at(GLITCH_DAY, 10, 0)
    h.expire_open(glitch)
    g = h.issue(glitch, "B")
    decision = h.engine.handle(Tick(confirmed=True), now=at(DAY1, 10, 5))
    assert [type(e) for e in decision.events] == [DayCorrected]
    h.ledger.append(list(decision.events))
    h.call(at(DAY1, 10, 6), "2", g)
    h.finish(at(DAY1, 10, 16), "2", g)
    c = h.issue(at(DAY1, 10, 20), "A")
    h.issue(at(DAY1, 10, 21), "B")
    h.call(at(DAY1, 10, 40), "3", c)
    h.finish(at(DAY1, 10, 52), "3", c)
    h.expire_open(at(DAY2, 8, 0))
    d = h.issue(at(DAY2, 8, 0), "A")
    h.call(at(DAY2, 8, 30), "3", d)
    h.finish(at(DAY2, 8, 33), "3", d)
    h.ledger.close()
    # The script's own list labels each ticket by the day the hall really worked.
    for visit in h.visits:
        visit.day = DAY2.isoformat() if visit.ticket == d else DAY1.isoformat()
    return h


def test_a_corrected_day_counts_under_its_corrected_label(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    h = corrected_script(path)
    r = report(path, reports.day_period(DAY1.isoformat()))
    check_figures(r.totals, day1(h), TARGETS)
    assert r.totals.outcomes.issued == 5
    assert r.days_worked == (DAY1.isoformat(),)
    assert [row.day for row in r.days] == [DAY1.isoformat()]
    assert report(path, reports.day_period(GLITCH_DAY.isoformat())).totals.outcomes.visits == 0
    assert report(path, reports.day_period(GLITCH_DAY.isoformat())).days_worked == ()
    nxt = report(path, reports.day_period(DAY2.isoformat()))
    check_figures(nxt.totals, [v for v in h.visits if v.day == DAY2.isoformat()], TARGETS)
    check_figures(report(path, reports.range_period(DAY1.isoformat(), DAY2.isoformat())).totals, h.visits, TARGETS)


def test_counter_time_of_a_corrected_day_is_one_timeline(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    corrected_script(path)
    rows = {row.counter: row for row in report(path, reports.day_period(DAY1.isoformat())).counters}
    # Counter 3 serves A only (07:30-11:30, 13:00-17:00) and was open all day: the glitch adds no hour.
    assert (rows["3"].open_s, rows["3"].paused_s, rows["3"].closed_s) == (8 * 3600, 0, 0)


# --- month summaries ---------------------------------------------------------------------------------------------


def test_a_month_summary_makes_the_same_report_as_its_days(hall_run: tuple[Hall, Path]) -> None:
    _h, path = hall_run
    month = reports.month_period("2026-12")
    facts = reports.collect(events_of(path, month.first, month.last), spec=spec())
    day_1, day_2 = (reports.summarise_span(span, spec=spec()) for span in facts.spans)
    merged = reports.merge_days([day_1])
    assert merged is not None
    assert merged.month == "2026-12"
    now = at(DAY2, 23, 0)
    pairs: list[tuple[list[reports.DaySummary | reports.MonthSummary], list[reports.DaySummary]]] = [
        ([merged, day_2], [day_1, day_2]), ([merged], [day_1])]
    for summaries, days in pairs:
        assert reports.summarise_days(summaries, spec=spec(), period=month, now=now) == reports.summarise_days(
            days, spec=spec(), period=month, now=now)


def test_a_month_summary_stands_only_for_its_days_unfiltered(hall_run: tuple[Hall, Path]) -> None:
    _h, path = hall_run
    month = reports.month_period("2026-12")
    day_1, day_2 = (reports.summarise_span(span, spec=spec())
                    for span in reports.collect(events_of(path, month.first, month.last), spec=spec()).spans)
    merged = reports.merge_days([day_1])
    assert merged is not None
    with pytest.raises(InvariantError):
        reports.summarise_days([merged], spec=spec(), period=month, filters=reports.Filters(service="A"))
    with pytest.raises(InvariantError):
        reports.summarise_days([merged], spec=spec(), period=reports.day_period(DAY2.isoformat()))
    with pytest.raises(InvariantError):
        reports.summarise_days([merged, day_1], spec=spec(), period=month)
    assert reports.merge_days([]) is None
    other_month = dataclasses.replace(day_2, day="2027-01-01")
    assert reports.merge_days([day_1, other_month]) is None  # two months
    assert reports.merge_days([other_month]) is None  # its cells are of another day


@pytest.mark.parametrize("seed", range(6))
def test_order_statistics_over_sorted_runs_equal_those_of_all_their_samples(seed: int) -> None:
    rng = random.Random(seed)
    runs: list[list[float]] = []
    for _ in range(rng.choice([1, 2, 3, 12, 40])):
        size = rng.choice([0, 1, 2, 7, 300])
        coarse = rng.random() < 0.5  # many equal samples, or hardly any
        runs.append(sorted(float(rng.randint(0, 60)) if coarse else rng.uniform(0, 3600) for _ in range(size)))
    everything = sorted(chain.from_iterable(runs))
    stats = reports._runs_stats(runs, sum_us=0)
    assert stats.count == len(everything)
    if not everything:
        assert stats.median_s is None
        return
    assert (stats.median_s, stats.p90_s, stats.max_s) == (middle(everything), nearest_rank(everything, 0.9),
                                                          everything[-1])
    assert [reports._kth(runs, k) for k in range(len(everything))] == everything
