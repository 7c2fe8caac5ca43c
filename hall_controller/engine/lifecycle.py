"""The ticket lifecycle: every state and every allowed move, in one table.

    waiting ──call──▶ called ──recall──▶ called
       │                │──complete──▶ served
       │                │──no_show───▶ no_show
       │                │──transfer──▶ waiting (in another service, same number)
       │──transfer──▶ waiting          (the hall's manager moved it to another service)
       │──void──▶ void ◀──void──┘      (the dispenser could not print it; or, waiting, the citizen left)
       └──expire─▶ expired ◀─expire─┘  (still open when the business day ended)

``served``, ``no_show``, ``void`` and ``expired`` are final. ``next_state`` refuses any other move by raising
``IllegalMove``, whose message names the move ("cannot complete: A015 is waiting"); the engine checks
moves before it emits an event, so a refusal leaves the state untouched.
"""

from __future__ import annotations

import enum
from typing import Final

from hallq.errors import InvariantError


class TicketState(enum.StrEnum):
    WAITING = "waiting"
    CALLED = "called"
    SERVED = "served"
    NO_SHOW = "no_show"
    VOID = "void"
    EXPIRED = "expired"


class Move(enum.StrEnum):
    CALL = "call"
    RECALL = "recall"
    COMPLETE = "complete"
    NO_SHOW = "no_show"
    TRANSFER = "transfer"
    VOID = "void"
    EXPIRE = "expire"


W, C = TicketState.WAITING, TicketState.CALLED

TRANSITIONS: Final[dict[tuple[TicketState, Move], TicketState]] = {
    (W, Move.CALL): C,
    (W, Move.VOID): TicketState.VOID,
    (W, Move.EXPIRE): TicketState.EXPIRED,
    (W, Move.TRANSFER): W,
    (C, Move.RECALL): C,
    (C, Move.COMPLETE): TicketState.SERVED,
    (C, Move.NO_SHOW): TicketState.NO_SHOW,
    (C, Move.TRANSFER): W,
    (C, Move.VOID): TicketState.VOID,
    (C, Move.EXPIRE): TicketState.EXPIRED,
}

OPEN_STATES: Final = frozenset({W, C})


class IllegalMove(InvariantError):
    """A move the table does not allow was applied: the engine should have refused it first."""


def can(state: TicketState, move: Move) -> bool:
    return (state, move) in TRANSITIONS


def next_state(state: TicketState, move: Move, *, number: str = "the ticket") -> TicketState:
    try:
        return TRANSITIONS[(state, move)]
    except KeyError:
        raise IllegalMove(f"cannot {move.value}: {number} is {state.value}") from None
