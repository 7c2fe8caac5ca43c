"""The hall's date for reading a citizen's card, only when the dispenser can trust its clock.

A Raspberry Pi has no real-time clock: until NTP answers it runs on the time ``fake-hwclock`` saved at the
last clean shutdown (or 1970), months behind. Reading a card against such a date would refuse a card issued
since, or a child born since. So the date is given only when the kernel says the clock is synchronised
(``adjtimex(2)`` with nothing to change, allowed to any user: the ``STA_UNSYNC`` status bit, what
``timedatectl show -p NTPSynchronized`` reports); otherwise None, and ``dispenser.core`` reads the card
without a calendar (see its theory of operation). The dispenser's tickets never depend on this: the
controller stamps them with its own trusted time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from datetime import date, datetime
from typing import Final
from zoneinfo import ZoneInfo

STA_UNSYNC: Final = 0x0040
TIME_ERROR: Final = 5


class _Timex(ctypes.Structure):
    # struct timex starts with: unsigned int modes; long offset, freq, maxerror, esterror; int status; ... The
    # rest (about 150 bytes, more on some architectures) is room the kernel may write into.
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("rest", ctypes.c_byte * 512)]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def clock_synchronised() -> bool:
    """Whether the kernel says the system clock is synchronised (False where it cannot be asked)."""
    libc = _libc()
    if libc is None:
        return False
    timex = _Timex()
    try:
        state = libc.adjtimex(ctypes.byref(timex))
    except AttributeError:
        return False
    return state >= 0 and state != TIME_ERROR and not timex.status & STA_UNSYNC


def trusted_today(zone: ZoneInfo) -> date | None:
    """Today in the hall's ``zone`` if the clock is synchronised, else None."""
    return datetime.now(zone).date() if clock_synchronised() else None
