"""The chaos run's fault schedule: a pure function of a seed and the run's shape.

``plan_faults`` places every fault at a second of the run (counted from the start of the load):

* ``restart_broker``: spread over the run (one per equal share, jittered), each with a quiet window of
  ``quiet_s`` either side in which nothing else is injected, so the clients' time to recover from that
  restart is measured alone;
* ``kill_controller``: SIGKILL at seeded random moments at least ``kill_gap_s`` apart; one lands just before
  the business day rolls over, so the controller restarts into the new day;
* ``cut_dispenser`` / ``cut_counter``: a device's connection is cut at its next request (mid-request) and
  its reconnects are refused for ``down_s``.

The same arguments give the same schedule; the processes' timing is real, so outcomes vary within it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["kill_controller", "restart_broker", "cut_dispenser", "cut_counter"]


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault: ``at_s`` seconds into the load; ``target`` a device id for cuts; ``down_s`` for cuts."""

    at_s: float
    kind: FaultKind
    target: str = ""
    down_s: float = 0.0


def plan_faults(*, seed: int, duration_s: float, rollover_at_s: float | None, kills: int, broker_restarts: int,
                cuts: int, dispensers: tuple[str, ...], counters: tuple[str, ...], quiet_s: float = 6.0,
                kill_gap_s: float = 2.5, margin_s: float = 3.0) -> list[Fault]:
    """The faults of one run, in time order. Raises ValueError if they cannot fit into ``duration_s``."""
    rng = random.Random(seed)
    faults: list[Fault] = []
    share = duration_s / (broker_restarts + 1)
    restarts: list[float] = []
    for i in range(broker_restarts):
        at = (i + 1) * share + rng.uniform(-0.15, 0.15) * share
        if rollover_at_s is not None and abs(at - rollover_at_s) < quiet_s:
            at = rollover_at_s + quiet_s * (1 if at >= rollover_at_s else -1) * 1.01
        restarts.append(at)
        faults.append(Fault(at, "restart_broker"))

    def quiet(at: float) -> bool:
        return margin_s <= at <= duration_s - margin_s and all(abs(at - r) >= quiet_s for r in restarts)

    kill_times: list[float] = []
    if rollover_at_s is not None and kills > 0 and quiet(rollover_at_s - 0.4):
        kill_times.append(rollover_at_s - 0.4)
    tries = 0
    while len(kill_times) < kills:
        tries += 1
        if tries > 100_000:
            raise ValueError(f"cannot place {kills} controller kills {kill_gap_s} s apart in {duration_s} s")
        at = rng.uniform(margin_s, duration_s - margin_s)
        if quiet(at) and all(abs(at - k) >= kill_gap_s for k in kill_times):
            kill_times.append(at)
    faults.extend(Fault(at, "kill_controller") for at in kill_times)

    placed = 0
    tries = 0
    while placed < cuts:
        tries += 1
        if tries > 100_000:
            raise ValueError(f"cannot place {cuts} connection cuts in {duration_s} s")
        at = rng.uniform(margin_s, duration_s - margin_s)
        if not quiet(at):
            continue
        if rng.random() < 0.5:
            faults.append(Fault(at, "cut_dispenser", rng.choice(dispensers), round(rng.uniform(0.0, 3.0), 2)))
        else:
            faults.append(Fault(at, "cut_counter", rng.choice(counters), round(rng.uniform(0.0, 3.0), 2)))
        placed += 1
    return sorted(faults, key=lambda f: f.at_s)
