"""Citizens' profiles: kept apart from the ticket journal, encrypted at rest, audited, deleted when unused.

Theory of operation: a profile is made the first time a citizen's CCCD is scanned and found again on every later
scan, by the card's ID number, or by a hall card registered to it at a counter. Everything personal about it
(the card's fields the hall keeps, the phone and notes a clerk registered) is one JSON object sealed with AES-GCM
(``cryptography``) under a key the installation keeps as the systemd credential ``profile-key``; the database
holds only that sealed blob, the profile's random reference (``ref``), its dates, and keyed hashes (HMAC-SHA256)
of the card numbers to find it by, so a copy of the file (a backup) reveals nothing without the key. Both keys
are derived from the one 32-byte key (HKDF-SHA256); the database remembers a check value, so a wrong key is
refused at start instead of making profiles that cannot be read.

The ticket journal holds only the ``ref`` (``TicketIssued.card``); this database links the tickets to it
(``visits``: day, service, outcome), and records every time a profile was shown or changed (``views``: which
counter, when, which ticket), which the manager reads. Nothing here logs personal data: logs name a profile by
``hallq.cards.reference_text(ref)``.

Writes are committed (WAL, ``synchronous=FULL``) before the method returns. One writer: the controller; the
manager and the ``profiles`` command open it too (SQLite serialises them).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hall_controller.audit import AuditRow, read
from hallq.cards import CitizenCard, age_on, reference_text
from hallq.errors import ProfileError
from hallq.wire import CitizenProfile, Visit

log = logging.getLogger(__name__)

KEY_CREDENTIAL: Final = "profile-key"
INSTALLED_KEY: Final = Path("/etc/hallq/credentials/profile.key")  # deploy/install.sh; the unit's credential
FILE_NAME: Final = "profiles.sqlite3"
VISITS_SHOWN: Final = 10
_CHECK: Final = b"hallq profiles key check v1"
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS profiles (ref TEXT PRIMARY KEY, created TEXT NOT NULL, last_seen TEXT NOT NULL,
                                     sealed BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS cards (lookup BLOB PRIMARY KEY, ref TEXT NOT NULL, kind TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS cards_ref ON cards (ref);
CREATE TABLE IF NOT EXISTS visits (ticket_id TEXT PRIMARY KEY, ref TEXT NOT NULL, day TEXT NOT NULL,
                                   service TEXT NOT NULL, outcome TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS visits_ref ON visits (ref, day);
CREATE TABLE IF NOT EXISTS views (id INTEGER PRIMARY KEY, at TEXT NOT NULL, ref TEXT NOT NULL, counter TEXT NOT NULL,
                                  ticket_id TEXT NOT NULL, number TEXT NOT NULL, what TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS views_at ON views (at);
"""


def new_key_text() -> str:
    """A new key, as its file holds it: 64 hexadecimal digits and a line break."""
    return secrets.token_hex(32) + "\n"


def load_key(key_file: Path | None) -> bytes:
    """The profiles' key: the systemd credential ``profile-key`` when the unit passes it (``LoadCredential=``),
    else ``key_file``, else the installed key file (``INSTALLED_KEY``). The file holds 64 hexadecimal digits
    (``hallq-controller profiles new-key`` writes one)."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    path = Path(directory) / KEY_CREDENTIAL if directory and (Path(directory) / KEY_CREDENTIAL).exists() else key_file
    if path is None and INSTALLED_KEY.exists():  # the maintenance commands, run by root outside the unit
        path = INSTALLED_KEY
    if path is None:
        raise ProfileError("the hall reads citizens' cards ([cards]) but has no key for their profiles: pass the "
                           f"systemd credential {KEY_CREDENTIAL} (deploy/install.sh makes one) or set [cards] key_file "
                           "(make one with: hallq-controller profiles new-key --out FILE)")
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read the profiles' key {path}: {exc}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ProfileError(f"the profiles' key {path} must hold 64 hexadecimal digits (32 bytes)")
    return key


@dataclass(frozen=True, slots=True)
class Seen:
    """A card found or made: its profile's ``ref``, whether the profile is new, the citizen's date of birth (if
    the hall keeps it or the card gave it)."""

    ref: str
    new: bool
    birth_date: date | None


class ProfileStore:
    """The profiles database (see the module doc). ``keep``: the card's fields a profile keeps."""

    def __init__(self, path: Path, key: bytes, *, keep: tuple[str, ...] = ()) -> None:
        self.path = path
        self.keep = keep
        self._seal_key = AESGCM(_derive(key, b"hallq profiles v1 seal"))
        self._lookup_key = _derive(key, b"hallq profiles v1 lookup")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            os.chmod(path, 0o600)
        except (OSError, sqlite3.Error) as exc:
            raise ProfileError(f"cannot open the profiles database {path}: {exc}") from None
        check = hmac.new(self._lookup_key, _CHECK, hashlib.sha256).digest()
        row = self._db.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('key_check', ?)", (check,))
        elif not hmac.compare_digest(row[0], check):
            self._db.close()
            raise ProfileError(f"the profiles in {path} were sealed with another key: restore that key (the systemd "
                               f"credential {KEY_CREDENTIAL}); a new key cannot read them")

    def close(self) -> None:
        self._db.close()

    # --- finding a citizen ---------------------------------------------------------------------------------------

    def lookup(self, kind: str, number: str) -> bytes:
        return hmac.new(self._lookup_key, f"{kind}:{number}".encode(), hashlib.sha256).digest()

    def citizen(self, card: CitizenCard, *, now: datetime) -> Seen:
        """The profile of ``card``'s ID number, made on its first scan; the card's kept fields are refreshed (a new
        card may carry a new address)."""
        lookup = self.lookup("cccd", card.id_number)
        fields = _card_fields(card, self.keep)
        with self._transaction():
            row = self._db.execute("SELECT ref FROM cards WHERE lookup = ?", (lookup,)).fetchone()
            if row is None:
                ref = "p" + secrets.token_hex(8)
                data: dict[str, Any] = {"card": fields, "phone": None, "notes": None}
                self._db.execute("INSERT INTO profiles VALUES (?, ?, ?, ?)",
                                 (ref, now.isoformat(), now.isoformat(), self._seal(ref, data)))
                self._db.execute("INSERT INTO cards VALUES (?, ?, 'cccd')", (lookup, ref))
                new = True
            else:
                ref = row[0]
                data = self._data(ref)
                data["card"] = fields
                self._db.execute("UPDATE profiles SET last_seen = ?, sealed = ? WHERE ref = ?",
                                 (now.isoformat(), self._seal(ref, data), ref))
                new = False
        return Seen(ref, new, card.birth_date)

    def hall_card(self, code: str, *, now: datetime) -> Seen | None:
        """The profile a hall card is registered to, or None (a card not registered yet)."""
        row = self._db.execute("SELECT ref FROM cards WHERE lookup = ?", (self.lookup("hall", code),)).fetchone()
        if row is None:
            return None
        ref = row[0]
        with self._transaction():
            self._db.execute("UPDATE profiles SET last_seen = ? WHERE ref = ?", (now.isoformat(), ref))
        birth = self._data(ref)["card"].get("birth_date")
        return Seen(ref, False, None if birth is None else date.fromisoformat(birth))

    # --- tickets -------------------------------------------------------------------------------------------------

    def link(self, ticket_id: str, ref: str, *, day: str, service: str) -> None:
        with self._transaction():
            self._db.execute("INSERT OR IGNORE INTO visits VALUES (?, ?, ?, ?, 'waiting')",
                             (ticket_id, ref, day, service))

    def ref_of(self, ticket_id: str) -> str | None:
        row = self._db.execute("SELECT ref FROM visits WHERE ticket_id = ?", (ticket_id,)).fetchone()
        return None if row is None else str(row[0])

    def linked_on(self, day: str) -> set[str]:
        """The tickets of business day ``day`` linked to a profile."""
        return {row[0] for row in self._db.execute("SELECT ticket_id FROM visits WHERE day = ?", (day,))}

    def outcomes(self, changes: dict[str, str]) -> None:
        """Record how visits ended (ticket id -> ``served``, ``no_show``, ``voided``, ``expired``, ``transferred``)."""
        if changes:
            with self._transaction():
                self._db.executemany("UPDATE visits SET outcome = ? WHERE ticket_id = ?",
                                     [(outcome, tid) for tid, outcome in changes.items()])

    # --- the counter ---------------------------------------------------------------------------------------------

    def show(self, ref: str, *, ticket_id: str, counter: str, number: str, today: date, now: datetime,
             what: str = "shown") -> CitizenProfile | None:
        """The profile as the counter sees it, recorded in the audit; None if it was erased meanwhile."""
        if self._db.execute("SELECT 1 FROM profiles WHERE ref = ?", (ref,)).fetchone() is None:
            return None
        data = self._data(ref)
        card = data["card"]
        visits = [Visit(day, service, outcome) for day, service, outcome in self._db.execute(
            "SELECT day, service, outcome FROM visits WHERE ref = ? AND ticket_id != ? ORDER BY day DESC, rowid DESC "
            "LIMIT ?", (ref, ticket_id, VISITS_SHOWN))]
        hall_card = self._db.execute("SELECT 1 FROM cards WHERE ref = ? AND kind = 'hall'", (ref,)).fetchone()
        birth = card.get("birth_date")
        with self._transaction():
            self._db.execute("INSERT INTO views (at, ref, counter, ticket_id, number, what) VALUES (?, ?, ?, ?, ?, ?)",
                             (now.isoformat(), ref, counter, ticket_id, number, what))
        return CitizenProfile(
            ref=ref, ticket=ticket_id, first_visit=not visits, name=card.get("name"), id_number=card.get("id_number"),
            birth_date=birth, age=None if birth is None else age_on(date.fromisoformat(birth), today),
            sex=card.get("sex"), address=card.get("address"), phone=data.get("phone"), notes=data.get("notes"),
            hall_card=hall_card is not None, visits=tuple(visits))

    def last_shown(self, counter: str, *, since: datetime) -> tuple[str, str, str] | None:
        """(ref, ticket id, number) of the profile last shown or changed at ``counter`` since ``since`` (the
        audit remembers it across a restart), if its profile still exists."""
        row = self._db.execute(
            "SELECT v.ref, v.ticket_id, v.number FROM views v JOIN profiles p ON p.ref = v.ref WHERE v.counter = ? "
            "AND v.what IN ('shown', 'edited') AND v.at >= ? ORDER BY v.id DESC LIMIT 1",
            (counter, since.isoformat())).fetchone()
        return None if row is None else (str(row[0]), str(row[1]), str(row[2]))

    def edit(self, ref: str, *, phone: str | None, notes: str | None, hall_card: str | None) -> str | None:
        """Complete or correct a profile (None: keep; "": clear). Returns why it cannot, or None when done."""
        try:
            self._edit(ref, phone=phone, notes=notes, hall_card=hall_card)
        except _Refused as exc:
            return str(exc)
        return None

    def _edit(self, ref: str, *, phone: str | None, notes: str | None, hall_card: str | None) -> None:
        with self._transaction():
            if self._db.execute("SELECT 1 FROM profiles WHERE ref = ?", (ref,)).fetchone() is None:
                raise _Refused("the profile was erased")
            if hall_card is not None:
                self._db.execute("DELETE FROM cards WHERE ref = ? AND kind = 'hall'", (ref,))
                if hall_card:
                    lookup = self.lookup("hall", hall_card)
                    owner = self._db.execute("SELECT ref FROM cards WHERE lookup = ?", (lookup,)).fetchone()
                    if owner is not None and owner[0] != ref:
                        raise _Refused("this hall card is registered to another citizen")
                    self._db.execute("INSERT OR REPLACE INTO cards VALUES (?, ?, 'hall')", (lookup, ref))
            data = self._data(ref)
            for name, value in (("phone", phone), ("notes", notes)):
                if value is not None:
                    data[name] = value or None
            self._db.execute("UPDATE profiles SET sealed = ? WHERE ref = ?", (self._seal(ref, data), ref))

    # --- retention, erasure, audit -------------------------------------------------------------------------------

    def purge(self, *, now: datetime, retain_days: int) -> int:
        """Delete the profiles unused for ``retain_days`` (their cards and visits too); returns how many."""
        before = (now - timedelta(days=retain_days)).isoformat()
        refs = [row[0] for row in self._db.execute("SELECT ref FROM profiles WHERE last_seen < ?", (before,))]
        for ref in refs:
            self._erase(ref, now=now, what="purged")
        return len(refs)

    def erase(self, *, ref: str | None = None, id_number: str | None = None, now: datetime) -> str | None:
        """Erase one citizen's profile on request (by its reference or the ID number); returns the reference
        erased, or None if there was none."""
        if id_number is not None:
            row = self._db.execute("SELECT ref FROM cards WHERE lookup = ?",
                                   (self.lookup("cccd", id_number),)).fetchone()
            ref = None if row is None else row[0]
        if ref is None or self._db.execute("SELECT 1 FROM profiles WHERE ref = ?", (ref,)).fetchone() is None:
            return None
        self._erase(ref, now=now, what="erased")
        return ref

    def _erase(self, ref: str, *, now: datetime, what: str) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM profiles WHERE ref = ?", (ref,))
            self._db.execute("DELETE FROM cards WHERE ref = ?", (ref,))
            self._db.execute("DELETE FROM visits WHERE ref = ?", (ref,))
            self._db.execute("INSERT INTO views (at, ref, counter, ticket_id, number, what) "
                             "VALUES (?, ?, '', '', '', ?)", (now.isoformat(), ref, what))
        log.info("profile %s %s", reference_text(ref), what)

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM profiles").fetchone()[0])

    # --- inside ---------------------------------------------------------------------------------------------------

    def _seal(self, ref: str, data: dict[str, Any]) -> bytes:
        nonce = secrets.token_bytes(12)
        plain = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        return nonce + self._seal_key.encrypt(nonce, plain, ref.encode())

    def _data(self, ref: str) -> dict[str, Any]:
        row = self._db.execute("SELECT sealed FROM profiles WHERE ref = ?", (ref,)).fetchone()
        if row is None:
            raise ProfileError(f"profile {reference_text(ref)} does not exist")
        sealed = bytes(row[0])
        try:
            data: dict[str, Any] = json.loads(self._seal_key.decrypt(sealed[:12], sealed[12:], ref.encode()))
        except InvalidTag:
            raise ProfileError(f"profile {reference_text(ref)} cannot be opened (damaged, or moved from another "
                               "profile)") from None
        return data

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


def audit(path: Path, *, limit: int = 1000) -> list[AuditRow]:
    """The audit (``hall_controller.audit``), latest first."""
    return read(path, limit=limit)


class _Refused(Exception):
    """A change the store refuses (rolled back); its text is for the clerk."""


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _derive(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


def _card_fields(card: CitizenCard, keep: tuple[str, ...]) -> dict[str, str | None]:
    values = {"name": card.name, "id_number": card.id_number, "birth_date": card.birth_date.isoformat(),
              "address": card.address, "sex": card.sex, "old_id_number": card.old_id_number,
              "issued_on": card.issued_on.isoformat()}
    return {name: values[name] for name in keep}
