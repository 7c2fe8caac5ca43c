"""Who comes and what the clerks do: the simulation's pure core (a seeded RNG and ``now`` in, actions out)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class Press:
    """A citizen presses button ``key`` on ``kiosk``."""

    kiosk: str
    key: str
    scan: str | None = None  # a card scanned just before the press (a kiosk with a scanner)


@dataclass(frozen=True, slots=True)
class Command:
    """A clerk at ``counter`` presses ``action`` (``service`` for a transfer)."""

    counter: str
    action: str
    service: str | None = None


@dataclass(slots=True)
class Clerk:
    """One counter's clerk: idle (will press Next), serving (will finish), or waiting for a reply."""

    counter: str
    services: tuple[str, ...]
    state: Literal["idle", "serving", "asked"] = "idle"
    until: float = 0.0
    recalled: bool = False


@dataclass(slots=True)
class Crowd:
    """Arrivals at the kiosks and the clerks' rhythm, compressed: a busy morning in a few minutes.

    ``arrival_every_s`` is the mean time between two citizens; ``service_s`` the range of one service.
    Priority buttons are pressed by about one citizen in six.
    """

    rng: random.Random
    kiosks: tuple[str, ...]
    regular_keys: tuple[str, ...]
    priority_keys: tuple[str, ...]
    clerks: dict[str, Clerk]
    transfer_targets: tuple[str, ...]
    arrival_every_s: float = 3.0
    service_s: tuple[float, float] = (12.0, 30.0)
    scan_kiosks: tuple[str, ...] = ()  # kiosks with a card scanner
    citizens: tuple[str, ...] = ()     # the codes of the cards the crowd carries (some come back)
    scan_share: float = 0.5            # of the citizens at a scanner kiosk, how many scan their card
    next_arrival: float = 0.0
    started: bool = field(default=False)

    def arrivals(self, now: float) -> list[Press]:
        if not self.started:
            self.started = True
            self.next_arrival = now
        presses = []
        while self.next_arrival <= now:
            keys = self.priority_keys if self.rng.random() < 1 / 6 else self.regular_keys
            kiosk, key = self.rng.choice(self.kiosks), self.rng.choice(keys)
            scan = None
            if kiosk in self.scan_kiosks and self.citizens and self.rng.random() < self.scan_share:
                scan = self.rng.choice(self.citizens)
                key = self.rng.choice(self.regular_keys)  # the card, not the button, says who is served first
            presses.append(Press(kiosk, key, scan))
            self.next_arrival += self.rng.expovariate(1 / self.arrival_every_s)
        return presses

    def commands(self, now: float) -> list[Command]:
        """What the clerks press now."""
        out = []
        for clerk in self.clerks.values():
            if clerk.state == "asked" or now < clerk.until:
                continue
            if clerk.state == "idle":
                out.append(Command(clerk.counter, "next"))
            else:
                out.append(self._finish(clerk, now))
            clerk.state = "asked"
        return out

    def _finish(self, clerk: Clerk, now: float) -> Command:
        roll = self.rng.random()
        if not clerk.recalled and roll < 0.12:
            clerk.recalled = True  # nobody came at once: call again, then serve
            return Command(clerk.counter, "recall")
        if roll < 0.18:
            return Command(clerk.counter, "no_show")
        if roll < 0.22 and self.transfer_targets:
            target = self.rng.choice([s for s in self.transfer_targets if s not in clerk.services] or [None])
            if target is not None:
                return Command(clerk.counter, "transfer", target)
        return Command(clerk.counter, "complete")

    def answered(self, counter: str, *, action: str, ok: bool, serving: bool, now: float) -> None:
        """The controller answered a clerk: decide when the clerk acts again."""
        clerk = self.clerks.get(counter)
        if clerk is None:
            return
        if serving and ok and action in ("next", "recall"):
            clerk.state = "serving"
            low, high = self.service_s
            clerk.until = now + (self.rng.uniform(1.5, 3.0) if action == "recall" else self.rng.uniform(low, high))
            if action == "next":
                clerk.recalled = False
        elif serving:
            clerk.state = "serving"
            clerk.until = now + 1.0
        else:
            clerk.state = "idle"
            # An empty queue: look again in a moment; after finishing: a short pause before the next citizen.
            clerk.until = now + (3.0 if action == "next" else self.rng.uniform(0.5, 2.0))
