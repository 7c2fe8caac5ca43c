"""The audit of citizens' profiles, read-only: who was shown or changed which profile, when, at which counter, for
which ticket (written by ``profiles.ProfileStore``). It holds no personal data (a profile's reference only), so it
is read without the profiles' key: by ``hallq-controller profiles audit`` and by the manager's audit page.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from hallq.errors import ProfileError

WHAT = ("shown", "edited", "erased", "purged")


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One line of the audit. ``what``: ``shown`` (to a counter), ``edited`` (at a counter), ``erased`` (on
    request), ``purged`` (unused too long); ``counter``, ``ticket_id`` and ``number`` are empty for the last two."""

    at: str
    ref: str
    counter: str
    ticket_id: str
    number: str
    what: str


def read(path: Path, *, limit: int = 1000) -> list[AuditRow]:
    """The latest ``limit`` lines, latest first; none if the hall has no profiles yet."""
    if not path.exists():
        return []
    try:
        with closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT at, ref, counter, ticket_id, number, what FROM views ORDER BY id DESC LIMIT ?",
                              (limit,)).fetchall()
    except sqlite3.Error as exc:
        raise ProfileError(f"cannot read the audit in {path}: {exc}") from None
    return [AuditRow(*row) for row in rows]
