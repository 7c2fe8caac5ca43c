"""How a report yields: the CPU budget's pauses (clocks passed in), the report thread's priority, the memo of
closed periods' reports."""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

import pytest

from manager import budget, cache, reports
from manager.cli import main
from tests.test_manager_cache import NOW, cached, ledger, uncached  # noqa: F401 - ledger is a fixture
from tests.test_manager_reports import DAY1, DAY2, spec


class Clocks:
    """A wall clock and a thread's CPU clock that the test moves; ``sleep`` moves the wall clock only."""

    def __init__(self) -> None:
        self.wall_s = 100.0
        self.cpu_s = 7.0
        self.slept: list[float] = []

    def work(self, cpu_s: float) -> None:
        self.wall_s += cpu_s
        self.cpu_s += cpu_s

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.wall_s += seconds

    def budget(self, share: float, allowance: budget.CpuAllowance | None = None) -> budget.CpuBudget:
        return budget.CpuBudget(share, allowance=allowance or budget.CpuAllowance(share, now=self.wall_s),
                                clock=lambda: self.wall_s, cpu_clock=lambda: self.cpu_s, sleep=self.sleep)


def test_a_full_allowance_lets_a_report_run_at_full_speed() -> None:
    allowance = budget.CpuAllowance(0.1, burst_s=0.5, now=0.0)
    assert allowance.spend(0.3, now=0.3) == 0 and allowance.left_s == pytest.approx(0.2)


def test_an_overdrawn_allowance_sleeps_until_the_refill_pays_the_debt() -> None:
    allowance = budget.CpuAllowance(0.1, burst_s=0.5, now=0.0)
    assert allowance.spend(0.7, now=0.7) == pytest.approx(0.2 / 0.1)  # 0.2 s overdrawn at a tenth of a core
    assert allowance.spend(0.0, now=0.7 + 2.0) == 0 and allowance.left_s == pytest.approx(0.0)


def test_the_allowance_refills_while_nothing_is_spent_up_to_its_burst() -> None:
    allowance = budget.CpuAllowance(0.25, burst_s=0.5, now=0.0)
    allowance.spend(0.5, now=0.5)
    allowance.spend(0.0, now=1.5)
    assert allowance.left_s == pytest.approx(0.25)
    allowance.spend(0.0, now=100.0)
    assert allowance.left_s == pytest.approx(0.5)


def test_a_share_of_one_never_pauses() -> None:
    clocks = Clocks()
    paced = budget.CpuBudget(1, clock=lambda: clocks.wall_s, cpu_clock=lambda: clocks.cpu_s, sleep=clocks.sleep)
    for _ in range(100):
        clocks.work(0.1)
        paced.checkpoint()
    assert clocks.slept == []


@pytest.mark.parametrize("share", [0, -0.5, 1.5])
def test_a_share_outside_one_core_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="CPU share"):
        budget.check_share(share)


def test_reports_back_to_back_hold_a_tenth_of_a_core_past_the_burst() -> None:
    clocks = Clocks()
    allowance = budget.CpuAllowance(0.1, burst_s=0.5, now=clocks.wall_s)
    for _ in range(3):  # three reports of 1 s of CPU each, one after the other
        paced = clocks.budget(0.1, allowance)
        for _ in range(100):
            clocks.work(0.01)
            paced.checkpoint()
    # 3 s of CPU: 0.5 from the burst, the other 2.5 refilled at a tenth of a core: 25 s of wall time in all.
    assert clocks.wall_s - 100 == pytest.approx(2.5 / 0.1, abs=0.02)


def test_a_report_now_and_then_never_sleeps() -> None:
    clocks = Clocks()
    allowance = budget.CpuAllowance(0.1, burst_s=0.5, now=clocks.wall_s)
    for _ in range(5):  # a 0.3 s report every minute: the refill (6 s a minute) covers it
        paced = clocks.budget(0.1, allowance)
        for _ in range(30):
            clocks.work(0.01)
            paced.checkpoint()
        clocks.wall_s += 60
    assert clocks.slept == []


def test_the_processs_reports_share_one_allowance() -> None:
    clocks = Clocks()
    cpu = {"a": 0.0, "b": 0.0}  # each report's own thread's CPU clock

    def paced(thread: str) -> budget.CpuBudget:
        return budget.CpuBudget(0.37, clock=lambda: clocks.wall_s, cpu_clock=lambda: cpu[thread], sleep=clocks.sleep)

    first, second = paced("a"), paced("b")
    cpu["a"] += 0.4
    first.checkpoint()
    assert clocks.slept == []  # within the burst alone
    cpu["b"] += 0.4
    second.checkpoint()
    assert clocks.slept == [pytest.approx(0.3 / 0.37)]  # together they overdrew the one allowance by 0.3 s


def test_the_report_thread_runs_idle_at_nice_19_and_the_others_keep_theirs() -> None:
    if not hasattr(os, "SCHED_IDLE"):
        pytest.skip("SCHED_IDLE is Linux's")
    seen: dict[str, object] = {}

    def report_thread() -> None:
        seen["lowered"] = budget.lower_this_thread()
        seen["policy"] = os.sched_getscheduler(0)
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    thread = threading.Thread(target=report_thread)
    thread.start()
    thread.join()
    assert seen == {"lowered": True, "policy": os.SCHED_IDLE, "nice": budget.NICE_LOWEST}
    assert (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, threading.get_native_id())) == before


def test_a_report_within_a_budget_equals_one_without(ledger: Path, tmp_path: Path) -> None:  # noqa: F811
    period = reports.range_period(DAY1.isoformat(), DAY2.isoformat())
    paced = budget.CpuBudget(0.5, allowance=budget.CpuAllowance(0.5, burst_s=0, now=0))
    report = cache.build_report(ledger, spec=spec(), period=period, now=NOW, cache_dir=tmp_path / "c",
                                budget=paced)
    assert report == uncached(ledger, period)


def test_a_closed_period_is_remembered_and_generated_anew(ledger: Path, tmp_path: Path) -> None:  # noqa: F811
    memo = cache.ReportMemo()
    period = reports.day_period(DAY1.isoformat())
    first = cache.build_report(ledger, spec=spec(), period=period, now=NOW, cache_dir=tmp_path / "c", memo=memo)
    later = NOW.replace(minute=30)
    second = cache.build_report(ledger, spec=spec(), period=period, now=later, cache_dir=tmp_path / "c", memo=memo)
    assert second == dataclasses.replace(first, generated_at=later)
    assert second.totals is first.totals  # the same report, not made again
    assert len(memo) == 1


def test_a_period_with_today_is_never_remembered(ledger: Path, tmp_path: Path) -> None:  # noqa: F811
    memo = cache.ReportMemo()
    for period in (reports.day_period(DAY2.isoformat()), reports.month_period("2026-12")):
        cache.build_report(ledger, spec=spec(), period=period, now=NOW, cache_dir=tmp_path / "c", memo=memo)
    assert len(memo) == 0


def test_the_memo_keeps_the_most_recently_used(ledger: Path) -> None:  # noqa: F811
    memo = cache.ReportMemo(size=2)
    report = uncached(ledger, reports.day_period(DAY1.isoformat()))
    for key in ("a", "b"):
        memo.put((key,), report)
    assert memo.get(("a",)) is report
    memo.put(("c",), report)
    assert ("b",) not in memo
    assert ("a",) in memo
    assert ("c",) in memo


def test_filtered_reports_are_remembered_apart(ledger: Path, tmp_path: Path) -> None:  # noqa: F811
    memo = cache.ReportMemo()
    period = reports.day_period(DAY1.isoformat())
    for filters in (reports.Filters(), reports.Filters(service="B")):
        report = cache.build_report(ledger, spec=spec(), period=period, filters=filters, now=NOW,
                                    cache_dir=tmp_path / "c", memo=memo)
        assert report == cached(ledger, tmp_path / "c", period, filters)
    assert len(memo) == 2


def test_cli_refuses_a_cpu_share_outside_one_core(ledger: Path, tmp_path: Path,  # noqa: F811
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "hall.toml"
    source = (Path(__file__).parent / "test_manager_reports.py").read_text(encoding="utf-8")
    config.write_text(source.split('path.write_text("""', 1)[1].split('"""', 1)[0].replace("STATE_DIR", str(tmp_path)),
                      encoding="utf-8")
    base = ["report", "--config", str(config), "--ledger", str(ledger), "--day", DAY1.isoformat(), "--no-cache"]
    with pytest.raises(SystemExit) as refused:
        main([*base, "--cpu-share", "0"])
    assert refused.value.code == 2
    assert "CPU share" in capsys.readouterr().err
    assert main([*base, "--cpu-share", "0.1"]) == 0
    assert main([*base, "--cpu-share", "1"]) == 0
