"""The hall's date for reading a citizen's card, only when the dispenser can trust its clock.

A Raspberry Pi has no real-time clock: until NTP answers it runs on the time ``fake-hwclock`` saved at the
last clean shutdown (or 1970), months behind. Reading a card against such a date would refuse a card issued
since, or a child born since. So the date is given only when the kernel says the clock is synchronised
(``hallq.timesync``); otherwise None, and ``dispenser.core`` reads the card
without a calendar (see its theory of operation). The dispenser's tickets never depend on this: the
controller stamps them with its own trusted time.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from hallq.timesync import kernel_synchronised


def trusted_today(zone: ZoneInfo) -> date | None:
    """Today in the hall's ``zone`` if the clock is synchronised, else None."""
    return datetime.now(zone).date() if kernel_synchronised() is True else None
