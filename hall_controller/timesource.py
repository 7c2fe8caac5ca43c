"""Where the controller's clock readings come from: the system, or a drill file that shifts it.

``SystemTime`` reads the wall clock in the hall's zone, the monotonic clock, and the kernel's own
"synchronised" flag: ``adjtimex(2)`` with no changes asked (any user may call it) returns the clock state,
and the status bit ``STA_UNSYNC`` is set from boot, and again whenever someone sets the clock by hand, until
a time-sync daemon (systemd-timesyncd, chrony) has disciplined it. It is what ``timedatectl show -p
NTPSynchronized`` reports.

``DrillTime`` is the same clock shifted by what a small JSON file says, ``{"offset_s": -3600,
"synchronised": false}``, re-read whenever the file changes: the seam through which the tests, and a
technician rehearsing a clock fault (``hallq-controller --clock-drill FILE``), make the controller live
through a wrong clock without touching the machine's.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from hallq.timesync import kernel_synchronised

log = logging.getLogger(__name__)

# ``hallq-controller clock confirm`` leaves this file in the state directory; the running controller takes it
# as an operator's word that the wall clock is right, and removes it.
CLOCK_CONFIRM_FILE = "clock-confirm"
CONFIRM_VALID_S = 30.0  # a confirmation older than this (or from the future) is stale: it vouches for nothing now
# Where the controller keeps the boot's id and the trusted clock's offset, so a restart in the same boot trusts it.
CLOCK_TRUST_FILE = "clock-trust.json"


class TimeSource(Protocol):
    def wall(self) -> datetime: ...

    def monotonic(self) -> float: ...

    def synchronised(self) -> bool: ...


def boot_id() -> str | None:
    """This boot's id (a new one at every boot): a monotonic clock reading means something only within it."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip() or None
    except OSError:
        return None


class SystemTime:
    """This machine's clocks. The kernel's flag is asked at most once a second (it changes rarely)."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._synced = False
        self._asked_at = float("-inf")
        self._unreadable_told = False

    def wall(self) -> datetime:
        return datetime.now(self.zone)

    def monotonic(self) -> float:
        return time.monotonic()

    def synchronised(self) -> bool:
        now = time.monotonic()
        if now - self._asked_at >= 1.0:
            self._asked_at = now
            answer = kernel_synchronised()
            if answer is None and not self._unreadable_told:
                self._unreadable_told = True
                log.error("cannot read the kernel's clock state (adjtimex refused: a unit with ProtectClock=yes, "
                          "or a system call filter without adjtimex?): the clock counts as not synchronised; "
                          "use trust_clock = \"always\" or hallq-controller clock confirm")
            self._synced = bool(answer)
        return self._synced


class DrillTime(SystemTime):
    """``SystemTime`` shifted by ``offset_s`` and with the ``synchronised`` flag read from ``path``."""

    def __init__(self, zone: ZoneInfo, path: Path) -> None:
        super().__init__(zone)
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._offset = timedelta(0)
        self._drill_synced = False

    def _load(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            offset, synced = float(data.get("offset_s", 0.0)), bool(data.get("synchronised", False))
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            log.error("clock drill file %s unreadable: %s; keeping the last values", self.path, exc)
            return
        self._stamp = stamp
        self._offset = timedelta(seconds=offset)
        self._drill_synced = synced
        log.warning("clock drill: wall clock shifted by %+.0f s, synchronised=%s", offset, synced)

    def wall(self) -> datetime:
        self._load()
        return datetime.now(self.zone) + self._offset

    def synchronised(self) -> bool:
        self._load()
        return self._drill_synced
