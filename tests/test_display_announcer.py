"""The announcement planner: the voice stays within its lag bound of the screen, and nothing is skipped silently."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from display.announcer import Announcer, PendingCall, Plan, Segment, Skip

VI_S = 3.1  # "Mời số a không trăm mười lăm đến quầy số năm" at 150 words per minute
BUSY_S = 2.4  # the same at 190
MORE_S = 2.3  # "số bê không trăm linh ba đến quầy số hai" at 190
EN_S = 4.4


def _call(seq: int, counter: str = "1", *, at: float = 0.0, recall: bool = False,
          english: bool = False) -> PendingCall:
    return PendingCall(seq=seq, number=f"A{seq:03d}", counter=counter, recall=recall, arrived_s=at, lead_s=VI_S,
                       busy_lead_s=BUSY_S, busy_more_s=MORE_S, second_s=EN_S if english else None)


def _spoken(plan: Plan | None) -> list[tuple[int, str, str]]:
    assert plan is not None and plan.segment is not None
    return [(p.call.seq, p.voice, p.form) for p in plan.segment.parts]


def test_a_lone_call_is_chimed_then_spoken_then_followed_by_its_english() -> None:
    voice = Announcer()
    voice.push(_call(1, english=True))
    plan = voice.due(0.0)
    assert _spoken(plan) == [(1, "first", "lead")]
    assert plan is not None and plan.segment is not None and plan.segment.chime
    assert plan.segment.parts[0].offset_s == voice.chime_s + voice.pause_s
    end = plan.segment.duration_s
    assert voice.due(end) is None  # English follows after the pause, not at once
    english = voice.due(end + voice.pause_s)
    assert _spoken(english) == [(1, "second", "lead")]
    assert english is not None and english.segment is not None and not english.segment.chime


def test_english_gives_way_to_a_call_waiting_when_it_is_due() -> None:
    voice = Announcer()
    voice.push(_call(1, "1", english=True))
    first = voice.due(0.0)
    assert first is not None and first.segment is not None
    voice.push(_call(2, "2", at=1.0, english=True))
    plan = voice.due(first.segment.duration_s + voice.pause_s)
    assert plan is not None
    assert [(s.call.seq, s.reason) for s in plan.skipped] == [(1, "second_language_yielded")]
    assert _spoken(plan) == [(2, "first", "lead")]


def test_waiting_calls_are_merged_under_one_chime() -> None:
    voice = Announcer()
    for seq, counter in ((1, "5"), (2, "2"), (3, "7")):
        voice.push(_call(seq, counter, at=0.0, english=True))
    plan = voice.due(0.5)
    assert _spoken(plan) == [(1, "first", "busy_lead"), (2, "first", "busy_more"), (3, "first", "busy_more")]
    assert plan is not None and plan.segment is not None
    # Merged calls give up their English at once.
    assert {(s.call.seq, s.reason) for s in plan.skipped} == {(1, "second_language_yielded"),
                                                               (2, "second_language_yielded"),
                                                               (3, "second_language_yielded")}
    second = plan.segment.parts[1]
    assert second.offset_s == pytest.approx(voice.chime_s + voice.pause_s + BUSY_S + voice.pause_s)
    # Busy: the next segment follows after the pause, not the gap.
    assert voice.free_at_s == pytest.approx(0.5 + plan.segment.duration_s + voice.pause_s)


def test_a_segment_is_never_longer_than_the_bound() -> None:
    voice = Announcer(max_lag_s=10.0)
    for seq in range(1, 7):
        voice.push(_call(seq, str(seq)))
    plan = voice.due(0.0)
    assert plan is not None and plan.segment is not None
    assert plan.segment.duration_s <= 10.0
    assert [c.seq for c in voice.waiting] == [4, 5, 6]  # they wait for the next segment


def test_a_call_superseded_at_its_counter_is_not_spoken_but_a_recall_is() -> None:
    voice = Announcer()
    voice.push(_call(1, "4"))
    voice.push(_call(2, "4", recall=True))
    voice.push(_call(3, "4"))
    voice.free_at_s = 5.0  # something else is playing
    voice.seen(counter="4", seq=4)  # counter 4 called again; that call is still being made into audio
    plan = voice.due(5.0)
    assert plan is not None
    assert [(s.call.seq, s.reason) for s in plan.skipped] == [(1, "superseded"), (3, "superseded")]
    assert _spoken(plan) == [(2, "first", "lead")]


def test_recalls_are_spoken_before_calls() -> None:
    voice = Announcer()
    voice.push(_call(1, "1"))
    voice.push(_call(2, "2", recall=True))
    assert _spoken(voice.due(0.0)) == [(2, "first", "busy_lead"), (1, "first", "busy_more")]


def test_a_call_that_cannot_start_within_the_bound_is_skipped_and_said_so() -> None:
    voice = Announcer(max_lag_s=10.0)
    voice.push(_call(1, "1", at=0.0))
    voice.free_at_s = 12.0
    plan = voice.due(12.0)
    assert plan == Plan(segment=None, skipped=(Skip(_call(1, "1", at=0.0), "late"),))


def test_nothing_waiting_means_nothing_to_do() -> None:
    voice = Announcer()
    assert voice.due(0.0) is None
    assert voice.next_wakeup_s(0.0) is None


def test_the_player_reporting_the_end_moves_the_next_segment() -> None:
    voice = Announcer(gap_s=0.5)
    voice.push(_call(1, "1"))
    voice.due(0.0)
    voice.push(_call(2, "2", at=1.0))
    voice.finished(6.0)  # the device took longer than the file's length
    assert voice.due(6.4) is None
    assert voice.next_wakeup_s(6.4) == 6.5
    assert _spoken(voice.due(6.5)) == [(2, "first", "lead")]


def _simulate(voice: Announcer, arrivals: list[PendingCall]) -> tuple[list[Segment], list[Skip]]:
    """Runs the planner as the shell does, on a simulated clock; returns what played and what was skipped."""
    segments: list[Segment] = []
    skipped: list[Skip] = []
    pending = sorted(arrivals, key=lambda c: c.arrived_s)
    now = 0.0
    while pending or voice.waiting or voice.second_due is not None:
        while pending and pending[0].arrived_s <= now:
            voice.push(pending.pop(0))
        plan = voice.due(now)
        if plan is not None:
            skipped.extend(plan.skipped)
            if plan.segment is not None:
                segments.append(plan.segment)
            continue
        times = [t for t in (voice.next_wakeup_s(now), pending[0].arrived_s if pending else None) if t is not None]
        now = max(now, min(times))
    return segments, skipped


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 60), st.sampled_from("12345"), st.booleans(), st.floats(1.5, 4.5)),
                min_size=1, max_size=40),
       st.booleans(), st.floats(0, 1.5), st.sampled_from([0.0, 1.3]))
def test_every_call_is_spoken_within_the_bound_or_skipped_with_a_reason(
        calls: list[tuple[float, str, bool, float]], english: bool, gap_s: float, chime_s: float) -> None:
    voice = Announcer(max_lag_s=10.0, gap_s=gap_s, chime_s=chime_s)
    arrivals = [PendingCall(seq=seq, number=f"A{seq:03d}", counter=counter, recall=recall, arrived_s=at,
                            lead_s=length, busy_lead_s=length * 0.8, busy_more_s=length * 0.75,
                            second_s=length * 1.4 if english else None)
                for seq, (at, counter, recall, length) in enumerate(sorted(calls), start=1)]
    segments, skipped = _simulate(voice, arrivals)
    first = [(s, p) for s in segments for p in s.parts if p.voice == "first"]
    spoken = [p.call.seq for _, p in first]
    dropped = [s.call.seq for s in skipped if s.reason != "second_language_yielded"]
    # Each call is spoken once or skipped once, never both, never neither.
    assert sorted(spoken + dropped) == [c.seq for c in arrivals]
    for segment, part in first:
        assert segment.lag_s(part) <= voice.max_lag_s + 1e-9
    for a, b in itertools.pairwise(segments):
        assert b.started_s >= a.started_s + a.duration_s + min(voice.pause_s, gap_s) - 1e-9
    # Recalls are never skipped as superseded.
    assert not [s for s in skipped if s.reason == "superseded" and s.call.recall]


def test_a_20_counter_peak_stays_within_the_bound_by_merging() -> None:
    """A call every 2 s from 20 counters, Vietnamese and English: faster than a voice can say them (2.3 s a
    call even briskly), so some are skipped, but none is spoken late, and merging speaks far more than one
    call a chime would (a lone call costs chime + sentence + gap = 5.7 s, at most 35% of the calls)."""
    rng = random.Random(7)
    arrivals = [PendingCall(seq=i, number=f"A{i:03d}", counter=str(rng.randint(1, 20)), recall=rng.random() < 0.1,
                            arrived_s=i * 2.0, lead_s=VI_S, busy_lead_s=BUSY_S, busy_more_s=MORE_S, second_s=EN_S)
                for i in range(1, 301)]
    voice = Announcer(max_lag_s=10.0, gap_s=0.8)
    segments, _ = _simulate(voice, arrivals)
    first = [(s, p) for s in segments for p in s.parts if p.voice == "first"]
    assert max(s.lag_s(p) for s, p in first) <= 10.0
    assert len(first) >= 0.55 * len(arrivals)
    assert any(len(s.parts) > 1 for s in segments)  # merged under one chime


def test_when_not_every_call_can_start_in_time_the_oldest_gives_way_not_the_newest() -> None:
    """The number just shown large on the screen is the one the voice must not drop."""
    voice = Announcer(max_lag_s=10.0)
    voice.push(_call(1, "1", at=0.0))
    voice.push(_call(2, "2", at=1.0))
    voice.push(_call(3, "3", at=5.0))  # the newest: on the screen now
    plan = voice.due(8.0)  # all three would end 11.4 s after A002 was shown
    assert plan is not None and [(s.call.seq, s.reason) for s in plan.skipped] == [(1, "crowded")]
    assert _spoken(plan) == [(2, "first", "busy_lead"), (3, "first", "busy_more")]
    assert plan.segment is not None and all(plan.segment.lag_s(p) <= 10.0 for p in plan.segment.parts)


def test_a_new_call_sequence_forgets_what_superseded_what() -> None:
    """After a restore the hall's sequence starts again: seq 12 at counter 5 is new, not older than seq 900."""
    voice = Announcer()
    voice.seen(counter="5", seq=900)
    voice.reset()
    voice.push(_call(12, "5"))
    assert _spoken(voice.due(0.0)) == [(12, "first", "lead")]
