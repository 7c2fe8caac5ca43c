"""The controller's time: readings through the hall clock, the operator's confirmation, trust across restarts.

``TimeKeeper`` is the shell around the pure ``HallClock`` (``clock.py``): it reads the time source, takes an
operator's ``clock confirm`` from the state directory, logs what each step means, keeps an accepted step for
the journal (``changes``: no service-time sample may span it), and remembers a trusted clock's offset for a
restart in the same boot (``CLOCK_TRUST_FILE``). Every log line here is the operator's: what happened, and what
to run.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

from hall_controller.clock import ClockReading, HallClock
from hall_controller.engine.events import ClockChanged
from hall_controller.limits import Throttle
from hall_controller.timesource import (
    CLOCK_CONFIRM_FILE,
    CLOCK_TRUST_FILE,
    CONFIRM_VALID_S,
    TimeSource,
    boot_id,
)

log = logging.getLogger(__name__)

CONFIRM_CHECK_S = 0.5  # how often the state directory is looked at for an operator's confirmation


class TimeKeeper:
    """Reads the hall's time; ``state_dir`` holds the confirmation and trust files, ``config_source`` is named
    in the commands the log tells the operator to run."""

    def __init__(self, source: TimeSource, *, state_dir: Path, config_source: Path, trust_always: bool) -> None:
        self.source = source
        self._state_dir = state_dir
        self._config_source = config_source
        self._trust_always = trust_always
        self.clock = HallClock(trust_at_start=trust_always)
        self.trusted = False
        # Waiting to be stored with the next batch: accepted steps, and an operator's confirmation (which may
        # correct the business day). ``stored()`` clears them once a batch with them is durable.
        self.changes: list[ClockChanged] = []
        self.confirm_pending = False
        self._log: Throttle[str] = Throttle(window_s=60.0, burst=1)
        self._untrusted_reported = False
        self._confirm_checked_at = float("-inf")

    def begin(self, *, floor: datetime | None) -> None:
        """Start from the ledger's last record (``floor``: the earliest the hall's time can be) and what an
        earlier run of this boot trusted."""
        self.clock = HallClock(trust_at_start=self._trust_always, floor=floor,
                               remembered_offset_s=self._remembered_offset())

    def stored(self) -> None:
        """The batch carrying ``changes`` and the confirmation is durable."""
        self.changes.clear()
        self.confirm_pending = False

    def monotonic(self) -> float:
        return self.source.monotonic()

    def read(self) -> ClockReading:
        """The hall's time now; logs what a step means and keeps an accepted one in ``changes``."""
        t = self.source
        confirmed = self._take_confirmation()
        wall, synced = t.wall(), t.synchronised()
        reading = self.clock.read(wall=wall, mono_s=t.monotonic(), synchronised=synced, confirmed=confirmed)
        self.trusted = reading.trusted
        step, now = reading.step, reading.now
        if confirmed:
            log.warning("clock confirmed by the operator: the hall's time is now %s", now.isoformat(timespec="seconds"))
        if step is not None and step.accepted:
            log.warning("clock stepped by %+.1f s (%s): the hall's time follows it, now %s", step.step_s,
                        step.source, now.isoformat(timespec="seconds"))
            self.changes.append(ClockChanged(step_s=step.step_s, source=step.source or "synchronised"))
        elif step is not None:
            log.error("the wall clock (%s) is %+.0f s from the hall's time (%s) and nothing vouches for it (the "
                      "clock is not synchronised): the hall keeps its own time. Set the clock right "
                      "(sudo date -s), or if it is right, run: hallq-controller clock confirm --config %s",
                      wall.isoformat(timespec="seconds"), step.step_s, now.isoformat(timespec="seconds"),
                      self._config_source)
        if reading.trusted and (reading.became_trusted or (step is not None and step.accepted)):
            self._remember_trust()
        if reading.became_trusted and self._untrusted_reported:
            self._untrusted_reported = False
            log.warning("the hall's clock is trusted now (%s): issuing tickets and calls again",
                        "confirmed" if confirmed else "synchronised" if synced else "as configured")
        if not reading.trusted and self._log.allow("untrusted", t.monotonic()):
            self._untrusted_reported = True
            log.error("the hall's clock is not trusted (%s, not synchronised): tickets and calls are refused "
                      "(clock_unsynchronised) until network time sets it, or an operator who has checked it runs: "
                      "hallq-controller clock confirm --config %s", wall.isoformat(timespec="seconds"),
                      self._config_source)
        return reading

    def _take_confirmation(self) -> bool:
        """An operator's fresh ``clock confirm`` (looked for twice a second): True once, and the day correction
        it allows stays pending until a batch with it is stored. A stale file vouches for nothing."""
        t = self.source
        mono = t.monotonic()
        if mono < self._confirm_checked_at + CONFIRM_CHECK_S:
            return False
        self._confirm_checked_at = mono
        path = self._state_dir / CLOCK_CONFIRM_FILE
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.error("cannot read the clock confirmation %s: %s", path, exc)
            return False
        path.unlink(missing_ok=True)
        try:
            written = datetime.fromisoformat(text)
            age_s = abs((t.wall() - written).total_seconds())
        except (ValueError, TypeError):
            age_s = float("inf")
        if age_s > CONFIRM_VALID_S:
            log.warning("ignored a stale clock confirmation (%r, not within %.0f s of the clock now): run "
                        "hallq-controller clock confirm again while the controller runs", text[:40], CONFIRM_VALID_S)
            return False
        self.confirm_pending = True
        return True

    def _remembered_offset(self) -> float | None:
        """The trusted clock's offset kept by an earlier run of this boot, if any."""
        path = self._state_dir / CLOCK_TRUST_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("boot_id") == boot_id() and boot_id() is not None:
                return float(data["offset_s"])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignored unreadable clock trust record %s: %s", path, exc)
        return None

    def _remember_trust(self) -> None:
        current = boot_id()
        if current is None:
            return
        path = self._state_dir / CLOCK_TRUST_FILE
        staging = path.with_suffix(".tmp")
        try:
            staging.write_text(json.dumps({"boot_id": current, "offset_s": self.clock.offset_s}), encoding="utf-8")
            staging.replace(path)
        except OSError as exc:
            log.warning("cannot keep the clock's trust for a restart (%s): %s", path, exc)
