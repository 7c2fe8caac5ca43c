"""Contract v1 payloads: typed values, their JSON encoding, and tolerant, validating decoders.

Theory of operation: every payload is a JSON object with ``"v": 1``. Encoders write compact UTF-8 JSON
(Vietnamese stays readable, not ``\\u`` escaped). Decoders are the boundary: they take raw bytes, refuse
anything over ``MAX_PAYLOAD_BYTES``, not JSON, not an object, of another major version, or with a missing
or mistyped field, by raising ``PayloadError`` with a message naming the field; unknown fields are
ignored so that newer senders keep working with older readers. Nothing inside hallq sees a raw dict.

Field limits come from ``hallq/limits.py``, the one definition the config readers use too, so that every name
and id a config check accepts travels. Ids, ticket ids and numbers are read in their strict alphabet and
request ids without control characters: no text from the wire that names something can start a log line.
Free text for people (a print failure's reason, an error message, a printer's detail) and names are read as
sent, within their length (tolerant: a display must not go blank over a character); logs escape them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Final, Literal, cast, get_args

from hallq.cards import CARD_KINDS, MAX_SCAN_LEN, CardKind
from hallq.errors import PayloadError
from hallq.limits import (
    MAX_ACTION_LEN,
    MAX_DAY_LEN,
    MAX_DETAIL_LEN,
    MAX_ERROR_CODE_LEN,
    MAX_ERROR_MESSAGE_LEN,
    MAX_ID_LEN,
    MAX_MOMENT_LEN,
    MAX_NAME_LEN,
    MAX_NOTICE_LEN,
    MAX_NUMBER_LEN,
    MAX_REASON_LEN,
    MAX_REQUEST_ID_LEN,
    MAX_ROLE_LEN,
    MAX_TICKET_ID_LEN,
    MAX_USER_LEN,
    has_control,
    is_token,
)

VERSION: Final = 1
MAX_PAYLOAD_BYTES: Final = 16 * 1024
MAX_STATUS_TOKEN_LEN: Final = 64

PRIORITY_CATEGORIES: Final = ("elderly", "disability", "pregnant", "child", "other")
CounterAction = Literal[
    "next", "recall", "complete", "no_show", "transfer", "call", "open", "pause", "close", "profile", "rate"
]
CounterStatus = Literal["open", "paused", "closed"]
PrinterState = Literal["ok", "paper_low", "paper_out", "offline"]
# What the hall manager may do (``manager/{id}/command``): a counter's status, a waiting ticket, the day, the notice.
ManagerAction = Literal["open_counter", "pause_counter", "close_counter", "void_ticket", "transfer_ticket",
                        "end_day", "show_notice", "clear_notice", "rate_ticket"]
MANAGER_ACTIONS: Final = get_args(ManagerAction)
# What the controller reports on ``events`` for the manager's live view.
HallEventKind = Literal["ticket_voided", "print_failed", "storage_fault", "storage_ok", "clock_untrusted",
                        "clock_trusted", "refused", "manager_action", "day_started", "day_ended"]
HALL_EVENT_KINDS: Final = get_args(HallEventKind)
# What a dispenser reports when a ticket could not be printed (decoders accept any short text: tolerant).
PrintFailureReason = Literal["paper_out", "cover_open", "offline", "timeout", "error"]
PRINT_FAILURE_REASONS: Final = get_args(PrintFailureReason)
COUNTER_ACTIONS: Final = get_args(CounterAction)
# A citizen's rating of a served visit, best first: "Rất hài lòng", "Hài lòng", "Bình thường", "Không hài lòng".
RatingLevel = Literal["very_satisfied", "satisfied", "neutral", "dissatisfied"]
RATING_LEVELS: Final[tuple[RatingLevel, ...]] = get_args(RatingLevel)
LOW_RATINGS: Final[frozenset[str]] = frozenset({"neutral", "dissatisfied"})  # these ask for reasons
RatingChannel = Literal["counter", "phone"]
RATING_CHANNELS: Final[tuple[RatingChannel, ...]] = get_args(RatingChannel)
MAX_RATING_REASONS: Final = 8
MAX_COMMENT_LEN: Final = 300
COUNTER_STATUSES: Final = get_args(CounterStatus)
PRINTER_STATES: Final = get_args(PrinterState)

class ErrorCode(StrEnum):
    """Why a request or command was refused: what a reply's ``error.code`` says. Clients show the message and
    branch only on the code; every role has words for every code (``hallq.labels``). A code this version does
    not know (from a newer controller) is read as a plain string, never refused."""

    BAD_REQUEST = "bad_request"                    # the payload could not be decoded
    UNSUPPORTED_VERSION = "unsupported_version"    # "v" is not 1
    UNKNOWN_SERVICE = "unknown_service"
    UNKNOWN_DISPENSER = "unknown_dispenser"
    UNKNOWN_COUNTER = "unknown_counter"
    UNKNOWN_TICKET = "unknown_ticket"
    SERVICE_CLOSED = "service_closed"              # outside the service's opening hours
    DAILY_CAP_REACHED = "daily_cap_reached"
    NUMBERS_EXHAUSTED = "numbers_exhausted"        # every number of the service's range is in use today
    QUEUE_EMPTY = "queue_empty"
    COUNTER_CLOSED = "counter_closed"
    COUNTER_BUSY = "counter_busy"                  # the counter must finish its ticket first (e.g. before closing)
    NOT_SERVING = "not_serving"                    # recall/complete/no_show/transfer with no current ticket
    NOT_ALLOWED = "not_allowed"                    # the counter does not serve that service
    STORAGE_UNAVAILABLE = "storage_unavailable"    # the ledger cannot store: nothing was changed
    RATE_LIMITED = "rate_limited"                  # the device sent more than its limit; the message was dropped
    CONFLICT = "conflict"                          # the counter no longer serves what the command's "serving" says
    CLOCK_UNSYNCHRONISED = "clock_unsynchronised"  # the clock is not trusted yet: nothing is issued or called
    DAY_ENDED = "day_ended"                        # the business day was ended early: no ticket until the next one
    CARD_LIMIT = "card_limit"                      # the citizen's card has taken its tickets for today
    NO_PROFILE = "no_profile"                      # "profile": the counter's ticket came with no card read
    NOT_RATEABLE = "not_rateable"                  # a rating for a ticket not served, or not this counter's last
    RATING_CLOSED = "rating_closed"                # the time to rate this visit has passed
    ALREADY_RATED = "already_rated"                # the visit was rated already: the first rating counts


ERROR_CODES: Final = tuple(code.value for code in ErrorCode)


# --- helpers -----------------------------------------------------------------------------------------------

def encode(obj: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; the one encoder every payload goes through."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def iso(moment: datetime) -> str:
    """RFC 3339 with the zone's offset and whole seconds' milliseconds: ``2026-11-27T08:15:02.120+07:00``."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime on the wire")
    return moment.isoformat(timespec="milliseconds")


class _Fields:
    """Reads typed fields out of one decoded JSON object, naming the field in every refusal."""

    def __init__(self, raw: bytes | bytearray | str, what: str) -> None:
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        if len(raw) > MAX_PAYLOAD_BYTES:
            raise PayloadError(ErrorCode.BAD_REQUEST,
                               f"{what}: payload of {len(raw)} bytes exceeds {MAX_PAYLOAD_BYTES}")
        try:
            obj = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise PayloadError(ErrorCode.BAD_REQUEST, f"{what}: not JSON ({exc.__class__.__name__})") from None
        if not isinstance(obj, dict):
            raise PayloadError(ErrorCode.BAD_REQUEST, f"{what}: expected a JSON object")
        self.obj: dict[str, Any] = obj
        self.what = what
        version = obj.get("v")
        if type(version) is not int:
            raise PayloadError(ErrorCode.BAD_REQUEST, f"{what}: field 'v' must be the integer {VERSION}")
        if version != VERSION:
            raise PayloadError(ErrorCode.UNSUPPORTED_VERSION,
                               f"{what}: version {version} is not supported (expected 1)")

    def _bad(self, name: str, expected: str) -> PayloadError:
        return PayloadError(ErrorCode.BAD_REQUEST, f"{self.what}: field '{name}' must be {expected}")

    def text(self, name: str, *, max_len: int = MAX_NAME_LEN, allow_empty: bool = False) -> str:
        value = self.obj.get(name)
        if not isinstance(value, str) or (not value and not allow_empty) or len(value) > max_len:
            raise self._bad(name, f"a non-empty string of at most {max_len} characters")
        return value if value.isascii() else _no_surrogates(value)

    def opt_text(self, name: str, *, max_len: int = MAX_NAME_LEN) -> str | None:
        """An optional string: absent, null and "" all read as None."""
        if self.obj.get(name) in (None, ""):
            return None
        return self.text(name, max_len=max_len)

    def opt_free_text(self, name: str, *, max_len: int) -> str | None:
        """An optional text a citizen wrote (a rating's comment): as ``opt_text``, without control characters
        (it is shown on pages and written to spreadsheets, one line each)."""
        value = self.opt_text(name, max_len=max_len)
        if value is not None and has_control(value):
            raise self._bad(name, f"text of at most {max_len} characters without control characters")
        return value

    def token(self, name: str, *, max_len: int) -> str:
        """An id, ticket id or ticket number: 1 to ``max_len`` of ``A-Z a-z 0-9 _ . -`` (``hallq.limits``)."""
        value = self.obj.get(name)
        if not isinstance(value, str) or not is_token(value, max_len):
            raise self._bad(name, f"1-{max_len} of A-Z a-z 0-9 _ . -, starting with a letter or digit")
        return value

    def opt_token(self, name: str, *, max_len: int) -> str | None:
        """An optional ``token``: absent, null and "" all read as None."""
        if self.obj.get(name) in (None, ""):
            return None
        return self.token(name, max_len=max_len)

    def ident(self, name: str) -> str:
        """A hall, device or service id, as ``hallq.topics.is_valid_id`` has it."""
        return self.token(name, max_len=MAX_ID_LEN)

    def opt_ident(self, name: str) -> str | None:
        return self.opt_token(name, max_len=MAX_ID_LEN)

    def request_id(self, name: str = "request_id") -> str:
        """A request id as its sender chose it: any 1-64 characters but control characters."""
        value = self.text(name, max_len=MAX_REQUEST_ID_LEN)
        if has_control(value):
            raise self._bad(name, f"a string of 1-{MAX_REQUEST_ID_LEN} characters without control characters")
        return value

    def boolean(self, name: str, *, default: bool | None = None) -> bool:
        value = self.obj.get(name, default)
        if not isinstance(value, bool):
            raise self._bad(name, "true or false")
        return value

    def integer(self, name: str, *, minimum: int = 0, maximum: int = 2**53) -> int:
        value = self.obj.get(name)
        if type(value) is not int or not minimum <= value <= maximum:
            raise self._bad(name, f"an integer from {minimum} to {maximum}")
        return value

    def choice(self, name: str, choices: Sequence[str]) -> str:
        value = self.obj.get(name)
        if value not in choices:
            raise self._bad(name, "one of " + ", ".join(choices))
        return cast(str, value)

    def opt_choice(self, name: str, choices: Sequence[str]) -> str | None:
        if self.obj.get(name) is None:
            return None
        return self.choice(name, choices)

    def moment(self, name: str) -> datetime:
        text = self.text(name, max_len=MAX_MOMENT_LEN)
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise self._bad(name, "an RFC 3339 time with offset") from None
        if value.tzinfo is None:
            raise self._bad(name, "an RFC 3339 time with offset")
        return value

    def sub(self, name: str) -> _Fields:
        value = self.obj.get(name)
        if not isinstance(value, dict):
            raise self._bad(name, "an object")
        return _Fields.of(value, f"{self.what}.{name}")

    def opt_sub(self, name: str) -> _Fields | None:
        if self.obj.get(name) is None:
            return None
        return self.sub(name)

    def idents(self, name: str, *, max_items: int) -> tuple[str, ...]:
        """An optional list of ids (absent or null: empty), at most ``max_items``, without repeats."""
        value = self.obj.get(name)
        if value is None:
            return ()
        if not isinstance(value, list) or len(value) > max_items or not all(
                isinstance(item, str) and is_token(item, MAX_ID_LEN) for item in value):
            raise self._bad(name, f"a list of at most {max_items} ids")
        return tuple(dict.fromkeys(value))

    def subs(self, name: str) -> list[_Fields]:
        value = self.obj.get(name)
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self._bad(name, "a list of objects")
        return [_Fields.of(item, f"{self.what}.{name}[{i}]") for i, item in enumerate(value)]

    @classmethod
    def of(cls, obj: dict[str, Any], what: str) -> _Fields:
        inner = cls.__new__(cls)
        inner.obj = obj
        inner.what = what
        return inner


def _no_surrogates(value: str) -> str:
    """``value`` with each lone surrogate (JSON's ``"\\ud800"`` decodes to one) replaced by U+FFFD: such a
    string cannot be encoded as UTF-8, so it could be neither stored (SQLite), logged nor published again."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in value)
    return value


def _error_obj(error: ErrorInfo | None) -> dict[str, str] | None:
    return None if error is None else {"code": error.code, "message": error.message}


def _read_error(fields: _Fields) -> ErrorInfo | None:
    sub = fields.opt_sub("error")
    if sub is None:
        return None
    code = sub.text("code", max_len=MAX_ERROR_CODE_LEN)
    return ErrorInfo(code=ErrorCode(code) if code in _KNOWN_CODES else code,
                     message=sub.text("message", max_len=MAX_ERROR_MESSAGE_LEN))


_KNOWN_CODES: Final = frozenset(ERROR_CODES)




# --- payload types ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A refusal: ``code`` for programs (an ``ErrorCode``, or a newer peer's code this version does not know),
    ``message`` for people."""

    code: ErrorCode | str
    message: str


@dataclass(frozen=True, slots=True)
class TicketRequest:
    """dispenser → controller, on ``dispenser/{id}/request``: please issue a ticket."""

    request_id: str
    service: str
    priority: bool = False
    category: str | None = None
    card: CardScan | None = None

    def encode(self) -> bytes:
        obj: dict[str, Any] = {"v": VERSION, "request_id": self.request_id, "service": self.service,
                               "priority": self.priority, "category": self.category}
        if self.card is not None:
            obj["card"] = {"kind": self.card.kind, "code": self.card.code}
        return encode(obj)

    @staticmethod
    def decode(raw: bytes | str) -> TicketRequest:
        f = _Fields(raw, "ticket request")
        priority = f.boolean("priority", default=False)
        category = f.opt_choice("category", PRIORITY_CATEGORIES)
        if priority and category is None:
            category = "other"
        if not priority:
            category = None
        card_fields = f.opt_sub("card")
        card = None
        if card_fields is not None:
            card = CardScan(kind=cast(CardKind, card_fields.choice("kind", CARD_KINDS)),
                            code=card_fields.text("code", max_len=MAX_SCAN_LEN))
        return TicketRequest(request_id=f.request_id(), service=f.ident("service"),
                             priority=priority, category=category, card=card)


@dataclass(frozen=True, slots=True)
class CardScan:
    """A card the citizen scanned before pressing (``TicketRequest.card``): its ``kind`` (``cccd`` or ``hall``)
    and its ``code`` exactly as the scanner read it. Personal data: it travels only on the dispenser's own
    request topic, which the broker lets no one but the controller read (see ``hallq.cards``)."""

    kind: CardKind
    code: str

    def __repr__(self) -> str:  # never print a citizen's data into a log or a traceback
        return f"CardScan(kind={self.kind!r}, code=<{len(self.code)} characters>)"


@dataclass(frozen=True, slots=True)
class TicketInfo:
    """A ticket as clients see it."""

    id: str
    number: str
    service: str
    priority: bool
    category: str | None
    issued_at: datetime
    ahead: int
    estimated_wait_s: int
    card: bool = False  # a card was read with the request and the ticket is linked to its profile
    # The ticket's status-page token (the QR's link): random, unguessable, not derived from id or number. None
    # from a controller older than the status page.
    token: str | None = None

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": self.id, "number": self.number, "service": self.service, "priority": self.priority,
            "category": self.category, "issued_at": iso(self.issued_at), "ahead": self.ahead,
            "estimated_wait_s": self.estimated_wait_s}
        if self.card:
            obj["card"] = True
        if self.token is not None:
            obj["token"] = self.token
        return obj

    @staticmethod
    def read(f: _Fields) -> TicketInfo:
        return TicketInfo(
            id=f.token("id", max_len=MAX_TICKET_ID_LEN), number=f.token("number", max_len=MAX_NUMBER_LEN),
            service=f.ident("service"),
            priority=f.boolean("priority", default=False), category=f.opt_choice("category", PRIORITY_CATEGORIES),
            issued_at=f.moment("issued_at"), ahead=f.integer("ahead"),
            # Tolerant: an estimate is advice for the citizen, never a reason to leave a ticket unprinted; one
            # below zero (a controller whose clock stepped back, before hallq checked its samples) reads as 0.
            estimated_wait_s=max(0, f.integer("estimated_wait_s", minimum=-(2**53))),
            card=f.boolean("card", default=False),
            token=f.opt_token("token", max_len=MAX_STATUS_TOKEN_LEN),
        )


@dataclass(frozen=True, slots=True)
class TicketReply:
    """controller → dispenser, on ``dispenser/{id}/ticket``: the ticket, or why there is none."""

    request_id: str
    ticket: TicketInfo | None = None
    error: ErrorInfo | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def error_code(self) -> str | None:
        return None if self.error is None else self.error.code

    def encode(self) -> bytes:
        obj: dict[str, Any] = {"v": VERSION, "request_id": self.request_id, "ok": self.ok}
        if self.ticket is not None:
            obj["ticket"] = self.ticket.to_obj()
        if self.error is not None:
            obj["error"] = _error_obj(self.error)
        return encode(obj)

    @staticmethod
    def decode(raw: bytes | str) -> TicketReply:
        f = _Fields(raw, "ticket reply")
        # Empty when the request was too broken to read its id; else the sender's own, echoed as it sent it.
        request_id = f.text("request_id", max_len=MAX_REQUEST_ID_LEN, allow_empty=True)
        if f.boolean("ok"):
            return TicketReply(request_id=request_id, ticket=TicketInfo.read(f.sub("ticket")))
        error = _read_error(f) or ErrorInfo(ErrorCode.BAD_REQUEST, "refused without a reason")
        return TicketReply(request_id=request_id, error=error)


@dataclass(frozen=True, slots=True)
class PrintReport:
    """dispenser → controller, on ``dispenser/{id}/printed``: the ticket was printed, or not (then voided)."""

    ticket_id: str
    ok: bool
    reason: str | None = None

    def encode(self) -> bytes:
        return encode({"v": VERSION, "ticket_id": self.ticket_id, "ok": self.ok, "reason": self.reason})

    @staticmethod
    def decode(raw: bytes | str) -> PrintReport:
        f = _Fields(raw, "print report")
        ok = f.boolean("ok")
        reason = None if ok else (f.opt_text("reason", max_len=MAX_REASON_LEN) or "error")
        return PrintReport(ticket_id=f.token("ticket_id", max_len=MAX_TICKET_ID_LEN), ok=ok, reason=reason)


@dataclass(frozen=True, slots=True)
class CounterCommand:
    """counter → controller, on ``counter/{id}/command``.

    ``ticket`` names a ticket number for ``call``; ``service`` names the target service for ``transfer``
    (and, optionally, restricts ``next`` to one of the counter's services).

    ``rate`` carries the citizen's ``rating`` (a ``RatingLevel``) of the counter's last served ticket, named by
    its id in ``ticket``: a counter's rating buttons rate only that ticket (the controller checks it).

    ``serving`` is what the sender last saw the counter serving: that ticket's id (or number), or
    ``SERVING_NOTHING`` (``""``) when it saw it serving nothing. The controller refuses a ticket action whose
    ``serving`` is no longer true (``conflict``), so that no client finishes a citizen it has not seen called.
    ``None`` (the field left out, as senders older than it do; ``null`` reads the same) claims nothing and is
    not checked. Unlike the other optional fields, ``""`` is a value here, not "absent".
    """

    SERVING_NOTHING: ClassVar[str] = ""

    request_id: str
    action: CounterAction
    ticket: str | None = None
    service: str | None = None
    serving: str | None = None
    profile: ProfileEdit | None = None
    rating: RatingLevel | None = None

    def encode(self) -> bytes:
        obj: dict[str, Any] = {"v": VERSION, "request_id": self.request_id, "action": self.action,
                               "ticket": self.ticket, "service": self.service}
        if self.serving is not None:
            obj["serving"] = self.serving
        if self.profile is not None:
            obj["profile"] = self.profile.to_obj()
        if self.rating is not None:
            obj["rating"] = self.rating
        return encode(obj)

    @staticmethod
    def decode(raw: bytes | str) -> CounterCommand:
        f = _Fields(raw, "counter command")
        action = cast(CounterAction, f.choice("action", COUNTER_ACTIONS))
        # "" is a value here ("nothing"), not absent; otherwise a ticket id or number, in their strict alphabet.
        serving = f.obj.get("serving")
        if serving is not None and serving != "":
            serving = f.token("serving", max_len=MAX_TICKET_ID_LEN)
        profile_fields = f.opt_sub("profile")
        # "rate" names a ticket by its id (a finished ticket's number may be given out again); the others by number.
        ticket_len = MAX_TICKET_ID_LEN if action == "rate" else MAX_NUMBER_LEN
        command = CounterCommand(request_id=f.request_id(), action=action,
                                 ticket=f.opt_token("ticket", max_len=ticket_len), service=f.opt_ident("service"),
                                 serving=serving,
                                 profile=None if profile_fields is None else ProfileEdit.read(profile_fields),
                                 rating=cast(RatingLevel | None, f.opt_choice("rating", RATING_LEVELS)))
        if action == "rate" and (command.rating is None or command.ticket is None):
            raise PayloadError(ErrorCode.BAD_REQUEST,
                               "counter command: 'rate' needs fields 'rating' and 'ticket' (the served ticket's id)")
        if action == "profile" and command.profile is None:
            raise PayloadError(ErrorCode.BAD_REQUEST, "counter command: 'profile' needs field 'profile'")
        if action == "call" and command.ticket is None:
            raise PayloadError(ErrorCode.BAD_REQUEST,
                               "counter command: 'call' needs field 'ticket' (a number like A015)")
        if action == "transfer" and command.service is None:
            raise PayloadError(ErrorCode.BAD_REQUEST, "counter command: 'transfer' needs field 'service'")
        return command


MAX_PHONE_LEN: Final = 20
MAX_NOTES_LEN: Final = 500
MAX_HALL_CARD_LEN: Final = 64
_PHONE = re.compile(r"\+?[0-9][0-9 .-]{5,19}")


@dataclass(frozen=True, slots=True)
class ProfileEdit:
    """What a clerk completes or corrects in the profile of the citizen the counter is serving (``profile``
    command): a field left None is left as it is; ``""`` clears it. ``hall_card`` registers a hall-issued card's
    code to the profile."""

    phone: str | None = None
    notes: str | None = None
    hall_card: str | None = None

    def to_obj(self) -> dict[str, Any]:
        return {name: value for name, value in (("phone", self.phone), ("notes", self.notes),
                                                ("hall_card", self.hall_card)) if value is not None}

    def __repr__(self) -> str:
        return f"ProfileEdit(fields={sorted(self.to_obj())})"

    @staticmethod
    def read(f: _Fields) -> ProfileEdit:
        def field(name: str, max_len: int) -> str | None:
            value = f.obj.get(name)
            if value is None or value == "":
                return value
            text = f.text(name, max_len=max_len)
            if has_control(text.replace("\n", " ")):
                raise f._bad(name, "text without control characters")
            return text

        phone = field("phone", MAX_PHONE_LEN)
        if phone and not _PHONE.fullmatch(phone):
            raise f._bad("phone", "a phone number: digits, spaces, dots or dashes, optionally after a +")
        hall_card = field("hall_card", MAX_HALL_CARD_LEN)
        return ProfileEdit(phone=phone, notes=field("notes", MAX_NOTES_LEN), hall_card=hall_card)


@dataclass(frozen=True, slots=True)
class Visit:
    """One earlier visit of a citizen, as the counter shows it: the business day, the service, the outcome
    (``served``, ``no_show``, ``voided``, ``expired``, ``transferred``, or ``waiting`` while it is open)."""

    day: str
    service: str
    outcome: str

    def to_obj(self) -> dict[str, Any]:
        return {"day": self.day, "service": self.service, "outcome": self.outcome}

    @staticmethod
    def read(f: _Fields) -> Visit:
        return Visit(day=f.text("day", max_len=MAX_DAY_LEN), service=f.ident("service"),
                     outcome=f.text("outcome", max_len=MAX_ACTION_LEN))


@dataclass(frozen=True, slots=True)
class CitizenProfile:
    """Who the counter is calling (``CounterReply.profile``): personal data, sent only to the counter that
    called the ticket, on its own reply topic. Each field the hall's config does not keep is None.

    ``ref`` is the profile's short reference (what logs and the audit name); ``first_visit`` is true while the
    citizen has no earlier visit (the clerk completes the registration); ``visits`` are the latest first."""

    ref: str
    ticket: str
    first_visit: bool
    name: str | None = None
    id_number: str | None = None
    birth_date: str | None = None
    age: int | None = None
    sex: str | None = None
    address: str | None = None
    phone: str | None = None
    notes: str | None = None
    hall_card: bool = False
    visits: tuple[Visit, ...] = ()

    def __repr__(self) -> str:
        return f"CitizenProfile(ref={self.ref[:8]!r}, ticket={self.ticket!r})"

    def to_obj(self) -> dict[str, Any]:
        return {"ref": self.ref, "ticket": self.ticket, "first_visit": self.first_visit, "name": self.name,
                "id_number": self.id_number, "birth_date": self.birth_date, "age": self.age, "sex": self.sex,
                "address": self.address, "phone": self.phone, "notes": self.notes, "hall_card": self.hall_card,
                "visits": [visit.to_obj() for visit in self.visits]}

    @staticmethod
    def read(f: _Fields) -> CitizenProfile:
        age = f.obj.get("age")
        return CitizenProfile(
            ref=f.token("ref", max_len=MAX_TICKET_ID_LEN), ticket=f.token("ticket", max_len=MAX_TICKET_ID_LEN),
            first_visit=f.boolean("first_visit", default=False),
            name=f.opt_text("name", max_len=MAX_NAME_LEN), id_number=f.opt_text("id_number", max_len=12),
            birth_date=f.opt_text("birth_date", max_len=MAX_DAY_LEN),
            age=None if age is None else f.integer("age", maximum=200), sex=f.opt_text("sex", max_len=8),
            address=f.opt_text("address", max_len=MAX_NAME_LEN + 100), phone=f.opt_text("phone", max_len=MAX_PHONE_LEN),
            notes=f.opt_text("notes", max_len=MAX_NOTES_LEN), hall_card=f.boolean("hall_card", default=False),
            visits=tuple(Visit.read(v) for v in (f.subs("visits") if f.obj.get("visits") is not None else [])),
        )


@dataclass(frozen=True, slots=True)
class ServingTicket:
    """The ticket a counter is serving, as its reply and state show it."""

    id: str
    number: str
    service: str
    priority: bool
    called_at: datetime
    recalls: int = 0

    def to_obj(self) -> dict[str, Any]:
        return {"id": self.id, "number": self.number, "service": self.service, "priority": self.priority,
                "called_at": iso(self.called_at), "recalls": self.recalls}

    @staticmethod
    def read(f: _Fields) -> ServingTicket:
        return ServingTicket(id=f.token("id", max_len=MAX_TICKET_ID_LEN),
                             number=f.token("number", max_len=MAX_NUMBER_LEN),
                             service=f.ident("service"), priority=f.boolean("priority", default=False),
                             called_at=f.moment("called_at"), recalls=f.integer("recalls"))


@dataclass(frozen=True, slots=True)
class CounterReply:
    """controller → counter, on ``counter/{id}/reply``: the command's outcome and the counter's ticket now."""

    request_id: str
    action: str
    status: str | None = None
    ticket: ServingTicket | None = None
    error: ErrorInfo | None = None
    profile: CitizenProfile | None = None  # only to the counter that called a ticket linked to a card

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def error_code(self) -> str | None:
        return None if self.error is None else self.error.code

    def encode(self) -> bytes:
        obj: dict[str, Any] = {"v": VERSION, "request_id": self.request_id, "ok": self.ok, "action": self.action,
                               "status": self.status, "ticket": None if self.ticket is None else self.ticket.to_obj()}
        if self.error is not None:
            obj["error"] = _error_obj(self.error)
        if self.profile is not None:
            obj["profile"] = self.profile.to_obj()
        return encode(obj)

    @staticmethod
    def decode(raw: bytes | str) -> CounterReply:
        f = _Fields(raw, "counter reply")
        ticket_fields = f.opt_sub("ticket")
        ok = f.boolean("ok")
        return CounterReply(
            request_id=f.text("request_id", max_len=MAX_REQUEST_ID_LEN, allow_empty=True),
            action=f.text("action", max_len=MAX_ACTION_LEN, allow_empty=True),
            status=f.opt_choice("status", COUNTER_STATUSES),
            ticket=None if ticket_fields is None else ServingTicket.read(ticket_fields),
            error=None if ok else (_read_error(f) or ErrorInfo(ErrorCode.BAD_REQUEST, "refused without a reason")),
            profile=None if (profile := f.opt_sub("profile")) is None else CitizenProfile.read(profile),
        )


@dataclass(frozen=True, slots=True)
class WaitingCount:
    """How many tickets wait for one service, per lane."""

    service: str
    regular: int
    priority: int

    def to_obj(self) -> dict[str, Any]:
        return {"service": self.service, "regular": self.regular, "priority": self.priority}

    @staticmethod
    def read(f: _Fields) -> WaitingCount:
        return WaitingCount(service=f.ident("service"), regular=f.integer("regular"),
                            priority=f.integer("priority"))


@dataclass(frozen=True, slots=True)
class CounterState:
    """Retained, on ``counter/{id}/state``: the counter's status, its ticket and its services' queues."""

    counter: str
    name: str
    status: CounterStatus
    services: tuple[str, ...]
    ticket: ServingTicket | None
    waiting: tuple[WaitingCount, ...]
    at: datetime

    def encode(self) -> bytes:
        return encode({"v": VERSION, "counter": self.counter, "name": self.name, "status": self.status,
                       "services": list(self.services),
                       "ticket": None if self.ticket is None else self.ticket.to_obj(),
                       "waiting": [w.to_obj() for w in self.waiting], "at": iso(self.at)})

    @staticmethod
    def decode(raw: bytes | str) -> CounterState:
        f = _Fields(raw, "counter state")
        ticket_fields = f.opt_sub("ticket")
        services = f.obj.get("services")
        if not isinstance(services, list) or not all(isinstance(s, str) and is_token(s, MAX_ID_LEN) for s in services):
            raise PayloadError(ErrorCode.BAD_REQUEST, "counter state: field 'services' must be a list of service ids")
        return CounterState(
            counter=f.ident("counter"), name=f.text("name", max_len=MAX_NAME_LEN),
            status=cast(CounterStatus, f.choice("status", COUNTER_STATUSES)), services=tuple(services),
            ticket=None if ticket_fields is None else ServingTicket.read(ticket_fields),
            waiting=tuple(WaitingCount.read(w) for w in f.subs("waiting")), at=f.moment("at"),
        )


@dataclass(frozen=True, slots=True)
class Call:
    """controller → everyone, on ``calls`` (QoS 1, not retained): ticket ``number`` to ``counter``.

    ``seq`` grows by one with every call or recall in the hall, across restarts, so a display can tell a
    missed message (a gap) from a repeated one.
    """

    seq: int
    number: str
    counter: str
    counter_name: str
    service: str
    priority: bool
    recall: bool
    at: datetime
    ticket_id: str = ""

    def to_obj(self) -> dict[str, Any]:
        return {"v": VERSION, "seq": self.seq, "number": self.number, "counter": self.counter,
                "counter_name": self.counter_name, "service": self.service, "priority": self.priority,
                "recall": self.recall, "at": iso(self.at), "ticket_id": self.ticket_id}

    def encode(self) -> bytes:
        return encode(self.to_obj())

    @staticmethod
    def read(f: _Fields) -> Call:
        return Call(seq=f.integer("seq"), number=f.token("number", max_len=MAX_NUMBER_LEN), counter=f.ident("counter"),
                    counter_name=f.text("counter_name", max_len=MAX_NAME_LEN), service=f.ident("service"),
                    priority=f.boolean("priority", default=False), recall=f.boolean("recall", default=False),
                    at=f.moment("at"), ticket_id=f.opt_token("ticket_id", max_len=MAX_TICKET_ID_LEN) or "")

    @staticmethod
    def decode(raw: bytes | str) -> Call:
        return Call.read(_Fields(raw, "call"))


@dataclass(frozen=True, slots=True)
class BoardCounter:
    """One counter on the board: its status and the number it serves (``None``: serving nobody)."""

    counter: str
    name: str
    status: CounterStatus
    number: str | None
    service: str | None

    def to_obj(self) -> dict[str, Any]:
        return {"counter": self.counter, "name": self.name, "status": self.status, "number": self.number,
                "service": self.service}

    @staticmethod
    def read(f: _Fields) -> BoardCounter:
        return BoardCounter(counter=f.ident("counter"), name=f.text("name", max_len=MAX_NAME_LEN),
                            status=cast(CounterStatus, f.choice("status", COUNTER_STATUSES)),
                            number=f.opt_token("number", max_len=MAX_NUMBER_LEN), service=f.opt_ident("service"))


@dataclass(frozen=True, slots=True)
class BoardService:
    """One service on the board: names for the screen and its waiting counts."""

    service: str
    name_vi: str
    name_en: str
    regular: int
    priority: int

    def to_obj(self) -> dict[str, Any]:
        return {"service": self.service, "name_vi": self.name_vi, "name_en": self.name_en,
                "regular": self.regular, "priority": self.priority}

    @staticmethod
    def read(f: _Fields) -> BoardService:
        return BoardService(service=f.ident("service"), name_vi=f.text("name_vi", max_len=MAX_NAME_LEN),
                            name_en=f.text("name_en", max_len=MAX_NAME_LEN), regular=f.integer("regular"),
                            priority=f.integer("priority"))


@dataclass(frozen=True, slots=True)
class Board:
    """Retained, on ``board``: everything a display needs to paint at once after it starts.

    ``calls`` holds the last ten calls, newest first; ``seq`` is the newest call's seq (0 before any).
    """

    hall: str
    hall_name_vi: str
    hall_name_en: str
    seq: int
    calls: tuple[Call, ...]
    counters: tuple[BoardCounter, ...]
    services: tuple[BoardService, ...]
    at: datetime
    business_day: str = ""

    def encode(self) -> bytes:
        return encode({"v": VERSION, "hall": self.hall, "hall_name_vi": self.hall_name_vi,
                       "hall_name_en": self.hall_name_en, "seq": self.seq, "business_day": self.business_day,
                       "calls": [c.to_obj() for c in self.calls], "counters": [c.to_obj() for c in self.counters],
                       "services": [s.to_obj() for s in self.services], "at": iso(self.at)})

    @staticmethod
    def decode(raw: bytes | str) -> Board:
        f = _Fields(raw, "board")
        return Board(hall=f.ident("hall"), hall_name_vi=f.text("hall_name_vi", max_len=MAX_NAME_LEN),
                     hall_name_en=f.text("hall_name_en", max_len=MAX_NAME_LEN), seq=f.integer("seq"),
                     calls=tuple(Call.read(c) for c in f.subs("calls")),
                     counters=tuple(BoardCounter.read(c) for c in f.subs("counters")),
                     services=tuple(BoardService.read(s) for s in f.subs("services")), at=f.moment("at"),
                     business_day=f.opt_text("business_day", max_len=MAX_DAY_LEN) or "")


@dataclass(frozen=True, slots=True)
class Presence:
    """Retained, on ``status/{client}``: ``online`` or ``offline`` (the latter also as the last will).

    ``printer`` is a dispenser's printer state (``ok``, ``paper_low``, ``paper_out``, ``offline``);
    ``detail`` is free text for the operator.
    """

    state: Literal["online", "offline"]
    role: str = ""
    printer: str | None = None
    detail: str | None = None

    def encode(self) -> bytes:
        obj: dict[str, Any] = {"v": VERSION, "state": self.state, "role": self.role}
        if self.printer is not None:
            obj["printer"] = self.printer
        if self.detail is not None:
            obj["detail"] = self.detail
        return encode(obj)

    @staticmethod
    def decode(raw: bytes | str) -> Presence:
        f = _Fields(raw, "presence")
        state = cast(Literal["online", "offline"], f.choice("state", ("online", "offline")))
        return Presence(state=state, role=f.opt_text("role", max_len=MAX_ROLE_LEN) or "",
                        printer=f.opt_choice("printer", PRINTER_STATES),
                        detail=f.opt_text("detail", max_len=MAX_DETAIL_LEN))


@dataclass(frozen=True, slots=True)
class ManagerCommand:
    """manager → controller, on ``manager/{id}/command``: an action of the hall's manager, by ``user``.

    ``counter`` names the counter of ``open_counter``/``pause_counter``/``close_counter``; ``ticket`` today's number
    of the waiting ticket to ``void_ticket`` or ``transfer_ticket`` (to ``service``); ``text_vi`` (and optionally
    ``text_en``) the notice of ``show_notice``. ``end_day`` expires every open ticket now and issues none until the
    next business day.

    ``rate_ticket`` passes on a citizen's rating from the ticket's status page (``user`` is ``phone``): ``ticket``
    is the ticket's id, ``rating`` a ``RatingLevel``, ``reasons`` ids from the hall's ``[ratings] reasons`` (only
    with a low rating) and ``comment`` the citizen's own short text.
    """

    request_id: str
    user: str
    action: ManagerAction
    counter: str | None = None
    ticket: str | None = None
    service: str | None = None
    text_vi: str | None = None
    text_en: str | None = None
    rating: RatingLevel | None = None
    reasons: tuple[str, ...] = ()
    comment: str | None = None

    def encode(self) -> bytes:
        obj: dict[str, Any] = {"v": VERSION, "request_id": self.request_id, "user": self.user, "action": self.action,
                               "counter": self.counter, "ticket": self.ticket, "service": self.service,
                               "text_vi": self.text_vi, "text_en": self.text_en}
        if self.rating is not None:
            obj["rating"] = self.rating
            obj["reasons"] = list(self.reasons)
            obj["comment"] = self.comment
        return encode(obj)

    @staticmethod
    def decode(raw: bytes | str) -> ManagerCommand:
        f = _Fields(raw, "manager command")
        action = cast(ManagerAction, f.choice("action", MANAGER_ACTIONS))
        rate = action == "rate_ticket"  # names the ticket by its id; the other actions by today's number
        command = ManagerCommand(request_id=f.request_id(), user=f.token("user", max_len=MAX_USER_LEN),
                                 action=action, counter=f.opt_ident("counter"),
                                 ticket=f.opt_token("ticket", max_len=MAX_TICKET_ID_LEN if rate else MAX_NUMBER_LEN),
                                 service=f.opt_ident("service"),
                                 text_vi=f.opt_text("text_vi", max_len=MAX_NOTICE_LEN),
                                 text_en=f.opt_text("text_en", max_len=MAX_NOTICE_LEN),
                                 rating=cast(RatingLevel | None, f.opt_choice("rating", RATING_LEVELS)),
                                 reasons=f.idents("reasons", max_items=MAX_RATING_REASONS),
                                 comment=f.opt_free_text("comment", max_len=MAX_COMMENT_LEN))
        needs = {"open_counter": "counter", "pause_counter": "counter", "close_counter": "counter",
                 "void_ticket": "ticket", "transfer_ticket": "ticket", "show_notice": "text_vi",
                 "rate_ticket": "ticket"}.get(action)
        if rate and command.rating is None:
            raise PayloadError(ErrorCode.BAD_REQUEST, "manager command: 'rate_ticket' needs field 'rating'")
        if needs is not None and getattr(command, needs) is None:
            raise PayloadError(ErrorCode.BAD_REQUEST, f"manager command: {action!r} needs field {needs!r}")
        if action == "transfer_ticket" and command.service is None:
            raise PayloadError(ErrorCode.BAD_REQUEST, "manager command: 'transfer_ticket' needs field 'service'")
        return command


@dataclass(frozen=True, slots=True)
class ManagerReply:
    """controller → manager, on ``manager/{id}/reply``: the action's outcome (``error`` None: done and stored)."""

    request_id: str
    action: str
    error: ErrorInfo | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def encode(self) -> bytes:
        obj: dict[str, Any] = {"v": VERSION, "request_id": self.request_id, "ok": self.ok, "action": self.action}
        if self.error is not None:
            obj["error"] = _error_obj(self.error)
        return encode(obj)

    @staticmethod
    def decode(raw: bytes | str) -> ManagerReply:
        f = _Fields(raw, "manager reply")
        ok = f.boolean("ok")
        return ManagerReply(
            request_id=f.text("request_id", max_len=MAX_REQUEST_ID_LEN, allow_empty=True),
            action=f.text("action", max_len=MAX_ACTION_LEN, allow_empty=True),
            error=None if ok else (_read_error(f) or ErrorInfo(ErrorCode.BAD_REQUEST, "refused without a reason")),
        )


@dataclass(frozen=True, slots=True)
class Notice:
    """Retained, on ``notice``: a short notice every display shows until it is cleared (an empty retained message
    clears it). ``by`` is the manager's user who set it."""

    text_vi: str
    at: datetime
    text_en: str | None = None
    by: str = ""

    def encode(self) -> bytes:
        return encode({"v": VERSION, "text_vi": self.text_vi, "text_en": self.text_en, "at": iso(self.at),
                       "by": self.by})

    @staticmethod
    def decode(raw: bytes | str) -> Notice:
        f = _Fields(raw, "notice")
        return Notice(text_vi=f.text("text_vi", max_len=MAX_NOTICE_LEN), at=f.moment("at"),
                      text_en=f.opt_text("text_en", max_len=MAX_NOTICE_LEN),
                      by=f.opt_text("by", max_len=MAX_USER_LEN) or "")


@dataclass(frozen=True, slots=True)
class HallEvent:
    """controller → manager, on ``events`` (not retained): something the hall's manager should see, as it happens.

    ``kind`` says what; ``message`` says it for people (in English, for the log and for readers that do not know
    the kind); the other fields name what it concerns when they apply, so that a page can say it in its own
    language: ``service`` (a transfer's target), ``day`` (the business day started or ended), ``count`` (the
    tickets that expired with it), ``text`` (a notice's words). A kind this version does not know is read as it is.
    """

    kind: str
    at: datetime
    message: str
    number: str | None = None
    counter: str | None = None
    dispenser: str | None = None
    code: str | None = None
    user: str | None = None
    service: str | None = None
    day: str | None = None
    count: int | None = None
    text: str | None = None

    def encode(self) -> bytes:
        return encode({"v": VERSION, "kind": self.kind, "at": iso(self.at), "message": self.message,
                       "number": self.number, "counter": self.counter, "dispenser": self.dispenser, "code": self.code,
                       "user": self.user, "service": self.service, "day": self.day, "count": self.count,
                       "text": self.text})

    @staticmethod
    def decode(raw: bytes | str) -> HallEvent:
        f = _Fields(raw, "hall event")
        return HallEvent(kind=f.text("kind", max_len=MAX_ACTION_LEN * 2), at=f.moment("at"),
                         message=f.text("message", max_len=MAX_ERROR_MESSAGE_LEN, allow_empty=True),
                         number=f.opt_text("number", max_len=MAX_NUMBER_LEN),
                         counter=f.opt_text("counter", max_len=MAX_ID_LEN),
                         dispenser=f.opt_text("dispenser", max_len=MAX_ID_LEN),
                         code=f.opt_text("code", max_len=MAX_ERROR_CODE_LEN),
                         user=f.opt_text("user", max_len=MAX_USER_LEN),
                         service=f.opt_text("service", max_len=MAX_ID_LEN),
                         day=f.opt_text("day", max_len=MAX_DAY_LEN),
                         count=f.integer("count") if f.obj.get("count") is not None else None,
                         text=f.opt_text("text", max_len=MAX_NOTICE_LEN))
