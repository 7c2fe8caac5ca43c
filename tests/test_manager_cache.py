"""The report cache: a report through it equals the one made from the ledger alone, for any period, filter and
ledger (a corrected day too); only closed days are kept; a damaged, foreign or unusable cache never fails a
report."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sqlite3
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

import pytest

from bench import report_bench
from hall_controller.engine.events import IssueTicket, Tick
from hall_controller.ledger import Ledger
from manager import cache, journal, reports
from manager.cli import main
from tests import test_manager_reports_ratings as rated
from tests.test_manager_reports import (
    DAY1,
    DAY2,
    GLITCH_DAY,
    TARGETS,
    Hall,
    at,
    check_figures,
    corrected_script,
    day1,
    script,
    spec,
)

PERIODS = [reports.day_period(DAY1.isoformat()), reports.day_period(DAY2.isoformat()),
           reports.range_period(DAY1.isoformat(), DAY2.isoformat()), reports.month_period("2026-12")]
FILTERS = [reports.Filters(), reports.Filters(service="B"), reports.Filters(counter="3"),
           reports.Filters(lane="priority"), reports.Filters(lane="regular", service="A"),
           reports.Filters(category="elderly")]
NOW = at(DAY2, 23, 0)


def uncached(path: Path, period: reports.Period, filters: reports.Filters | None = None) -> reports.Report:
    events = journal.read_events(path, first_day=period.first, last_day=period.last)
    return reports.build_report(events, spec=spec(), period=period, filters=filters, now=NOW)


def cached(path: Path, cache_dir: Path, period: reports.Period,
           filters: reports.Filters | None = None) -> reports.Report:
    return cache.build_report(path, spec=spec(), period=period, filters=filters, now=NOW, cache_dir=cache_dir)


def stored(cache_dir: Path) -> list[tuple[int, int, str]]:
    with sqlite3.connect(cache_dir / cache.CACHE_FILE) as db:
        return [tuple(row) for row in db.execute("SELECT first, stop, day FROM days ORDER BY first")]


def stored_months(cache_dir: Path) -> dict[str, list[str]]:
    """{month: the days its summary stands for}."""
    with sqlite3.connect(cache_dir / cache.CACHE_FILE) as db:
        return {month: [day for _, _, day in json.loads(keys)]
                for month, keys in db.execute("SELECT month, segments FROM months ORDER BY month")}


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger" / "ledger.sqlite3"
    path.parent.mkdir()
    script(path)
    return path


def test_reports_through_the_cache_equal_reports_from_the_ledger(ledger: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    for _ in ("cold", "warm"):
        for period in PERIODS:
            for filters in FILTERS:
                assert cached(ledger, cache_dir, period, filters) == uncached(ledger, period, filters)


def test_only_closed_days_are_kept(ledger: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cached(ledger, cache_dir, PERIODS[3])
    assert [day for _, _, day in stored(cache_dir)] == [DAY1.isoformat()]  # DAY2 is still open


def test_today_is_read_from_the_journal_and_kept_once_the_next_day_starts(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    h = script(path)
    cache_dir = tmp_path / "cache"
    assert cached(path, cache_dir, PERIODS[1]).totals.outcomes.issued == 2
    engine_ledger = Ledger(path, hall_id="h")
    for when, tid in ((at(DAY2, 9, 0), "late"), (at(DAY2.replace(day=5), 8, 0), "next")):
        decision = h.engine.handle(IssueTicket("d1", f"r-{tid}", "A", False, None, tid), now=when)
        engine_ledger.append(list(decision.events))
    engine_ledger.close()
    assert cached(path, cache_dir, PERIODS[1]).totals.outcomes.issued == 3
    assert [day for _, _, day in stored(cache_dir)] == [DAY2.isoformat()]  # only the days a report asked for
    month = reports.month_period("2026-12")
    assert cached(path, cache_dir, month) == uncached(path, month)
    assert cached(path, cache_dir, month).totals.outcomes.issued == uncached(path, PERIODS[2]).totals.outcomes.issued + 1


def test_a_corrected_day_is_kept_under_its_corrected_label(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    h = corrected_script(path)
    cache_dir = tmp_path / "cache"
    everything = reports.range_period(DAY1.isoformat(), GLITCH_DAY.isoformat())
    for period in (reports.day_period(DAY1.isoformat()), reports.day_period(GLITCH_DAY.isoformat()), everything):
        for _ in ("cold", "warm"):
            assert cached(path, cache_dir, period) == uncached(path, period)
    assert [day for _, _, day in stored(cache_dir)] == [DAY1.isoformat(), DAY1.isoformat()]
    check_figures(cached(path, cache_dir, reports.day_period(DAY1.isoformat())).totals, day1(h), TARGETS)


def test_a_damaged_cache_file_is_rebuilt_with_a_warning(ledger: Path, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    (cache_dir / cache.CACHE_FILE).write_bytes(b"not a database at all" * 300)
    with caplog.at_level(logging.WARNING):
        assert cached(ledger, cache_dir, PERIODS[2]) == uncached(ledger, PERIODS[2])
    assert "damaged" in caplog.text
    assert [day for _, _, day in stored(cache_dir)] == [DAY1.isoformat()]


def test_a_damaged_day_in_the_cache_is_rebuilt_with_a_warning(ledger: Path, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    cache_dir = tmp_path / "cache"
    by_service = FILTERS[1]  # a filtered report reads the days (an unfiltered one their month's summary)
    cached(ledger, cache_dir, PERIODS[2], by_service)
    with sqlite3.connect(cache_dir / cache.CACHE_FILE) as db:
        db.execute("UPDATE days SET samples = x'0102'")
    with caplog.at_level(logging.WARNING):
        assert cached(ledger, cache_dir, PERIODS[2], by_service) == uncached(ledger, PERIODS[2], by_service)
    assert "damaged" in caplog.text
    assert cached(ledger, cache_dir, PERIODS[2], by_service) == uncached(ledger, PERIODS[2], by_service)
    assert [day for _, _, day in stored(cache_dir)] == [DAY1.isoformat()]


def test_another_ledger_empties_the_cache(ledger: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cached(ledger, cache_dir, PERIODS[2])
    other = tmp_path / "other.sqlite3"
    Ledger(other, hall_id="h").close()  # an empty hall: no day worked
    assert cached(other, cache_dir, PERIODS[2]).days_worked == ()
    assert stored(cache_dir) == []
    assert stored_months(cache_dir) == {}
    copy = tmp_path / "copy.sqlite3"
    shutil.copyfile(ledger, copy)  # the same journal in another file (a restore): made afresh, same figures
    assert cached(copy, cache_dir, PERIODS[2]) == uncached(ledger, PERIODS[2])


def test_other_target_waits_make_the_days_again(ledger: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cached(ledger, cache_dir, PERIODS[0])
    hall = spec()
    stricter = dataclasses.replace(hall, services=tuple(dataclasses.replace(s, target_wait_s=60)
                                                        for s in hall.services))
    strict = cache.build_report(ledger, spec=stricter, period=PERIODS[0], now=NOW, cache_dir=cache_dir)
    events = journal.read_events(ledger, first_day=DAY1, last_day=DAY1)
    assert strict == reports.build_report(events, spec=stricter, period=PERIODS[0], now=NOW)
    assert strict.totals.within_target < cached(ledger, cache_dir, PERIODS[0]).totals.within_target


def test_an_unusable_cache_directory_only_warns(ledger: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING):
        assert cached(ledger, blocker / "cache", PERIODS[2]) == uncached(ledger, PERIODS[2])
    assert "cannot be opened" in caplog.text


def test_cli_keeps_its_cache_where_told(ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "hall.toml"
    source = (Path(__file__).parent / "test_manager_reports.py").read_text(encoding="utf-8")
    config.write_text(source.split('path.write_text("""', 1)[1].split('"""', 1)[0].replace("STATE_DIR", str(tmp_path)),
                      encoding="utf-8")
    base = ["report", "--config", str(config), "--ledger", str(ledger), "--month", "2026-12"]
    assert main([*base, "--cache", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / cache.CACHE_FILE).is_file()
    first = capsys.readouterr().out
    assert main([*base, "--no-cache", "--cache", str(tmp_path / "none")]) == 0
    assert not (tmp_path / "none").exists()
    assert capsys.readouterr().out == first


# --- month summaries -----------------------------------------------------------------------------------------------


def test_a_report_without_filters_keeps_the_closed_days_of_each_month_merged(ledger: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cached(ledger, cache_dir, PERIODS[3], FILTERS[1])
    assert stored_months(cache_dir) == {}  # a filtered report reads days and merges none
    cached(ledger, cache_dir, PERIODS[3])
    assert stored_months(cache_dir) == {"2026-12": [DAY1.isoformat()]}  # DAY2 is still open
    assert cached(ledger, cache_dir, PERIODS[3]) == uncached(ledger, PERIODS[3])


def test_a_month_summary_is_made_again_once_another_day_of_its_month_closes(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    h = script(path)
    cache_dir = tmp_path / "cache"
    month = reports.month_period("2026-12")
    cached(path, cache_dir, month)
    assert stored_months(cache_dir) == {"2026-12": [DAY1.isoformat()]}
    engine_ledger = Ledger(path, hall_id="h")
    decision = h.engine.handle(IssueTicket("d1", "r-next", "A", False, None, "next"), now=at(DAY2.replace(day=5), 8, 0))
    engine_ledger.append(list(decision.events))  # a new business day: DAY2 closes
    engine_ledger.close()
    assert cached(path, cache_dir, month) == uncached(path, month)
    assert stored_months(cache_dir) == {"2026-12": [DAY1.isoformat(), DAY2.isoformat()]}
    assert cached(path, cache_dir, month) == uncached(path, month)


def test_today_corrected_into_a_day_of_a_merged_month_is_reported_from_the_days(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    cache_dir = tmp_path / "cache"
    month = reports.month_period("2026-12")
    h = Hall(path)
    a = h.issue(at(DAY1, 8, 0), "B")
    h.call(at(DAY1, 8, 5), "1", a)
    h.finish(at(DAY1, 8, 9), "1", a)
    g = h.issue(at(GLITCH_DAY, 10, 0), "B")  # a clock glitch: a new business day, DAY1 closes
    cached(path, cache_dir, month)
    assert stored_months(cache_dir) == {"2026-12": [DAY1.isoformat()]}
    decision = h.engine.handle(Tick(confirmed=True), now=at(DAY1, 10, 5))
    h.ledger.append(list(decision.events))  # today is DAY1 again, beside DAY1's closed segment
    h.call(at(DAY1, 10, 6), "2", g)
    h.finish(at(DAY1, 10, 16), "2", g)
    h.ledger.close()
    assert cached(path, cache_dir, month) == uncached(path, month)
    assert cached(path, cache_dir, month).totals.outcomes.served == 2


def test_a_damaged_month_summary_is_rebuilt_with_a_warning(ledger: Path, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    cache_dir = tmp_path / "cache"
    cached(ledger, cache_dir, PERIODS[3])
    with sqlite3.connect(cache_dir / cache.CACHE_FILE) as db:
        db.execute("UPDATE months SET samples = x'0102'")
    with caplog.at_level(logging.WARNING):
        assert cached(ledger, cache_dir, PERIODS[3]) == uncached(ledger, PERIODS[3])
    assert "damaged" in caplog.text
    assert cached(ledger, cache_dir, PERIODS[3]) == uncached(ledger, PERIODS[3])
    assert stored_months(cache_dir) == {"2026-12": [DAY1.isoformat()]}


def test_month_summaries_left_from_another_ledger_are_never_used(ledger: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cached(ledger, cache_dir, PERIODS[3])
    with sqlite3.connect(cache_dir / cache.CACHE_FILE) as db:
        # As a version that knew no months leaves them when another ledger empties its cache.
        db.execute("UPDATE months SET owner = 'another ledger', samples = x'0102'")
    assert cached(ledger, cache_dir, PERIODS[3]) == uncached(ledger, PERIODS[3])
    assert cached(ledger, cache_dir, PERIODS[3]) == uncached(ledger, PERIODS[3])


def test_reports_over_months_of_a_generated_ledger_equal_reports_from_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "generated.sqlite3"
    first = date(2026, 1, 29)
    report_bench.build(path, [(first + timedelta(days=n), 40 + 7 * (n % 5)) for n in range(33)])  # to 2 March
    hall = report_bench.hall()
    cache_dir = tmp_path / "cache"
    periods = [reports.range_period("2026-01-01", "2026-03-31"), reports.month_period("2026-02"),
               reports.range_period("2026-01-30", "2026-02-27"), reports.week_period("2026-W09"),
               reports.day_period("2026-03-02")]
    filters = [reports.Filters(), reports.Filters(service="B"), reports.Filters(counter="5", lane="priority")]
    for _ in ("cold", "warm"):
        for period in periods:
            for chosen in filters:
                events = journal.read_events(path, first_day=period.first, last_day=period.last)
                assert cache.build_report(path, spec=hall, period=period, filters=chosen, cache_dir=cache_dir) == \
                    reports.build_report(events, spec=hall, period=period, filters=chosen)
    february = cache.build_report(path, spec=hall, period=periods[1], cache_dir=cache_dir)
    assert february.ratings.rated > 0 and february.rating_comments  # the generated days are rated too
    assert stored_months(cache_dir) == {
        "2026-01": ["2026-01-29", "2026-01-30", "2026-01-31"],
        "2026-02": [(date(2026, 2, 1) + timedelta(days=n)).isoformat() for n in range(28)],
        "2026-03": ["2026-03-01"]}  # 2 March is open


def test_summarising_the_closed_days_merges_their_months_too(ledger: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    summaries = cache.day_summaries(ledger, spec=spec(), first_day=DAY1, last_day=DAY1, cache_dir=cache_dir)
    assert [s.day for s in summaries or []] == [DAY1.isoformat()]
    assert stored_months(cache_dir) == {"2026-12": [DAY1.isoformat()]}  # as the manager's warm-up leaves it


# --- ratings -------------------------------------------------------------------------------------------------------


def test_reports_with_ratings_through_the_cache_equal_reports_from_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "rated.sqlite3"
    rated.script(path)
    cache_dir = tmp_path / "cache"
    periods = [*PERIODS, reports.day_period(rated.DAY3.isoformat()),
               reports.range_period(DAY1.isoformat(), rated.DAY3.isoformat())]
    for _ in ("cold", "warm"):
        for period in periods:
            for filters in FILTERS:
                events = journal.read_events(path, first_day=period.first, last_day=period.last)
                through_cache = cache.build_report(path, spec=spec(), period=period, filters=filters, now=rated.NOW,
                                                   cache_dir=cache_dir)
                assert through_cache == reports.build_report(events, spec=spec(), period=period, filters=filters,
                                                             now=rated.NOW)
    assert stored_months(cache_dir) == {"2026-12": [DAY1.isoformat(), DAY2.isoformat()]}  # DAY3 is open
    month = cache.build_report(path, spec=spec(), period=PERIODS[3], now=rated.NOW, cache_dir=cache_dir)
    assert month.ratings.rated == 12 and len(month.rating_comments) == 6
    assert {row.reason: row.count for row in month.rating_reasons}[rated.RETIRED.id] == 1


def test_a_cache_of_the_previous_format_is_made_anew_in_this_ones_layout(tmp_path: Path) -> None:
    path = tmp_path / "rated.sqlite3"
    rated.script(path)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    with closing(sqlite3.connect(cache_dir / cache.CACHE_FILE)) as db:  # as format 1 left it: no ratings column
        db.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE days (first INTEGER PRIMARY KEY, stop INTEGER NOT NULL, day TEXT NOT NULL, log TEXT NOT NULL,
                               cells TEXT NOT NULL, samples BLOB NOT NULL, last_at TEXT);
            CREATE TABLE months (month TEXT PRIMARY KEY, owner TEXT NOT NULL, segments TEXT NOT NULL,
                                 head TEXT NOT NULL, numbers BLOB NOT NULL, samples BLOB NOT NULL);
            INSERT INTO meta VALUES ('format', '1');
            INSERT INTO days VALUES (1, 99, '2026-12-03', 'null', '[]', x'', NULL);
        """)
        db.commit()
    month = reports.month_period("2026-12")
    for filters in (reports.Filters(), FILTERS[1], reports.Filters()):  # months made, days read, months read
        events = journal.read_events(path, first_day=month.first, last_day=month.last)
        assert cache.build_report(path, spec=spec(), period=month, filters=filters, now=rated.NOW,
                                  cache_dir=cache_dir) == reports.build_report(events, spec=spec(), period=month,
                                                                               filters=filters, now=rated.NOW)
    with closing(sqlite3.connect(cache_dir / cache.CACHE_FILE)) as db:
        assert "ratings" in [row[1] for row in db.execute("PRAGMA table_info(days)")]
        assert dict(db.execute("SELECT key, value FROM meta"))["format"] == cache.FORMAT
    assert [day for _, _, day in stored(cache_dir)] == [DAY1.isoformat(), DAY2.isoformat()]
