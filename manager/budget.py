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
   journal's events, a day's summary, a row's figures). Past a free allowance of CPU time (``FREE_CPU_S``: a day
   report is done within it and is never slowed), the thread sleeps as long as it takes for the CPU time it
   used to stay within ``share`` of one core over the wall time since the start (``pause_s``, pure). A thread
   the hall kept off the CPU has used less than its share and is not made to sleep on top of that.

With the default share of 0.25 a warm year report (0.1 s of CPU) takes about 0.3 s, a filtered year about
0.3-1.2 s; a day report (10-40 ms of CPU) is as fast as before.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

DEFAULT_CPU_SHARE = 0.25
FREE_CPU_S = 0.05
MIN_PAUSE_S = 0.002  # shorter sleeps cost more in wake-ups than they give back
NICE_LOWEST = 19


def pause_s(*, cpu_s: float, wall_s: float, share: float, free_cpu_s: float = FREE_CPU_S) -> float:
    """How long to sleep now so that, after the first ``free_cpu_s`` of CPU time, the CPU time used stays within
    ``share`` of one core: ``cpu_s`` used and ``wall_s`` elapsed since the start. 0 when within the budget (or
    ``share`` ≥ 1: no budget)."""
    if share >= 1 or cpu_s <= free_cpu_s:
        return 0.0
    if share <= 0:
        raise ValueError(f"a CPU share must be above 0, not {share}")
    return max(0.0, free_cpu_s + (cpu_s - free_cpu_s) / share - wall_s)


class CpuBudget:
    """The CPU budget of one report, made on one thread (``checkpoint`` is called from the thread that started
    it: ``cpu_clock`` is that thread's CPU time)."""

    def __init__(self, share: float = DEFAULT_CPU_SHARE, *, free_cpu_s: float = FREE_CPU_S,
                 clock: Callable[[], float] = time.monotonic, cpu_clock: Callable[[], float] = time.thread_time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if share <= 0:
            raise ValueError(f"a CPU share must be above 0, not {share}")
        self.share = share
        self.free_cpu_s = free_cpu_s
        self._clock, self._cpu_clock, self._sleep = clock, cpu_clock, sleep
        self._wall0 = clock()
        self._cpu0 = cpu_clock()
        self.slept_s = 0.0

    def checkpoint(self) -> None:
        """Sleep if the report is over its share (see ``pause_s``)."""
        if self.share >= 1:
            return
        pause = pause_s(cpu_s=self._cpu_clock() - self._cpu0, wall_s=self._clock() - self._wall0, share=self.share,
                        free_cpu_s=self.free_cpu_s)
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
