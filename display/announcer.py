"""What the hall hears, and when: the pure planner that keeps the voice close behind the screen.

Theory of operation
-------------------
A call is shown the moment it arrives; its announcement can only start when the one before it has ended.
A Vietnamese sentence ("Mời số a không trăm mười lăm đến quầy số năm") lasts about 3 s and the chime 1.3 s,
so at a 20-counter peak (a call every 2–3 s) announcing every call on its own, with its chime and its
English, falls further behind with every call. The planner keeps the voice within ``max_lag_s`` of the
screen, by these rules, in this order:

1. **Superseded calls are not spoken.** A call (not a recall) whose counter has called again since is
   skipped: its citizen has been called and the counter has moved on. A recall is always spoken.
2. **Waiting calls are merged under one chime, and said briskly.** Everything that waits when the voice is
   free becomes one *segment*: the chime, then the first call in its lead form ("Mời số A015 đến quầy số
   5"), then the others in their continuation form ("số B003 đến quầy số 2"). Recalls go first. While more
   than one call waits the voice is *busy*: it uses the sentences made at the brisker ``busy`` speed, and
   the next segment follows after the short ``pause_s`` instead of the gap (its chime separates them).
3. **English gives way first.** The second language's sentence (English) forms a segment of its own that
   follows the first (after the short ``pause_s``, as one announcement sounds), and only when the voice has
   nothing else to say: a single call spoken alone, with no other call waiting when its English is due.
   Otherwise its English is skipped.
4. **Nothing starts late.** A call whose words could not start within ``max_lag_s`` of its arrival is
   skipped, and a segment is never made longer than ``max_lag_s``: what does not fit waits for the next.
   When not every waiting call can start in time, the oldest one (not a recall) gives way (``crowded``), so
   the number just shown large on the screen is the one the voice says.

When calls come faster than the voice can say them (a Vietnamese call takes about 3 s to say at a hall's
calm 140 words a minute, 2.4 s briskly), some are skipped; the screen still shows and flashes every one.
``bench/voice_lag.py`` measures the lag and how many calls are said at a hall's paces.

Nothing is skipped silently: every call pushed is either spoken (a ``Part`` of a segment) or returned in a
plan's ``skipped`` with its reason, once. Durations are measured from the audio the shell made for each
sentence, so the plan knows to the sample where each call's words start in its segment.

Pure: no clock, no I/O. ``now_s`` is a monotonic clock passed in by the shell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

Form = Literal["lead", "busy_lead", "busy_more"]  # calm, or busy: first of a segment, or following
Voice = Literal["first", "second"]  # the first configured language (merged), the second (gives way)
SkipReason = Literal["superseded", "late", "crowded", "second_language_yielded"]
SKIP_REASONS: Final[dict[SkipReason, str]] = {
    "superseded": "its counter has called another number since",
    "late": "it could not be spoken within the lag bound",
    "crowded": "newer calls had to be said within the lag bound, and it had been on the screen longest",
    "second_language_yielded": "its second language gives way to waiting calls",
}


@dataclass(frozen=True, slots=True)
class PendingCall:
    """A call ready to be announced: its sentences' measured lengths, and when it reached the display.

    The lengths of the first language's sentence (Vietnamese): ``lead_s`` at the calm speed, ``busy_lead_s``
    and ``busy_more_s`` (continuation form) at the busy one; ``second_s``: the second language's sentence
    (English), ``None`` when only one language is spoken.
    """

    seq: int
    number: str
    counter: str
    recall: bool
    arrived_s: float
    lead_s: float
    busy_lead_s: float
    busy_more_s: float
    second_s: float | None = None

    def length_s(self, form: Form) -> float:
        return self.lead_s if form == "lead" else self.busy_lead_s if form == "busy_lead" else self.busy_more_s


@dataclass(frozen=True, slots=True)
class Part:
    """One sentence of a segment: which call, in which language (``voice``) and form, and where its words
    start."""

    call: PendingCall
    voice: Voice
    form: Form
    offset_s: float


@dataclass(frozen=True, slots=True)
class Segment:
    """One piece of audio played without a break: the chime (or not), then its parts, then a short tail."""

    chime: bool
    parts: tuple[Part, ...]
    duration_s: float
    started_s: float

    def words_start_s(self, part: Part) -> float:
        return self.started_s + part.offset_s

    def lag_s(self, part: Part) -> float:
        """Seconds between the call reaching the display and its words starting."""
        return self.words_start_s(part) - part.call.arrived_s


@dataclass(frozen=True, slots=True)
class Skip:
    call: PendingCall
    reason: SkipReason


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do now: play ``segment`` (if any), and log ``skipped``."""

    segment: Segment | None
    skipped: tuple[Skip, ...]


@dataclass(slots=True)
class Announcer:
    """Plans announcements one segment at a time; see the module's theory of operation.

    ``chime_s``/``pause_s``/``tail_s`` describe how the shell assembles a segment's audio (chime, pause,
    sentence, pause, sentence, ..., tail), so that the plan's offsets match the audio exactly.
    """

    max_lag_s: float = 10.0
    # Planned this much inside the bound: the segment's audio is composed, and fetched by the page, after the plan.
    margin_s: float = 0.3
    gap_s: float = 0.8
    pause_s: float = 0.35
    chime_s: float = 1.3
    tail_s: float = 0.15
    waiting: list[PendingCall] = field(default_factory=list)
    latest_by_counter: dict[str, int] = field(default_factory=dict)
    free_at_s: float = float("-inf")
    second_due: PendingCall | None = None
    busy: bool = False

    @property
    def lead_in_s(self) -> float:
        """Where the first words of a chimed segment start."""
        return self.chime_s + self.pause_s if self.chime_s > 0 else 0.0

    @property
    def max_segment_s(self) -> float:
        """The longest segment: no longer than the bound itself, so that what arrives meanwhile still has a
        chance to be spoken in time after it."""
        return self.max_lag_s

    def seen(self, *, counter: str, seq: int) -> None:
        """Every new call, announced or not, as soon as it is shown: later calls supersede earlier ones."""
        if seq > self.latest_by_counter.get(counter, -1):
            self.latest_by_counter[counter] = seq

    def reset(self) -> None:
        """The hall's call sequence started again (a new ledger): forget what earlier numbers superseded, and
        what waits; what plays now ends as planned."""
        self.latest_by_counter.clear()
        self.waiting.clear()
        self.second_due = None

    def push(self, call: PendingCall) -> None:
        self.seen(counter=call.counter, seq=call.seq)
        self.waiting.append(call)

    def due(self, now_s: float) -> Plan | None:
        """The plan to carry out now, or ``None`` while a segment plays or nothing waits."""
        if now_s < self.free_at_s:
            return None
        skipped: list[Skip] = []
        waiting = self._drop_superseded(skipped)
        second = self.second_due
        self.second_due = None
        if second is not None:
            if not waiting and second.second_s is not None:
                part = Part(call=second, voice="second", form="lead", offset_s=0.0)
                return Plan(segment=self._start(now_s, chime=False, parts=(part,), last=True), skipped=())
            skipped.append(Skip(second, "second_language_yielded"))
        if not waiting:
            return Plan(segment=None, skipped=tuple(skipped)) if skipped else None
        self.busy = len(waiting) > 1
        parts, left = self._fit(now_s, waiting, skipped)
        self.waiting = left
        if not parts:
            return Plan(segment=None, skipped=tuple(skipped))
        chosen = [p.call for p in parts]
        alone = len(chosen) == 1 and not left
        if chosen[0].second_s is not None:
            if alone:
                self.second_due = chosen[0]
            else:
                skipped.extend(Skip(call, "second_language_yielded") for call in chosen)
        segment = self._start(now_s, chime=self.chime_s > 0, parts=parts, last=self.second_due is None)
        return Plan(segment=segment, skipped=tuple(skipped))

    def finished(self, now_s: float) -> None:
        """The player says the segment ended at ``now_s`` (early or late): the next may start after the gap,
        or right after the pause when the same call's English follows or the voice is busy."""
        self.free_at_s = now_s + (self.pause_s if self.second_due is not None or self.busy else self.gap_s)

    def next_wakeup_s(self, now_s: float) -> float | None:
        """When ``due()`` may next return something (``None``: only after a ``push``)."""
        if not self.waiting and self.second_due is None:
            return None
        return max(now_s, self.free_at_s)

    # --- inside ---------------------------------------------------------------------------------------------

    def _drop_superseded(self, skipped: list[Skip]) -> list[PendingCall]:
        kept = []
        for call in self.waiting:
            if not call.recall and self.latest_by_counter.get(call.counter, call.seq) > call.seq:
                skipped.append(Skip(call, "superseded"))
            else:
                kept.append(call)
        # Recalls first: a clerk who recalls is waiting for that citizen now.
        return sorted(kept, key=lambda c: (not c.recall, c.seq))

    def _fit(self, now_s: float, waiting: list[PendingCall],
             skipped: list[Skip]) -> tuple[tuple[Part, ...], list[PendingCall]]:
        """This segment's parts, and the calls left for the next; those that cannot be said in time go to
        ``skipped``. When the bound cannot hold for every call, the oldest call (not a recall) gives way, so the
        number just shown large on the screen is the one the voice says."""
        candidates = list(waiting)
        while True:
            parts, left = self._lay_out(candidates)
            bound = self.max_lag_s - self.margin_s
            late = [p.call for p in parts if now_s + p.offset_s - p.call.arrived_s > bound]
            if not late:
                return parts, left
            regular = [p.call for p in parts if not p.call.recall]
            victim = min(regular, key=lambda c: c.seq) if regular else late[0]
            hopeless = now_s + self.lead_in_s - victim.arrived_s > bound
            skipped.append(Skip(victim, "late" if hopeless or victim in late else "crowded"))
            candidates.remove(victim)

    def _lay_out(self, calls: list[PendingCall]) -> tuple[tuple[Part, ...], list[PendingCall]]:
        """The first calls that fit one segment (never longer than ``max_segment_s``), and the rest."""
        parts: list[Part] = []
        offset = self.lead_in_s
        for i, call in enumerate(calls):
            form: Form = "busy_more" if parts else "busy_lead" if self.busy else "lead"
            length = call.length_s(form)
            if parts and offset + length + self.tail_s > self.max_segment_s:
                return tuple(parts), calls[i:]
            parts.append(Part(call=call, voice="first", form=form, offset_s=offset))
            offset += length + self.pause_s
        return tuple(parts), []

    def _start(self, now_s: float, *, chime: bool, parts: tuple[Part, ...], last: bool) -> Segment:
        words = sum((p.call.second_s or 0.0) if p.voice == "second" else p.call.length_s(p.form) for p in parts)
        duration = (self.lead_in_s if chime else 0.0) + words + self.pause_s * (len(parts) - 1) + self.tail_s
        self.free_at_s = now_s + duration + (self.pause_s if not last or self.busy else self.gap_s)
        return Segment(chime=chime, parts=parts, duration_s=duration, started_s=now_s)
