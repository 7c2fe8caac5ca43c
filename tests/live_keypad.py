"""The counter's keypad service on gpiozero's mock pins, its buttons pressed through a FIFO (live tests only).

The live unit test (``tests/test_live_units.py``) runs this in place of ``python -m counter`` under the installed
``hallq-counter.service`` (a drop-in replaces ``ExecStart=`` only): the counter has no simulation mode, and
nothing outside a process can press its mock pins. It builds the very ``KeypadService`` the counter's command
runs, with a ``MockFactory``, and presses a button for each line (``next``, ``recall``, ``complete``,
``no_show``) written to ``$RUNTIME_DIRECTORY/keys``::

    python tests/live_keypad.py /etc/hallq/counter.toml
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from gpiozero.pins.mock import MockFactory

from counter import config as config_mod
from counter.service import KeypadService
from hallq import logsetup

log = logging.getLogger("counter")


def main(argv: list[str]) -> int:
    logsetup.setup("INFO")
    cfg = config_mod.load(Path(argv[1]))
    assert cfg.keypad is not None
    pins = {"next": cfg.keypad.next_pin, "recall": cfg.keypad.recall_pin, "complete": cfg.keypad.complete_pin,
            "no_show": cfg.keypad.no_show_pin}
    factory = MockFactory()
    service = KeypadService(cfg, pin_factory=factory)
    fifo = Path(os.environ.get("RUNTIME_DIRECTORY", "/run/hallq-counter")) / "keys"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo, 0o600)

    def feed() -> None:
        # Opened for reading and writing: a writer closing it is no end of input. (Not open("r+"): Python would
        # want a seekable file for that mode.)
        with os.fdopen(os.open(fifo, os.O_RDWR), "r", encoding="utf-8") as stream:
            for line in stream:
                pin = pins.get(line.strip())
                if pin is None:
                    log.warning("live keypad: no button %r", line.strip())
                    continue
                mock = factory.pin(pin)
                mock.drive_low()
                mock.drive_high()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        service.stop()

    signal.signal(signal.SIGTERM, stop)
    threading.Thread(target=feed, name="live-keys", daemon=True).start()
    service.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
