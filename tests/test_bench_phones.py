"""The 500-phone benchmark (bench/phones_bench.py): its bookkeeping of what each call did to the pages, and a
small run of the whole thing against a real broker, controller and manager."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from bench.phones_bench import CallRecord, Options, PageEvent, analyse, rows_of, run, spread

LANE = {"A": ["a", "b", "c"]}


def _call(index: int, token: str, sent_s: float, *, call_seen_s: float | None = None) -> CallRecord:
    return CallRecord(index=index, counter="1", sent_s=sent_s, reply_s=sent_s + 0.005, call_seen_s=call_seen_s,
                      service="A", number=token.upper(), token=token)


def _pages(**events: Sequence[PageEvent]) -> dict[str, Sequence[PageEvent]]:
    return dict(events)


def test_each_page_reaches_a_call_when_it_shows_the_count_the_call_left() -> None:
    pages = _pages(a=[(0.0, "waiting", 0), (10.1, "called", None)],
                   b=[(0.0, "waiting", 1), (10.2, "waiting", 0)],
                   c=[(0.0, "waiting", 2), (10.3, "waiting", 1)])

    outcome, = analyse(LANE, [_call(0, "a", 10.0, call_seen_s=10.05)], pages).calls

    assert outcome.called_s == pytest.approx(0.1)
    assert outcome.called_from_call_s == pytest.approx(0.05)
    assert outcome.fanout_s == pytest.approx(0.3)
    assert (outcome.pages_expected, outcome.pages_reached, outcome.missed) == (2, 2, ())


def test_a_page_handed_a_newer_status_instead_has_seen_the_earlier_call_too() -> None:
    pages = _pages(a=[(0.0, "waiting", 0), (10.1, "called", None)],
                   b=[(0.0, "waiting", 1), (10.2, "waiting", 0), (10.6, "called", None)],
                   c=[(0.0, "waiting", 2), (10.7, "waiting", 0)])

    first, second = analyse(LANE, [_call(0, "a", 10.0), _call(1, "b", 10.5)], pages).calls

    assert first.fanout_s == pytest.approx(0.7)
    assert second.fanout_s == pytest.approx(0.2)
    assert (second.pages_expected, second.missed) == (1, ())


def test_a_page_that_never_shows_the_new_count_is_missed_and_the_call_has_no_fanout_time() -> None:
    pages = _pages(a=[(0.0, "waiting", 0), (10.1, "called", None)],
                   b=[(0.0, "waiting", 1), (10.2, "waiting", 0)],
                   c=[(0.0, "waiting", 2)])

    outcome, = analyse(LANE, [_call(0, "a", 10.0)], pages).calls

    assert outcome.missed == ("c",)
    assert outcome.fanout_s is None
    assert outcome.pages_reached == 1


def test_a_count_shown_before_the_call_was_sent_is_reported_as_wrong() -> None:
    pages = _pages(a=[(0.0, "waiting", 0), (10.1, "called", None)],
                   b=[(0.0, "waiting", 0)],
                   c=[(0.0, "waiting", 2), (10.3, "waiting", 1)])

    result = analyse(LANE, [_call(0, "a", 10.0)], pages)

    assert result.calls[0].early == ("b",)
    assert result.first_status_wrong == ("b",)


def test_a_count_that_grows_is_counted() -> None:
    pages = _pages(a=[(0.0, "waiting", 0)], b=[(0.0, "waiting", 1), (1.0, "waiting", 2), (2.0, "waiting", 1)],
                   c=[(0.0, "waiting", 2)])

    assert analyse(LANE, [], pages).ahead_went_up == 1


def test_spread_gives_percentiles_in_milliseconds_of_the_samples_that_exist() -> None:
    figures = spread([0.001 * n for n in range(1, 101)] + [None])

    assert figures == {"n": 100, "p50_ms": 51.0, "p95_ms": 95.0, "p99_ms": 99.0, "max_ms": 100.0}
    assert spread([None]) == {"n": 0}


@pytest.mark.slow
def test_a_small_run_follows_every_page_through_every_call() -> None:
    started = time.monotonic()
    data = run(Options(phones=40, calls=12, counters=4, gap_min_s=0.05, gap_max_s=0.15, idle_s=1.0))
    summary = data["analysis"]

    assert data["pages_with_errors"] == {}
    assert summary["first_status_wrong"] == 0
    assert summary["calls_without_reply"] == 0
    assert summary["called_page"]["n"] == 12
    assert summary["page_updates_missed"] == 0
    assert summary["page_updates_expected"] == sum(range(28, 40))
    assert summary["early"] == 0
    assert summary["ahead_went_up"] == 0
    assert len(rows_of(data)) > 10
    assert time.monotonic() - started < 60
