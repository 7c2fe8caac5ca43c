"""Logging for every role's command line: one line per record, ``key=value`` context in the message.

One line per record, whatever the message quotes: a device's request id or a printer's answer may hold a line
break, which would otherwise write a line of the device's choosing into the journal (``ERROR ...: ledger
damaged``), indistinguishable from a real one. ``OneLineFormatter`` escapes control characters in the
formatted line (``\\n`` becomes the two characters ``\\`` ``n``), so no call can forget it: the decoders refuse
control characters where the contract has no use for them, and this catches the rest (free text, a
library's message). Only a traceback, which follows the line, keeps its own lines.
"""

from __future__ import annotations

import logging
import os
import sys

from hallq.limits import CONTROL_CHARACTERS

_ESCAPES = {ord(ch): ch.encode("unicode_escape").decode("ascii") for ch in CONTROL_CHARACTERS}


def escape_controls(text: str) -> str:
    """``text`` on one line: each control character (``hallq.limits.CONTROL_CHARACTERS``) as its Python escape."""
    return text.translate(_ESCAPES)


class OneLineFormatter(logging.Formatter):
    """A formatter whose record line never holds a control character; a traceback follows on lines of its own."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return escape_controls(super().formatMessage(record))


def setup(level: str = "INFO") -> None:
    """Configure the root logger once; under systemd (JOURNAL_STREAM set) the journal adds time and unit."""
    under_journal = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journal else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # paho logs nothing unless asked; escpos and PIL are chatty at DEBUG.
    for noisy in ("PIL", "escpos"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLogger().level))
