"""The hall's clock: wall-clock steps are noticed, followed only when vouched for, and never break order."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hall_controller.clock import HallClock

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
T0 = datetime(2026, 12, 4, 9, 0, tzinfo=ZONE)
HOUR = timedelta(hours=1)


def test_a_steady_synchronised_clock_is_the_hall_time() -> None:
    clock = HallClock(trust_at_start=False)
    first = clock.read(wall=T0, mono_s=100.0, synchronised=True)
    later = clock.read(wall=T0 + timedelta(seconds=30.001), mono_s=130.0, synchronised=True)
    assert first.trusted and first.became_trusted and first.now == T0
    assert later.now == T0 + timedelta(seconds=30.001) and later.step is None


def test_a_hand_made_step_back_is_noticed_once_and_ignored() -> None:
    clock = HallClock(trust_at_start=True)
    clock.read(wall=T0, mono_s=0.0, synchronised=False)
    stepped = clock.read(wall=T0 + timedelta(seconds=10) - HOUR, mono_s=10.0, synchronised=False)
    assert stepped.now == T0 + timedelta(seconds=10)  # hall time goes on
    assert stepped.step is not None and not stepped.step.accepted and round(stepped.step.step_s) == -3600
    again = clock.read(wall=T0 + timedelta(seconds=20) - HOUR, mono_s=20.0, synchronised=False)
    assert again.now == T0 + timedelta(seconds=20) and again.step is None  # reported once
    assert again.trusted


def test_a_step_by_network_time_is_followed() -> None:
    clock = HallClock(trust_at_start=False)
    boot = clock.read(wall=T0 - 14 * HOUR, mono_s=0.0, synchronised=False)  # yesterday's saved time
    assert not boot.trusted
    synced = clock.read(wall=T0 + timedelta(seconds=30), mono_s=30.0, synchronised=True)
    assert synced.now == T0 + timedelta(seconds=30)
    assert synced.trusted and synced.became_trusted
    assert synced.step is not None and synced.step.accepted and synced.step.source == "synchronised"


def test_an_operator_confirmation_is_followed() -> None:
    clock = HallClock(trust_at_start=False)
    clock.read(wall=T0, mono_s=0.0, synchronised=False)
    confirmed = clock.read(wall=T0 + 2 * HOUR, mono_s=5.0, synchronised=False, confirmed=True)
    assert confirmed.now == T0 + 2 * HOUR and confirmed.trusted
    assert confirmed.step is not None and confirmed.step.source == "operator"


def test_a_clock_behind_the_ledger_starts_from_the_ledger_untrusted() -> None:
    clock = HallClock(trust_at_start=True, floor=T0)
    reading = clock.read(wall=datetime(1970, 1, 1, tzinfo=ZONE), mono_s=0.0, synchronised=False)
    assert reading.now == T0 and not reading.trusted
    assert reading.step is not None and not reading.step.accepted
    assert clock.read(wall=datetime(1970, 1, 1, 0, 0, 5, tzinfo=ZONE), mono_s=5.0,
                      synchronised=False).now == T0 + timedelta(seconds=5)


def test_a_future_glitch_corrected_by_hand_never_moves_hall_time() -> None:
    clock = HallClock(trust_at_start=True)
    clock.read(wall=T0, mono_s=0.0, synchronised=False)
    glitch = clock.read(wall=T0 + timedelta(days=365, seconds=1), mono_s=1.0, synchronised=False)
    corrected = clock.read(wall=T0 + timedelta(seconds=121), mono_s=121.0, synchronised=False)
    assert glitch.now == T0 + timedelta(seconds=1)
    assert corrected.now == T0 + timedelta(seconds=121) and corrected.step is None


def test_hall_time_never_goes_back_while_steps_are_ignored() -> None:
    clock = HallClock(trust_at_start=True)
    times = [clock.read(wall=T0 + timedelta(seconds=s) + offset, mono_s=float(s), synchronised=False).now
             for s, offset in enumerate([timedelta(0), -HOUR, -HOUR, timedelta(days=1), -HOUR * 30, timedelta(0)])]
    assert times == sorted(times)


def test_trust_outlives_a_restart_in_the_same_boot_when_the_clock_has_not_moved() -> None:
    before = HallClock(trust_at_start=False)
    before.read(wall=T0, mono_s=1000.0, synchronised=True)
    kept = before.offset_s
    again = HallClock(trust_at_start=False, remembered_offset_s=kept)
    assert again.read(wall=T0 + timedelta(seconds=60), mono_s=1060.0, synchronised=False).trusted
    moved = HallClock(trust_at_start=False, remembered_offset_s=kept)
    assert not moved.read(wall=T0 + HOUR, mono_s=1060.0, synchronised=False).trusted  # set by hand meanwhile
