"""How a report yields to the hall: the thread that makes it runs at the lowest CPU priority and within a CPU
budget.

Theory of operation
-------------------
The controller, the broker and the dispensers' traffic come first; a report (a warm year about 0.1 s of one
core, a filtered year 0.1-0.3 s, a year's cold pass through the ledger about 15 s) comes last. Two measures,
both on the thread that makes the report only, so that the rest of the manager (the live view, the actions)
keeps its normal priority:

1. ``lower_this_thread()``: the calling thread goes to ``SCHED_IDLE`` (it runs only when a CPU has nothing else to
   do) at nice 19. Linux applies both to one thread. Going back needs ``CAP_SYS_NICE`` (or ``LimitNICE=``), so
   the manager builds reports on threads of their own (``report_executor``) and never hands a lowered thread
   back to other work.
2. ``CpuBudget``: the report's loops call ``checkpoint()`` between natural pieces of work (a batch of the
   journal's events, a day's summary, a row's figures). Each checkpoint spends the CPU time the thread used since
   the last one from the process's allowance (``CpuAllowance``, pure): a bucket of at most ``BURST_CPU_S`` of CPU
   time, refilled at ``share`` of one core. A report asked for now and then runs from the bucket at full speed; a
   report that overdraws it sleeps until the refill has paid the debt. So reports made back to back, or several
   at once (the web service's two report threads share one allowance), hold the hall's CPU to ``share`` of a core
   on average, and a thread the hall kept off the CPU spends nothing.

With the default share of 0.1 and a burst of 0.5 s of CPU, a manager's report (a day 10-40 ms of CPU, a warm
unfiltered year 0.1 s, a filtered year 0.1-0.3 s) runs at full speed; only reports made back to back for longer
than the burst are held to a tenth of a core (a cold year, 15 s of CPU, about two and a half minutes).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

DEFAULT_CPU_SHARE = 0.1
BURST_CPU_S = 0.5
MIN_PAUSE_S = 0.002  # shorter sleeps cost more in wake-ups than they give back
NICE_LOWEST = 19


class CpuAllowance:
    """The CPU time reports may spend: at most ``burst_s`` at once, refilled at ``share`` of one core (a token
    bucket). Pure bookkeeping: the times are passed in. Starts full."""

    def __init__(self, share: float, *, burst_s: float = BURST_CPU_S, now: float) -> None:
        if share <= 0:
            raise ValueError(f"a CPU share must be above 0, not {share}")
        self.share = share
        self.burst_s = burst_s
        self.left_s = burst_s
        self._at = now

    def spend(self, cpu_s: float, *, now: float) -> float:
        """Spend ``cpu_s`` of CPU time at monotonic ``now``; returns how long to sleep for the refill to pay what
        is overdrawn (0 when nothing is)."""
        self.left_s = min(self.burst_s, self.left_s + max(0.0, now - self._at) * self.share) - cpu_s
        self._at = max(self._at, now)
        return 0.0 if self.left_s >= 0 else -self.left_s / self.share


_shared: dict[float, CpuAllowance] = {}
_shared_lock = threading.Lock()


class CpuBudget:
    """The CPU budget of one report, made on one thread (``checkpoint`` is called from the thread that started
    it: ``cpu_clock`` is that thread's CPU time). It spends from ``allowance``; by default the process's one for
    ``share`` (every report of the process at that share draws from it)."""

    def __init__(self, share: float = DEFAULT_CPU_SHARE, *, allowance: CpuAllowance | None = None,
                 clock: Callable[[], float] = time.monotonic, cpu_clock: Callable[[], float] = time.thread_time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if share <= 0:
            raise ValueError(f"a CPU share must be above 0, not {share}")
        self.share = share
        self._clock, self._cpu_clock, self._sleep = clock, cpu_clock, sleep
        if allowance is None and share < 1:
            with _shared_lock:
                allowance = _shared.get(share) or _shared.setdefault(share, CpuAllowance(share, now=clock()))
        self._allowance = allowance
        self._lock = _shared_lock
        self._cpu0 = self._cpu_last = cpu_clock()
        self.slept_s = 0.0

    def checkpoint(self) -> None:
        """Spend the CPU time used since the last checkpoint; sleep if the allowance is overdrawn."""
        if self.share >= 1 or self._allowance is None:
            return
        cpu = self._cpu_clock()
        with self._lock:
            pause = self._allowance.spend(cpu - self._cpu_last, now=self._clock())
        self._cpu_last = cpu
        if pause >= MIN_PAUSE_S:
            self._sleep(pause)
            self.slept_s += pause

    @property
    def cpu_s(self) -> float:
        """The CPU time used since the start."""
        return self._cpu_clock() - self._cpu0


def check_share(share: float) -> float:
    """``share`` if it is a CPU share (above 0, at most 1); ``ValueError`` otherwise."""
    if not 0 < share <= 1:
        raise ValueError(f"the reports' CPU share must be above 0 and at most 1 (one core), not {share}")
    return share


def lower_this_thread(*, idle: bool = True) -> bool:
    """Put the calling thread at nice 19 and, with ``idle``, at ``SCHED_IDLE`` (Linux; elsewhere nothing
    happens). True when all of it took."""
    done = True
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, NICE_LOWEST)
    except (OSError, AttributeError) as exc:
        log.debug("cannot lower the report thread's nice value: %s", exc)
        done = False
    if not idle:
        return done
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: the calling thread
    except (OSError, AttributeError) as exc:
        log.debug("cannot put the report thread at SCHED_IDLE: %s", exc)
        done = False
    return done


def report_executor(*, workers: int = 1) -> concurrent.futures.ThreadPoolExecutor:
    """Threads that only make reports, each at the lowest priority from its start (``lower_this_thread``)."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="report",
                                                 initializer=lower_this_thread)
