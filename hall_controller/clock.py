"""The hall's time: the wall clock, checked against the monotonic clock, trusted only when it can be.

Theory of operation
-------------------
Every ticket, call and business day hangs on the controller's clock, and a Raspberry Pi has no real-time
clock: after a power cut it boots with the time it last saved (or 1970) until network time syncs, time sync
corrects clocks in steps, and people mistype dates. So the controller never reads the wall clock directly;
it reads ``HallClock``, which turns each reading of (wall clock, monotonic clock, the kernel's "synchronised"
flag) into the *hall time* and whether it is *trusted*:

* **Hall time follows the monotonic clock.** It is the wall time at the last anchor plus the monotonic time
  elapsed since. While the wall clock agrees with it (within ``tolerance_s``: time sync slews a clock by a
  fraction of a millisecond a second) the anchor follows the wall clock, so hall time *is* the wall time.
* **A step is noticed** when the wall clock and hall time disagree by more than ``tolerance_s``. It is
  *accepted* (hall time jumps to the wall clock) only when the kernel says the clock is synchronised (network
  time stepped it; a hand-set clock clears that flag) or an operator confirmed the time
  (``hallq-controller clock confirm``). Otherwise it is *ignored*: hall time goes on from the monotonic clock,
  and the step is reported once, for the log.
* **Trust.** The engine starts a new business day, issues tickets and calls only on trusted time (see
  ``Engine.handle``). Hall time is trusted from start when the kernel says the clock is synchronised, or when
  the hall says its system clock is right from boot (``trust_clock = "always"``: a real-time-clock module, or
  a PC), and becomes trusted when synchronisation or an operator's confirmation arrives. A clock behind the
  ledger's last record (``floor``) is never trusted unless synchronised or confirmed: the ledger proves it
  wrong, and hall time starts from the floor instead, so no record is ever stamped before an older one.
* **Trust outlives a restart, not a reboot.** When the clock was trusted, the shell keeps the boot's id and
  the wall clock's offset from the monotonic clock (``offset_s``); a controller restarted in the same boot
  (a crash, the watchdog, an upgrade) whose clock still has that offset is trusted at once
  (``remembered_offset_s``), even in a hall without network time, or hours after it was last synchronised.

Pure: the shell passes the readings in; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

StepSource = Literal["synchronised", "operator"]


@dataclass(frozen=True, slots=True)
class ClockStep:
    """The wall clock jumped by ``step_s`` against hall time; ``accepted`` when hall time followed it."""

    step_s: float
    accepted: bool
    source: StepSource | None
    wall: datetime


@dataclass(frozen=True, slots=True)
class ClockReading:
    """What one reading means: the hall time to use, whether it is trusted, and a step noticed now."""

    now: datetime
    trusted: bool
    step: ClockStep | None = None
    became_trusted: bool = False


class HallClock:
    """See the module docstring. ``floor``: the ledger's last record, or ``None`` for an empty ledger."""

    def __init__(self, *, trust_at_start: bool, floor: datetime | None = None, tolerance_s: float = 2.0,
                 remembered_offset_s: float | None = None) -> None:
        self.trust_at_start = trust_at_start
        self.floor = floor
        self.remembered_offset_s = remembered_offset_s
        self.tolerance_s = tolerance_s
        self.trusted = False
        self._anchor_wall: datetime | None = None
        self._anchor_mono = 0.0
        self._ignored_step_s: float | None = None

    def read(self, *, wall: datetime, mono_s: float, synchronised: bool, confirmed: bool = False) -> ClockReading:
        """One reading: ``wall`` (timezone-aware), ``mono_s`` (a monotonic clock), the kernel's flag, and
        whether an operator has just confirmed the wall clock."""
        if self._anchor_wall is None:
            return self._first(wall, mono_s, synchronised=synchronised, confirmed=confirmed)
        hall = self._anchor_wall + timedelta(seconds=mono_s - self._anchor_mono)
        step_s = (wall - hall).total_seconds()
        was_trusted = self.trusted
        if confirmed or synchronised or abs(step_s) <= self.tolerance_s:
            self._anchor(wall, mono_s)
            self.trusted = self.trusted or confirmed or synchronised
            self._ignored_step_s = None
            step = None
            if abs(step_s) > self.tolerance_s:
                step = ClockStep(step_s=step_s, accepted=True, source="operator" if confirmed else "synchronised",
                                 wall=wall)
            return ClockReading(now=wall, trusted=self.trusted, step=step,
                                became_trusted=self.trusted and not was_trusted)
        # A step nobody vouches for: keep hall time, and say so once per step.
        new = self._ignored_step_s is None or abs(step_s - self._ignored_step_s) > self.tolerance_s
        self._ignored_step_s = step_s
        step = ClockStep(step_s=step_s, accepted=False, source=None, wall=wall) if new else None
        return ClockReading(now=hall, trusted=self.trusted, step=step)

    @property
    def offset_s(self) -> float:
        """The wall clock's offset from the monotonic clock at the current anchor (what a restart compares)."""
        return 0.0 if self._anchor_wall is None else self._anchor_wall.timestamp() - self._anchor_mono

    def _first(self, wall: datetime, mono_s: float, *, synchronised: bool, confirmed: bool) -> ClockReading:
        remembered = self.remembered_offset_s
        same_clock = remembered is not None and abs(wall.timestamp() - mono_s - remembered) <= self.tolerance_s
        vouched = synchronised or confirmed or same_clock
        floor = self.floor
        if floor is not None and (wall - floor).total_seconds() < -self.tolerance_s and not vouched:
            # Behind the ledger: the clock is wrong (a Pi after a power cut). Start from the ledger's last record.
            self._anchor(floor, mono_s)
            self.trusted = False
            step = ClockStep(step_s=(wall - floor).total_seconds(), accepted=False, source=None, wall=wall)
            self._ignored_step_s = step.step_s
            return ClockReading(now=floor, trusted=False, step=step)
        self._anchor(wall, mono_s)
        self.trusted = vouched or self.trust_at_start
        return ClockReading(now=wall, trusted=self.trusted, became_trusted=self.trusted)

    def _anchor(self, wall: datetime, mono_s: float) -> None:
        self._anchor_wall = wall
        self._anchor_mono = mono_s
