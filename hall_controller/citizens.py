"""The citizen's card at the controller: a scanned card becomes a profile reference, an age, a linked ticket,
and, when a counter calls that ticket, the profile for that counter alone.

Theory of operation: ``CitizenDesk`` sits between ``requests.py`` and the profiles database
(``profiles.ProfileStore``). The engine sees only the profile's reference (``IssueTicket.card``), which is also
all the journal keeps; the hall's age rule is applied here, before the engine numbers the ticket (a citizen of
``elderly_age`` or more goes to the priority lane with the category ``elderly``, unless the priority button
already named a category). A scan the controller cannot read, a hall card not registered yet, or a profiles
database that fails never refuses a ticket: the ticket is an ordinary one, and the log says why (with no personal
data: a profile is named by ``hallq.cards.reference_text``).

A profile goes out only in the reply to the counter that called its ticket (``next``, ``call``, ``recall``) and
after that counter's ``profile`` command; each time is recorded in the audit (``views``), when the reply is
built (a reply then lost to a failed ledger write is still counted as a view: the audit errs on the side of
saying more). The ``profile`` command changes the profile last shown at that counter today, so a clerk can
finish a registration after ``complete``.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from hall_controller.config import CardsConfig
from hall_controller.engine import HallSpec
from hall_controller.engine.events import Event, TicketExpired, TicketFinished, TicketTransferred, TicketVoided
from hall_controller.profiles import ProfileStore, Seen
from hallq import wire
from hallq.cards import CardError, CitizenCard, age_on, parse, reference_text
from hallq.errors import ProfileError

log = logging.getLogger(__name__)

PURGE_EVERY_S: Final = 3600.0


@dataclass(frozen=True, slots=True)
class _Shown:
    ticket_id: str
    number: str
    ref: str
    day: str


class CitizenDesk:
    """Cards, profiles and their audit for one hall (see the module doc)."""

    def __init__(self, store: ProfileStore, config: CardsConfig, spec: HallSpec) -> None:
        self.store = store
        self.config = config
        self.spec = spec
        self._shown: dict[str, _Shown] = {}  # counter -> the profile it was shown last
        self._linked: set[str] = set()  # today's tickets linked to a profile
        self._linked_day = ""
        self._previous: set[str] = set()  # the day before's, until its tickets' expiry is recorded
        self._next_purge_s = 0.0

    # --- at the kiosk ---------------------------------------------------------------------------------------------

    def scan(self, scan: wire.CardScan, *, dispenser: str, now: datetime) -> Seen | None:
        """The profile of a scanned card, or None (the ticket is then an ordinary one; logged)."""
        try:
            card = parse(scan.code, today=self.spec.local(now).date(), hall_prefix=self.config.hall_card_prefix)
        except CardError as exc:
            log.warning("card from dispenser=%s not read (%s); an ordinary ticket", dispenser, exc)
            return None
        try:
            if isinstance(card, CitizenCard):
                seen = self.store.citizen(card, now=now)
            else:
                found = self.store.hall_card(card.code, now=now)
                if found is None:
                    log.info("hall card from dispenser=%s is registered to no one yet; an ordinary ticket "
                             "(register it at a counter)", dispenser)
                    return None
                seen = found
        except (ProfileError, sqlite3.Error) as exc:
            log.error("profiles unavailable (%s); card from dispenser=%s not linked, an ordinary ticket", exc,
                      dispenser)
            return None
        log.info("card read kind=%s profile=%s%s dispenser=%s", scan.kind, reference_text(seen.ref),
                 " (new)" if seen.new else "", dispenser)
        return seen

    def elderly(self, seen: Seen, *, now: datetime) -> bool:
        """True if the hall's age rule puts this citizen in the priority lane."""
        return (self.config.elderly_age > 0 and seen.birth_date is not None
                and age_on(seen.birth_date, self.spec.local(now).date()) >= self.config.elderly_age)

    def link(self, ticket_id: str, seen: Seen, *, service: str, now: datetime) -> None:
        """After the ticket is stored: it is this profile's visit."""
        day = self.spec.business_day(now)
        try:
            self.store.link(ticket_id, seen.ref, day=day, service=service)
        except (ProfileError, sqlite3.Error) as exc:
            log.error("profiles unavailable (%s); the visit of profile=%s is not recorded", exc,
                      reference_text(seen.ref))
            return
        self._today(day).add(ticket_id)

    # --- at the counter ---------------------------------------------------------------------------------------

    def for_call(self, counter: str, ticket: wire.ServingTicket, *, now: datetime) -> wire.CitizenProfile | None:
        """The profile for the counter that just called (or recalled) ``ticket``, if a card came with it."""
        day = self.spec.business_day(now)
        if ticket.id not in self._today(day):
            self._shown.pop(counter, None)
            return None
        try:
            ref = self.store.ref_of(ticket.id)
            profile = None if ref is None else self.store.show(
                ref, ticket_id=ticket.id, counter=counter, number=ticket.number, today=self._date(now), now=now)
        except (ProfileError, sqlite3.Error) as exc:
            log.error("profiles unavailable (%s); counter=%s gets no profile for ticket=%s", exc, counter,
                      ticket.number)
            return None
        if profile is None or ref is None:
            return None
        self._shown[counter] = _Shown(ticket.id, ticket.number, ref, day)
        log.info("profile %s shown to counter=%s ticket=%s", reference_text(ref), counter, ticket.number)
        return profile

    def edit(self, counter: str, edit: wire.ProfileEdit, *,
             now: datetime) -> tuple[wire.CitizenProfile | None, wire.ErrorInfo | None]:
        """A clerk's ``profile`` command: (the profile as it is now, None) or (None, why not)."""
        shown = self._shown.get(counter)
        day = self.spec.business_day(now)
        if shown is None:
            shown = self._remembered(counter, day)
        if shown is None or shown.day != day:
            return None, wire.ErrorInfo(wire.ErrorCode.NO_PROFILE, f"counter {counter} has called no ticket with a "
                                                                   "card today: there is no profile to complete")
        hall_card = edit.hall_card
        if hall_card:
            try:
                code = parse(hall_card, today=self._date(now), hall_prefix=self.config.hall_card_prefix)
            except CardError as exc:
                return None, wire.ErrorInfo(wire.ErrorCode.BAD_REQUEST, f"not a card of this hall: {exc}")
            if isinstance(code, CitizenCard):
                return None, wire.ErrorInfo(wire.ErrorCode.BAD_REQUEST, "a CCCD is not a hall card")
            hall_card = code.code
        try:
            problem = self.store.edit(shown.ref, phone=edit.phone, notes=edit.notes, hall_card=hall_card)
            profile = None if problem is not None else self.store.show(
                shown.ref, ticket_id=shown.ticket_id, counter=counter, number=shown.number, today=self._date(now),
                now=now, what="edited")
        except (ProfileError, sqlite3.Error) as exc:
            log.error("profiles unavailable (%s); counter=%s could not change profile=%s", exc, counter,
                      reference_text(shown.ref))
            return None, wire.ErrorInfo(wire.ErrorCode.STORAGE_UNAVAILABLE,
                                        "the profiles cannot be written right now; nothing was changed")
        if problem is not None or profile is None:
            return None, wire.ErrorInfo(wire.ErrorCode.NO_PROFILE, problem or "the profile was erased")
        log.info("profile %s changed at counter=%s (%s)", reference_text(shown.ref), counter,
                 ", ".join(sorted(edit.to_obj())) or "nothing")
        return profile, None

    def _remembered(self, counter: str, day: str) -> _Shown | None:
        """After a restart: the profile the audit says ``counter`` was shown last today, so that a clerk can
        finish a registration begun before the controller restarted."""
        start = datetime.combine(date.fromisoformat(day), self.spec.day_starts_at, tzinfo=self.spec.zone)
        try:
            last = self.store.last_shown(counter, since=start)
        except sqlite3.Error:
            return None
        if last is None:
            return None
        ref, ticket_id, number = last
        shown = self._shown[counter] = _Shown(ticket_id, number, ref, day)
        return shown

    # --- after each stored batch ----------------------------------------------------------------------------

    def stored(self, events: list[Event], *, now: datetime, now_s: float) -> None:
        """Record how linked visits ended, and delete the profiles unused for too long (hourly)."""
        changes: dict[str, str] = {}
        try:
            linked = self._today(self.spec.business_day(now))
            for event in events:
                if isinstance(event, TicketFinished | TicketVoided | TicketExpired | TicketTransferred) \
                        and (event.ticket_id in linked or event.ticket_id in self._previous):
                    changes[event.ticket_id] = (event.outcome if isinstance(event, TicketFinished) else
                                                "voided" if isinstance(event, TicketVoided) else
                                                "expired" if isinstance(event, TicketExpired) else "transferred")
            self.store.outcomes(changes)
            if now_s >= self._next_purge_s:
                self._next_purge_s = now_s + PURGE_EVERY_S
                purged = self.store.purge(now=now, retain_days=self.config.retain_days)
                if purged:
                    log.info("deleted %d profile(s) unused for %d days", purged, self.config.retain_days)
        except (ProfileError, sqlite3.Error) as exc:
            log.error("profiles unavailable (%s); visits' outcomes not recorded", exc)

    def _today(self, day: str) -> set[str]:
        if day != self._linked_day:
            # The day before's open tickets expire as the new day starts: keep them for that batch's outcomes.
            self._previous = self._linked
            self._linked = self.store.linked_on(day)
            self._linked_day = day
        return self._linked

    def _date(self, now: datetime) -> date:
        return self.spec.local(now).date()
