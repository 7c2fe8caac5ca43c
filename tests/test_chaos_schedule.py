"""The chaos run's seeded fault schedule and generated hall config."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bench.chaos_hall import COUNTERS, DISPENSERS, hall_toml, rollover_after
from bench.chaos_schedule import Fault, plan_faults
from hall_controller.config import load

COUNTER_IDS = tuple(c.id for c in COUNTERS)
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def plan(seed: int = 1, *, duration_s: float = 480.0, rollover_at_s: float = 230.0, kills: int = 12,
         broker_restarts: int = 4, cuts: int = 40) -> list[Fault]:
    return plan_faults(seed=seed, duration_s=duration_s, rollover_at_s=rollover_at_s, kills=kills,
                       broker_restarts=broker_restarts, cuts=cuts, dispensers=DISPENSERS, counters=COUNTER_IDS)


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    assert plan(7) == plan(7)
    assert plan(7) != plan(8)


def test_the_schedule_has_every_fault_asked_for_in_time_order() -> None:
    faults = plan()
    kinds = [f.kind for f in faults]

    assert kinds.count("kill_controller") == 12
    assert kinds.count("restart_broker") == 4
    assert kinds.count("cut_dispenser") + kinds.count("cut_counter") == 40
    assert [f.at_s for f in faults] == sorted(f.at_s for f in faults)
    assert all(3.0 <= f.at_s <= 477.0 for f in faults if f.kind != "restart_broker")


def test_nothing_else_happens_near_a_broker_restart() -> None:
    faults = plan(3)
    restarts = [f.at_s for f in faults if f.kind == "restart_broker"]

    for fault in faults:
        if fault.kind != "restart_broker":
            assert all(abs(fault.at_s - r) >= 6.0 for r in restarts), fault


def test_one_controller_kill_lands_just_before_the_rollover_and_kills_are_apart() -> None:
    kills = sorted(f.at_s for f in plan(5) if f.kind == "kill_controller")

    assert 229.0 < min(kills, key=lambda k: abs(k - 230.0)) < 230.0
    assert all(b - a >= 2.5 for a, b in itertools.pairwise(kills))


def test_a_schedule_that_cannot_fit_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot place"):
        plan(duration_s=20.0, rollover_at_s=10.0, kills=12, broker_restarts=1)


def test_the_rollover_is_the_first_whole_minute_after_the_wait() -> None:
    start = datetime(2026, 11, 27, 8, 0, 50, tzinfo=ZONE)

    assert rollover_after(start, at_least_s=5) == datetime(2026, 11, 27, 8, 1, tzinfo=ZONE)
    assert rollover_after(start, at_least_s=10) == datetime(2026, 11, 27, 8, 1, tzinfo=ZONE)
    assert rollover_after(start, at_least_s=11) == datetime(2026, 11, 27, 8, 2, tzinfo=ZONE)


def test_the_generated_hall_passes_the_controllers_strict_config(tmp_path: Path) -> None:
    path = tmp_path / "hall.toml"
    path.write_text(hall_toml(rollover=datetime(2026, 11, 27, 14, 33, tzinfo=ZONE), state_dir=str(tmp_path)),
                    encoding="utf-8")

    hall = load(path).hall

    assert len(hall.dispensers) == 20
    assert len(hall.counters) == 20
    assert hall.day_starts_at.isoformat() == "14:33:00"
    assert {c.policy for c in hall.counters} == {"priority_first", "interleave"}
    for service in hall.services:
        assert not service.wrap
        assert sum(service.id in c.services for c in hall.counters) >= 5
