"""Whether the kernel says the system clock is synchronised (``adjtimex(2)`` with nothing to change, allowed to
any user: the ``STA_UNSYNC`` status bit, what ``timedatectl show -p NTPSynchronized`` reports). A Raspberry Pi has
no real-time clock: until network time answers it runs months behind. The controller (``timesource``) and the
dispenser (``clock``) both ask here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Final

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
    # Once: find_library runs ldconfig in a subprocess.
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def kernel_synchronised() -> bool | None:
    """Whether the kernel says the system clock is synchronised; ``None`` where it cannot be asked (no libc,
    or a seccomp filter that forbids even reading the clock's state: systemd's ``ProtectClock=``)."""
    libc = _libc()
    if libc is None:
        return None
    timex = _Timex()
    try:
        state = libc.adjtimex(ctypes.byref(timex))
    except AttributeError:
        return None
    if state < 0:
        return None
    return state != TIME_ERROR and not timex.status & STA_UNSYNC
