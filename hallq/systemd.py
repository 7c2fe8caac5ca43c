"""sd_notify without libsystemd: one datagram to ``$NOTIFY_SOCKET`` (a no-op when not run by systemd).

Services send ``READY=1`` when they can really serve (broker connected, ledger or printer open) and
``WATCHDOG=1`` from their main loop only while healthy, so systemd restarts a hung process. A service keeps
one ``ServiceNotifier`` that remembers what it has said and when the watchdog is next due.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``); False when not under systemd or the socket refused it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError as exc:
        log.warning("sd_notify failed socket=%s error=%s", address, exc)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half the watchdog period systemd asked for (``WATCHDOG_USEC``), or None without a watchdog."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None


class ServiceNotifier:
    """What one service tells systemd over its life, each message at the right moment.

    * ``ready()``: ``READY=1``, the first time only; later calls send nothing. Call it from the loop whenever
      the service can really serve (``if connected: notifier.ready()``); the notifier remembers it was said.
    * ``tick(now_s, healthy=...)``: for a loop that turns faster than the watchdog interval. Sends
      ``WATCHDOG=1`` when systemd asked for a watchdog, the service is healthy and the watchdog is due: at the
      first healthy tick, then no sooner than ``watchdog_interval_s`` after the last ping. An unhealthy tick
      sends nothing, so a loop that turns but cannot keep up is restarted like one that hangs.
    * ``beat(healthy=...)``: ``WATCHDOG=1`` now (when asked for and healthy), for a loop that sleeps the
      interval by itself.
    * ``stopping()``: ``STOPPING=1``, first thing on the way out, before the slow clean-up.

    ``now_s`` is ``time.monotonic()`` (or any clock in seconds that does not jump); the caller owns it. The
    watchdog interval is read from the environment once, at construction. Not thread-safe: the one loop that
    runs the service owns its notifier. Every send is a no-op when not run by systemd.
    """

    def __init__(self) -> None:
        self.watchdog_interval_s: float | None = watchdog_interval_s()
        self._ready_sent = False
        self._watchdog_due_s: float | None = None  # None: the next healthy tick pings at once

    @property
    def ready_sent(self) -> bool:
        """Whether ``ready()`` has been called."""
        return self._ready_sent

    def ready(self) -> bool:
        """Send ``READY=1`` unless it was sent before; True when this call sent it."""
        if self._ready_sent:
            return False
        self._ready_sent = True
        notify("READY=1")
        return True

    def tick(self, now_s: float, *, healthy: bool = True) -> bool:
        """Ping the watchdog if it is due at ``now_s`` and the service is ``healthy``; True when it pinged."""
        if self.watchdog_interval_s is None or not healthy:
            return False
        if self._watchdog_due_s is not None and now_s < self._watchdog_due_s:
            return False
        notify("WATCHDOG=1")
        self._watchdog_due_s = now_s + self.watchdog_interval_s
        return True

    def beat(self, *, healthy: bool = True) -> bool:
        """Ping the watchdog now, if systemd asked for one and the service is ``healthy``; True when it pinged."""
        if self.watchdog_interval_s is None or not healthy:
            return False
        notify("WATCHDOG=1")
        return True

    def stopping(self) -> None:
        """Send ``STOPPING=1``: the service is shutting down, a slow exit is not a hang."""
        notify("STOPPING=1")
