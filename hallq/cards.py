"""The citizen's card as a scanner reads it: the chip ID card's (CCCD) QR code, or a code the hall issued.

Theory of operation: one parser for every role. The dispenser parses each scan to decide at once (a short beep
and the "card read" light, or the error beeps, and the code is ignored); it sends the scanned text as read, and
the controller parses it again at its boundary, so the contract carries one short field and both sides agree
on what a valid card is.

A CCCD's QR code is one line of seven fields separated by ``|``::

    001099012345|123456789|Nguyễn Văn An|01011950|Nam|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|15082021

the 12-digit ID number, the old 9-digit ID number (often empty), the full name, the date of birth (DDMMYYYY),
the sex ("Nam"/"Nữ"), the permanent address and the card's issue date (DDMMYYYY). The ID number says more
than its length: its first three digits are the province of registration (001–096), the fourth the sex and
the century of birth (0/1: 1900s, 2/3: 2000s, 4/5: 2100s; even: male), the fifth and sixth the last two digits
of the year of birth. A code must agree with itself on all of these, so a damaged or foreign code is refused
instead of putting a wrong name or age in front of a clerk.

A hall's own card holds ``{prefix}{4-32 of A-Z 0-9}`` (the prefix is the hall's, e.g. ``TTHCC-``).

Everything here is pure: the day is passed in. Nothing here logs: a refusal's reason names what was wrong,
never the value (``CardError``), so it can be logged without personal data.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

CardKind = Literal["cccd", "hall"]
CARD_KINDS: Final = ("cccd", "hall")
MAX_SCAN_LEN: Final = 512          # a CCCD's QR text is about 150 characters
MAX_NAME_LEN: Final = 100
MAX_ADDRESS_LEN: Final = 250
OLDEST_AGE: Final = 130
SEXES: Final = {"nam": "Nam", "nữ": "Nữ", "nu": "Nữ"}
_DIGITS = re.compile(r"[0-9]+")
_HALL_BODY = re.compile(r"[A-Z0-9]{4,32}")
_PREFIX = re.compile(r"[A-Z0-9][A-Z0-9_-]{0,15}")


class CardError(ValueError):
    """A scan that is not a card this hall reads. The message says what was wrong, never the value."""


@dataclass(frozen=True, slots=True)
class CitizenCard:
    """A CCCD as read from its QR code."""

    id_number: str
    old_id_number: str | None
    name: str
    birth_date: date
    sex: str
    address: str
    issued_on: date

    def __repr__(self) -> str:  # never print a citizen's data into a log or a traceback
        return "CitizenCard(<personal data>)"

    def age_on(self, day: date) -> int:
        return age_on(self.birth_date, day)


@dataclass(frozen=True, slots=True)
class HallCard:
    """A card the hall issued: only its code, registered to a citizen's profile at a counter."""

    code: str


Card = CitizenCard | HallCard


def age_on(birth: date, day: date) -> int:
    """Whole years from ``birth`` to ``day`` (a 29 February birthday counts on 1 March in other years)."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def hall_prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot start a hall card's code, or None."""
    if not _PREFIX.fullmatch(prefix):
        return "must be 1-16 of A-Z 0-9 _ -, starting with a letter or digit"
    return None


def kind_of(text: str) -> CardKind:
    """Which kind of code ``text`` claims to be (``cccd`` when it holds a ``|``); ``parse`` decides if it is one."""
    return "cccd" if "|" in text else "hall"


def parse(text: str, *, today: date, hall_prefix: str | None = None) -> Card:
    """The card in a scan's ``text`` (one line; surrounding blanks and a trailing line break are ignored).

    Raises ``CardError`` for anything else: a URL, random text, a code of another kind, a wrong-length or
    self-contradicting ID number, an impossible date, a birth in the future or more than 130 years ago, a hall
    code when the hall issues none (``hall_prefix`` None) or with another prefix."""
    text = unicodedata.normalize("NFC", text.strip())
    if not text:
        raise CardError("empty scan")
    if len(text) > MAX_SCAN_LEN:
        raise CardError(f"longer than {MAX_SCAN_LEN} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text):
        raise CardError("holds control characters")
    if "|" in text:
        return _citizen(text, today)
    return _hall(text, hall_prefix)


def _hall(text: str, prefix: str | None) -> HallCard:
    if prefix is None:
        raise CardError("not a CCCD, and this hall issues no cards of its own")
    if not text.upper().startswith(prefix):
        raise CardError("neither a CCCD nor a card of this hall")
    body = text[len(prefix):].upper()
    if not _HALL_BODY.fullmatch(body):
        raise CardError("a hall card's code must be its prefix and 4-32 of A-Z 0-9")
    return HallCard(prefix + body)


def _citizen(text: str, today: date) -> CitizenCard:
    fields = [field.strip() for field in text.split("|")]
    if len(fields) < 7:
        raise CardError(f"a CCCD code has 7 fields separated by '|', this one {len(fields)}")
    # Newer cards may add fields after the seventh: read the seven this hall uses, ignore the rest.
    id_number, old_id, name, birth_text, sex_text, address, issued_text = fields[:7]
    if len(id_number) != 12 or not _DIGITS.fullmatch(id_number):
        raise CardError("the ID number must be 12 digits")
    if old_id and (len(old_id) not in (9, 12) or not _DIGITS.fullmatch(old_id)):
        raise CardError("the old ID number must be 9 or 12 digits, or empty")
    province = int(id_number[:3])
    if not 1 <= province <= 96:
        raise CardError("the ID number's province code is not one of 001-096")
    birth = _date(birth_text, "date of birth")
    issued = _date(issued_text, "issue date")
    century_digit = int(id_number[3])
    if century_digit > 5 or 1900 + 100 * (century_digit // 2) != birth.year // 100 * 100:
        raise CardError("the ID number's century digit does not match the date of birth")
    if id_number[4:6] != f"{birth.year % 100:02d}":
        raise CardError("the ID number's year digits do not match the date of birth")
    sex = SEXES.get(sex_text.lower())
    if sex is None:
        raise CardError("the sex must be Nam or Nữ")
    if (sex == "Nữ") != (century_digit % 2 == 1):
        raise CardError("the ID number's sex digit does not match the card's sex")
    if birth > today or age_on(birth, today) > OLDEST_AGE:
        raise CardError("the date of birth is in the future or more than 130 years ago")
    if issued < birth or issued > today:
        raise CardError("the issue date is before the birth or in the future")
    if not name or len(name) > MAX_NAME_LEN or any(ch.isdigit() for ch in name):
        raise CardError(f"the name must be 1-{MAX_NAME_LEN} characters without digits")
    if not address or len(address) > MAX_ADDRESS_LEN:
        raise CardError(f"the address must be 1-{MAX_ADDRESS_LEN} characters")
    return CitizenCard(id_number=id_number, old_id_number=old_id or None, name=" ".join(name.split()),
                       birth_date=birth, sex=sex, address=" ".join(address.split()), issued_on=issued)


def _date(text: str, what: str) -> date:
    if len(text) != 8 or not _DIGITS.fullmatch(text):
        raise CardError(f"the {what} must be 8 digits, DDMMYYYY")
    try:
        return date(int(text[4:]), int(text[2:4]), int(text[:2]))
    except ValueError:
        raise CardError(f"the {what} is not a real date") from None


def reference_text(ref: str) -> str:
    """How logs and screens name a profile without personal data: its reference's first 8 characters."""
    return ref[:8]
