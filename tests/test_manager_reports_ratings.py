"""The citizens' ratings in the manager's reports: a scripted hall run through the real engine (issue, call,
complete, rate by the counter's buttons and by phone) into a real ledger; each figure checked against the
script's own list of ratings, and the exports checked for what a spreadsheet would do with a citizen's text."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from xml.etree import ElementTree

import pytest

from hall_controller.engine import Engine, HallSpec
from hall_controller.engine.events import RateTicket
from hall_controller.engine.spec import DEFAULT_RATING_REASONS, RatingReason, RatingSpec
from hallq.wire import RATING_LEVELS
from manager import reports
from manager.render import csv_dialect, render_csv, render_csv_table, render_html, render_text, render_xlsx
from manager.render.tables import RECENT_COMMENTS, formula_safe, looks_like_formula, report_tables
from tests.test_manager_reports import DAY1, DAY2, Hall, at, events_of, spec

DAY3 = date(2026, 12, 5)
NOW = at(DAY3, 12, 0)
# A reason the hall offered when these ratings were given, and no longer does: the report names it by its id.
RETIRED = RatingReason("queue_music", "Nhạc chờ", "Waiting music")
SCRIPT_TAG = "<script>alert('x')</script> & chờ lâu"
FORMULA = '=HYPERLINK("http://example.invalid","x")'
MIDNIGHT_COMMENT = "Tạm được, nhưng xong muộn"

Rating = tuple[str, str, tuple[str, ...], str | None, tuple[date, int, int]]  # level, channel, reasons, comment, when
PLAN: list[tuple[date, tuple[int, int], str, str | None, str, tuple[int, int], tuple[int, int], str, Rating | None]] = [
    # (day, issued, service, category, counter, called, finished, outcome, rating)
    (DAY1, (8, 0), "A", None, "3", (8, 5), (8, 10), "served", ("very_satisfied", "counter", (), None, (DAY1, 8, 11))),
    (DAY1, (8, 1), "A", None, "1", (8, 6), (8, 12), "served", ("satisfied", "phone", (), None, (DAY1, 8, 30))),
    (DAY1, (8, 2), "B", "elderly", "2", (8, 3), (8, 20), "served",
     ("dissatisfied", "phone", ("waiting_time", "attitude"), SCRIPT_TAG, (DAY1, 8, 25))),
    (DAY1, (8, 30), "A", None, "3", (8, 40), (8, 50), "served", ("neutral", "counter", (), None, (DAY1, 8, 51))),
    (DAY1, (9, 0), "B", None, "1", (9, 5), (9, 15), "served", None),
    (DAY1, (9, 10), "A", None, "3", (9, 12), (9, 14), "no_show", None),
    (DAY1, (9, 20), "A", None, "2", (9, 25), (9, 40), "served",
     ("dissatisfied", "phone", ("guidance", RETIRED.id), FORMULA, (DAY1, 9, 50))),
    (DAY1, (10, 0), "B", None, "1", (10, 1), (10, 9), "served",
     ("neutral", "phone", ("waiting_time",), "+84 901 234 567 gọi lại giúp", (DAY1, 10, 20))),
    (DAY1, (10, 5), "A", None, "2", (10, 6), (10, 30), "served", ("satisfied", "counter", (), None, (DAY1, 10, 31))),
    (DAY1, (13, 10), "A", "elderly", "3", (13, 15), (13, 40), "served",
     ("dissatisfied", "phone", (), "@SUM(A1)\nsecond line", (DAY1, 13, 45))),
    # Served at 23:55 and rated at 00:10 the next morning: still DAY1's business day (it starts at 04:00).
    (DAY1, (23, 40), "B", None, "1", (23, 45), (23, 55), "served",
     ("neutral", "phone", (), MIDNIGHT_COMMENT, (DAY2, 0, 10))),
    (DAY2, (8, 0), "A", None, "3", (8, 10), (8, 20), "served", ("satisfied", "counter", (), None, (DAY2, 8, 21))),
    (DAY2, (8, 5), "B", None, "1", (8, 6), (8, 15), "served", ("very_satisfied", "phone", (), None, (DAY2, 8, 40))),
    (DAY3, (8, 0), "A", None, "3", (8, 1), (8, 9), "served", ("neutral", "phone", ("attitude",), "-2+3", (DAY3, 8, 20))),
]


@dataclass(frozen=True)
class Rated:
    """The script's own record of a rating: what the report must find."""

    day: str
    service: str
    counter: str
    priority: bool
    category: str | None
    served_hour: int
    level: str
    channel: str
    reasons: tuple[str, ...]
    comment: str | None
    at: datetime


def rated_spec() -> HallSpec:
    """The hall as it was when the ratings were given: one more reason than it offers now."""
    return dataclasses.replace(spec(), ratings=RatingSpec(reasons=(*DEFAULT_RATING_REASONS, RETIRED)))


def script(path: Path) -> tuple[Hall, list[Rated]]:
    """The plan, step by step in time order, through the real engine into a real ledger."""
    h = Hall(path)
    h.engine = Engine(rated_spec())
    ids: dict[int, str] = {}
    ratings: list[Rated] = []
    steps: list[tuple[datetime, int, Callable[[datetime], object]]] = []

    def issue(index: int, service: str, category: str | None, now: datetime) -> None:
        ids[index] = h.issue(now, service, category=category)

    def rate(index: int, rating: Rating, now: datetime) -> None:
        level, channel, reasons, comment, _when = rating
        plan = PLAN[index]
        decision = h.engine.handle(RateTicket(channel=channel, source=plan[4] if channel == "counter" else "manager",  # type: ignore[arg-type]
                                              request_id=f"rate-{index}", ticket=ids[index], level=level,  # type: ignore[arg-type]
                                              reasons=reasons, comment=comment), now=now)
        assert decision.ok, decision.refusal
        h.ledger.append(list(decision.events))
        finished = at(plan[0], *plan[6])
        ratings.append(Rated(plan[0].isoformat(), plan[2], plan[4], plan[3] is not None, plan[3], finished.hour, level,
                             channel, reasons, comment, now))

    def call(index: int, counter: str, now: datetime) -> None:
        h.call(now, counter, ids[index])

    def finish(index: int, counter: str, outcome: str, now: datetime) -> None:
        h.finish(now, counter, ids[index], outcome)

    for index, (day, issued, service, category, counter, called, finished, outcome, rating) in enumerate(PLAN):
        steps.append((at(day, *issued), len(steps), partial(issue, index, service, category)))
        steps.append((at(day, *called), len(steps), partial(call, index, counter)))
        steps.append((at(day, *finished), len(steps), partial(finish, index, counter, outcome)))
        if rating is not None:
            when_day, hh, mm = rating[4]
            steps.append((at(when_day, hh, mm), len(steps), partial(rate, index, rating)))
    for when, _order, action in sorted(steps, key=lambda step: step[:2]):
        action(when)
    h.ledger.close()
    return h, ratings


@pytest.fixture(scope="module")
def rated_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Hall, list[Rated], Path]:
    path = tmp_path_factory.mktemp("rated") / "ledger.sqlite3"
    h, ratings = script(path)
    return h, ratings, path


def report(path: Path, period: reports.Period, **filters: str) -> reports.Report:
    return reports.build_report(events_of(path, period.first, period.last), spec=spec(), period=period,
                                filters=reports.Filters(**filters), now=NOW)  # type: ignore[arg-type]


def day_report(path: Path, day: date = DAY1, **filters: str) -> reports.Report:
    return report(path, reports.day_period(day.isoformat()), **filters)


def check(figures: reports.RatingFigures, rated: Iterable[Rated], served: int) -> None:
    """``figures`` against the script's ratings and the visits served."""
    chosen = list(rated)
    levels = tuple(sum(r.level == level for r in chosen) for level in RATING_LEVELS)
    assert figures.levels == levels
    assert figures.served == served
    assert figures.rated == len(chosen)
    assert figures.rated_share == (len(chosen) / served if served else None)
    assert figures.level_shares == tuple(count / len(chosen) if chosen else None for count in levels)
    assert figures.satisfied_share == ((levels[0] + levels[1]) / len(chosen) if chosen else None)
    for channel in ("counter", "phone"):
        assert figures.channel_levels(channel) == tuple(
            sum(r.level == level and r.channel == channel for r in chosen) for level in RATING_LEVELS)


def served(h: Hall, day: date = DAY1, **where: object) -> int:
    return sum(v.outcome == "served" and v.day == day.isoformat()
               and all(getattr(v, key) == value for key, value in where.items()) for v in h.visits)


# --- the figures -----------------------------------------------------------------------------------------------


def test_ratings_count_each_level_and_channel_with_shares_of_rated_and_served(
        rated_run: tuple[Hall, list[Rated], Path]) -> None:
    h, ratings, path = rated_run
    r = day_report(path)
    day1 = [x for x in ratings if x.day == DAY1.isoformat()]
    check(r.ratings, day1, served(h))
    assert (r.ratings.rated, r.ratings.served) == (9, 10)  # one served visit (09:00, B) was not rated
    assert r.ratings.levels == (1, 2, 3, 3)
    assert r.ratings.channel_levels("counter") == (1, 1, 1, 0)
    assert r.ratings.rated_share == pytest.approx(0.9)
    assert r.ratings.satisfied_share == pytest.approx(3 / 9)


def test_ratings_per_service_counter_day_and_hour_served_match_the_script(
        rated_run: tuple[Hall, list[Rated], Path]) -> None:
    h, ratings, path = rated_run
    r = report(path, reports.range_period(DAY1.isoformat(), DAY3.isoformat()))
    for srow in r.services:
        check(srow.ratings, [x for x in ratings if x.service == srow.service],
              sum(served(h, day, service=srow.service) for day in (DAY1, DAY2, DAY3)))
    for crow in r.counters:
        check(crow.ratings, [x for x in ratings if x.counter == crow.counter],
              sum(served(h, day, counter=crow.counter) for day in (DAY1, DAY2, DAY3)))
    assert [d.day for d in r.days] == [DAY1.isoformat(), DAY2.isoformat(), DAY3.isoformat()]
    for drow in r.days:
        check(drow.ratings, [x for x in ratings if x.day == drow.day], served(h, date.fromisoformat(drow.day)))
    for hrow in r.hours:
        check(hrow.ratings, [x for x in ratings if x.served_hour == hrow.hour],
              sum(v.outcome == "served" and v.ended is not None and v.ended.hour == hrow.hour for v in h.visits))
    assert (r.hours[8].ratings.rated, r.hours[8].ratings.served) == (7, 7)  # three days' 08:xx


def test_a_rating_given_after_midnight_counts_in_its_tickets_business_day_at_the_hour_served(
        rated_run: tuple[Hall, list[Rated], Path]) -> None:
    _h, _ratings, path = rated_run
    day1, day2 = day_report(path, DAY1), day_report(path, DAY2)
    assert day1.hours[23].ratings.levels == (0, 0, 1, 0) and day1.hours[23].ratings.served == 1
    assert day1.hours[0].ratings.rated == 0
    assert day2.ratings.rated == 2 and MIDNIGHT_COMMENT not in [c.text for c in day2.rating_comments]
    late = next(c for c in day1.rating_comments if c.text == MIDNIGHT_COMMENT)
    assert (late.day, f"{late.at:%Y-%m-%d %H:%M}") == (DAY1.isoformat(), f"{DAY2.isoformat()} 00:10")


def test_reasons_are_counted_with_their_names_and_a_reason_no_longer_offered_by_its_id(
        rated_run: tuple[Hall, list[Rated], Path]) -> None:
    _h, ratings, path = rated_run
    r = day_report(path)
    day1 = [x for x in ratings if x.day == DAY1.isoformat()]
    low = sum(x.level in ("neutral", "dissatisfied") for x in day1)
    rows = {row.reason: row for row in r.rating_reasons}
    assert [row.reason for row in r.rating_reasons] == [*(reason.id for reason in DEFAULT_RATING_REASONS), RETIRED.id]
    for reason_id, row in rows.items():
        assert row.count == sum(reason_id in x.reasons for x in day1)
        assert row.share == row.count / low
    assert (rows["waiting_time"].count, rows["waiting_time"].name_vi, rows["waiting_time"].name_en) == \
        (2, "Thời gian chờ lâu", "Long wait")
    assert (rows[RETIRED.id].count, rows[RETIRED.id].name_vi, rows[RETIRED.id].name_en) == (1, RETIRED.id, RETIRED.id)
    assert rows["paperwork"].count == 0  # configured and never named: shown with 0


def test_filters_keep_only_the_matching_ratings(rated_run: tuple[Hall, list[Rated], Path]) -> None:
    h, ratings, path = rated_run
    day1 = [x for x in ratings if x.day == DAY1.isoformat()]
    check(day_report(path, service="B").ratings, [x for x in day1 if x.service == "B"], served(h, service="B"))
    check(day_report(path, counter="3").ratings, [x for x in day1 if x.counter == "3"], served(h, counter="3"))
    check(day_report(path, lane="priority").ratings, [x for x in day1 if x.priority], served(h, priority=True))
    check(day_report(path, lane="regular").ratings, [x for x in day1 if not x.priority], served(h, priority=False))
    elderly = day_report(path, category="elderly")
    check(elderly.ratings, [x for x in day1 if x.category == "elderly"], served(h, category="elderly"))
    assert {c.text for c in elderly.rating_comments} == {SCRIPT_TAG, "@SUM(A1)\nsecond line"}
    assert [row.count for row in day_report(path, service="A").rating_reasons if row.reason == "waiting_time"] == [0]


def test_comments_are_every_citizens_text_with_where_and_when_but_no_ticket(
        rated_run: tuple[Hall, list[Rated], Path]) -> None:
    h, ratings, path = rated_run
    r = report(path, reports.range_period(DAY1.isoformat(), DAY3.isoformat()))
    expected = [x for x in ratings if x.comment]
    assert [(c.text, c.day, c.counter, c.service, c.level, c.channel) for c in r.rating_comments] == [
        (x.comment, x.day, x.counter, x.service, x.level, x.channel) for x in sorted(expected, key=lambda x: x.at)]
    assert [c.at for c in r.rating_comments] == sorted(x.at for x in expected)
    table = next(t for t in report_tables(r, "en") if t.name == "rating_comments")
    assert table.headers == ("Day", "Time", "Counter", "Service", "Rating", "Channel", "Comment")
    assert table.rows[0] == (DAY3.isoformat(), "08:20", "3", "A", "Neutral", "Phone", "-2+3")  # newest first
    assert ("2026-12-03", "13:45", "3", "A", "Dissatisfied", "Phone", "@SUM(A1) second line") in table.rows  # one line
    tickets = {v.ticket for v in h.visits} | set(h.numbers.values())
    assert not any(str(cell) in tickets for row in table.rows for cell in row)


def test_a_month_summary_with_ratings_makes_the_same_report_as_its_days(
        rated_run: tuple[Hall, list[Rated], Path]) -> None:
    _h, _ratings, path = rated_run
    month = reports.month_period("2026-12")
    days = [reports.summarise_span(span, spec=spec())
            for span in reports.collect(events_of(path, month.first, month.last), spec=spec()).spans]
    merged = reports.merge_days(days[:2])
    assert merged is not None and merged.comments
    made = reports.summarise_days([merged, days[2]], spec=spec(), period=month, now=NOW)
    assert made == reports.summarise_days(days, spec=spec(), period=month, now=NOW)
    assert made.ratings.rated == 12


# --- the renderings -------------------------------------------------------------------------------------------


def test_formula_looking_text_is_recognised_and_neutralised() -> None:
    for text in ("=1+1", "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "  =1+1"):
        assert looks_like_formula(text), text
        assert formula_safe(text) == "'" + text
    for text in ("-", "a=b", "Chờ lâu", "", "2026-12-03"):
        assert not looks_like_formula(text), text
        assert formula_safe(text) == text


def test_csv_has_the_rating_tables_and_no_text_becomes_a_formula(rated_run: tuple[Hall, list[Rated], Path]) -> None:
    _h, _ratings, path = rated_run
    r = day_report(path)
    for lang in ("vi", "en"):
        rows = list(csv.reader(io.StringIO(render_csv(r, lang).decode("utf-8-sig")), csv_dialect(lang)))
        titles = [row[0] for row in rows if len(row) == 1]
        assert {t.title for t in report_tables(r, lang) if t.name.startswith("rating")} <= set(titles)
        cells = [cell for row in rows for cell in row]
        assert "'" + FORMULA in cells and FORMULA not in cells
        assert "'@SUM(A1) second line" in cells and "'+84 901 234 567 gọi lại giúp" in cells
        assert SCRIPT_TAG in cells  # only a page must escape it
        assert not any(cell.lstrip(" ").startswith(("=", "+", "@")) for cell in cells)
    by_counter = list(csv.reader(io.StringIO(render_csv_table(r, "ratings_counters", "en").decode("utf-8-sig")),
                                 csv_dialect("en")))
    head = by_counter[0]
    assert head[:5] == ["Counter", "Name", "Served", "Visits rated", "Rated of served (%)"]
    assert head[5:] == ["Very satisfied", "Very satisfied (%)", "Satisfied", "Satisfied (%)", "Neutral", "Neutral (%)",
                        "Dissatisfied", "Dissatisfied (%)", "Satisfied or better (%)"]
    three = next(row for row in by_counter if row[0] == "3")
    assert three[2:5] == ["3", "3", "100.0"] and three[5:7] == ["1", "33.3"] and three[-1] == "33.3"
    vi = list(csv.reader(io.StringIO(render_csv_table(r, "ratings", "vi").decode("utf-8-sig")), csv_dialect("vi")))
    assert vi[0][:4] == ["Kênh", "Đã phục vụ", "Lượt đánh giá", "Tỷ lệ được đánh giá (%)"]
    assert [row[0] for row in vi[1:]] == ["Tất cả", "Nút bấm tại quầy", "Điện thoại"]
    assert vi[1][1:4] == ["10", "9", "90,0"] and vi[2][2] == "3" and vi[3][2] == "6"


def _sheets(book: zipfile.ZipFile) -> dict[str, ElementTree.Element]:
    """Each sheet's XML by its name."""
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
          "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships"}
    workbook = ElementTree.fromstring(book.read("xl/workbook.xml"))
    rels = ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels"))
    targets = {rel.get("Id"): rel.get("Target") for rel in rels}
    return {sheet.get("name") or "": ElementTree.fromstring(book.read("xl/" + str(targets[sheet.get(f"{{{ns['r']}}}id")])))
            for sheet in workbook.iterfind("m:sheets/m:sheet", ns)}


def test_xlsx_has_the_rating_sheets_and_text_stays_text(rated_run: tuple[Hall, list[Rated], Path]) -> None:
    _h, _ratings, path = rated_run
    r = day_report(path)
    m = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    with zipfile.ZipFile(io.BytesIO(render_xlsx(r, "en"))) as book:
        sheets = _sheets(book)
        strings = ["".join(t.text or "" for t in si.iter(f"{m}t"))
                   for si in ElementTree.fromstring(book.read("xl/sharedStrings.xml"))]
        styles = ElementTree.fromstring(book.read("xl/styles.xml"))
        names = book.namelist()
    assert list(sheets)[6:] == ["Ratings", "Ratings by service", "Ratings by counter", "Ratings by day",
                                "Ratings by hour served", "Reasons for low ratings", "Citizens' comments"]
    assert not [f for sheet in sheets.values() for f in sheet.iter(f"{m}f")]  # no formula anywhere
    assert not [name for name in names if name.startswith("xl/worksheets/_rels")]  # and no link
    cell_formats = styles.find(f"{m}cellXfs")
    assert cell_formats is not None
    quoted = {str(index) for index, xf in enumerate(cell_formats) if xf.get("quotePrefix") == "1"}

    def cells(name: str) -> list[list[tuple[str | None, str | None, str]]]:
        """(type, style, value) of each cell, row by row."""
        out = []
        for row in sheets[name].iter(f"{m}row"):
            out.append([(c.get("t"), c.get("s"), strings[int(c.findtext(f"{m}v") or 0)] if c.get("t") == "s"
                         else c.findtext(f"{m}v") or "") for c in row.iter(f"{m}c")])
        return out

    comments = cells("Citizens' comments")
    texts = {row[-1][2]: row[-1] for row in comments[1:]}
    assert set(texts) == {SCRIPT_TAG, FORMULA, "+84 901 234 567 gọi lại giúp", "@SUM(A1) second line",
                          MIDNIGHT_COMMENT}
    for text, (kind, style, _value) in texts.items():
        assert kind == "s"  # a shared string, never a formula
        assert (style in quoted) == looks_like_formula(text), text  # marked as typed with an apostrophe
    assert len(texts) == 5 and sum(looks_like_formula(text) for text in texts) == 3
    counters = cells("Ratings by counter")
    three = next(row for row in counters if row[0][2] == "3")
    assert [(kind, value) for kind, _style, value in three[2:5]] == [(None, "3"), (None, "3"), (None, "100")]


def test_the_printable_page_escapes_comments_and_shows_the_recent_ones(
        rated_run: tuple[Hall, list[Rated], Path]) -> None:
    _h, _ratings, path = rated_run
    r = day_report(path)
    page = render_html(r)
    assert "<script" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; chờ lâu" in page
    assert "Đánh giá của công dân" in page and "Lý do chưa hài lòng" in page and "Ý kiến gần đây" in page
    assert "mới nhất trong" not in page  # all five shown: nothing to say
    assert page.count("<svg") == 4  # the levels' chart beside the three of the visits
    assert FORMULA.replace('"', "&quot;") in page  # a page shows the citizen's text as written
    assert "Citizens&#x27; ratings" in render_html(r, "en")
    first = r.rating_comments[0]
    many = dataclasses.replace(r, rating_comments=tuple(
        first._replace(at=first.at + timedelta(minutes=n), text=f"ý kiến {n}") for n in range(RECENT_COMMENTS + 5)))
    page = render_html(many)
    assert f"ý kiến {RECENT_COMMENTS + 4}<" in page and "ý kiến 4<" not in page and "ý kiến 5<" in page
    assert f"{RECENT_COMMENTS} ý kiến mới nhất trong {RECENT_COMMENTS + 5}" in page
    text = render_text(many)
    assert f"ý kiến {RECENT_COMMENTS + 4}" in text and "ý kiến 4\n" not in text


def test_a_period_without_ratings_says_so(rated_run: tuple[Hall, list[Rated], Path]) -> None:
    _h, _ratings, path = rated_run
    r = day_report(path, date(2026, 12, 1))
    assert r.ratings == reports.RatingFigures(0) and r.rating_comments == ()
    assert "Chưa có lượt nào được đánh giá trong kỳ này." in render_html(r)
    assert render_html(r).count("<svg") == 3


def test_the_text_report_keeps_each_comment_on_one_line(rated_run: tuple[Hall, list[Rated], Path]) -> None:
    _h, _ratings, path = rated_run
    text = render_text(day_report(path), "en")
    assert re.search(r"Phone +@SUM\(A1\) second line\n", text)
    assert "Citizens' comments" in text and "Reasons for low ratings" in text


def test_a_comment_no_file_could_hold_as_written_still_renders(rated_run: tuple[Hall, list[Rated], Path]) -> None:
    """A NUL, a terminal's escape and a lone surrogate: each replaced, and every format is still made."""
    _h, _ratings, path = rated_run
    r = day_report(path)
    odd = dataclasses.replace(r, rating_comments=(r.rating_comments[0]._replace(text="a\x00b\x1b[31mc\ud800d"),))
    rows = list(csv.reader(io.StringIO(render_csv(odd, "en").decode("utf-8-sig")), csv_dialect("en")))
    assert "a b [31mc\ufffdd" in [cell for row in rows for cell in row]
    assert "a b [31mc\ufffdd" in render_html(odd) and "a b [31mc\ufffdd" in render_text(odd)
    with zipfile.ZipFile(io.BytesIO(render_xlsx(odd))) as book:
        assert "a b [31mc\ufffdd" in book.read("xl/sharedStrings.xml").decode("utf-8")
