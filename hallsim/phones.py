"""The simulated citizens' phones: some citizens scan their ticket's QR code and follow it on its live page.

A phone starts from the ticket as printed: the preview PNG's QR code, read with ``zbarimg`` (as a phone's camera
would), gives the status page's link. It then does what the page's script does: it follows
``{link}/events`` (Server-Sent Events: the status at once, then each change), opens it again after a second
when the stream breaks (the manager restarted, the network dropped), and once the visit is served and can be
rated, it rates it on ``{link}/rating`` as a citizen would (mostly satisfied; after a low rating, a reason or
two from the page's list and now and then a few words). It stops following when the ticket's status is final.

Everything runs on one asyncio loop in a thread of its own (``aiohttp``'s client), so that the hall's loop never
waits for a phone. What the phones see comes back as ``PhoneNews`` on a thread-safe queue, for the hall's
terminal. The decisions (who follows, who rates, how) come from the hall's seeded RNG, in the caller's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import random
import shutil
import subprocess  # zbarimg reads the ticket's QR code, as a phone's camera would
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp

from hallq import wire

log = logging.getLogger(__name__)

RECONNECT_S: Final = 1.0
COMMENTS: Final = ("Chờ hơi lâu", "Nên có thêm ghế ngồi chờ", "Cán bộ hướng dẫn chưa rõ",
                   "Phải bổ sung giấy tờ nhiều lần")


@dataclass(frozen=True, slots=True)
class RatingChoice:
    """What a citizen will answer on the page once the visit can be rated."""

    level: wire.RatingLevel
    reason_count: int = 0
    comment: str | None = None

    @staticmethod
    def draw(rng: random.Random) -> RatingChoice:
        level = rng.choices(wire.RATING_LEVELS, weights=(0.45, 0.3, 0.15, 0.1))[0]
        if level not in wire.LOW_RATINGS:
            return RatingChoice(level)
        return RatingChoice(level, reason_count=rng.choice((1, 1, 2)),
                            comment=rng.choice(COMMENTS) if rng.random() < 0.4 else None)


@dataclass(frozen=True, slots=True)
class PhoneNews:
    """Something a phone saw: ``kind`` is ``following`` (its first status), ``called``, ``rated``,
    ``rating_refused``, ``done`` (final) or ``lost`` (the link could not be read or followed); ``seen_at`` is
    when (the wall clock, as the controller stamps its calls: this machine's)."""

    kind: str
    number: str
    seen_at: float
    status: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    code: str = ""  # a refused rating's error code


def read_qr(picture: Path) -> str | None:
    """The QR code's text in a ticket's preview, as a phone's camera reads it; None if there is none or
    ``zbarimg`` is missing."""
    zbarimg = shutil.which("zbarimg")
    if zbarimg is None:
        return None
    try:
        done = subprocess.run([zbarimg, "--raw", "-q", str(picture)], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = done.stdout.strip().splitlines()
    return text[0] if done.returncode == 0 and text else None


class Phones:
    """The phones of the citizens who follow their tickets. ``follow`` may be called from any thread;
    ``news`` is read by the hall's loop; ``stop`` ends every phone."""

    def __init__(self) -> None:
        self.news: queue.Queue[PhoneNews] = queue.Queue()
        self.followed = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="phones", daemon=True)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def can_read_codes(self) -> bool:
        """Whether a ticket's QR code can be read here (``zbarimg``, installed by ``./run``)."""
        return shutil.which("zbarimg") is not None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End every phone and the loop (waits at most a few seconds)."""
        if not self._thread.is_alive():
            return
        self._stopping = True
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def follow(self, picture: Path, number: str, choice: RatingChoice | None) -> None:
        """A citizen scans ticket ``number``'s QR code (its preview ``picture``) and follows it; ``choice`` is
        how they will rate the visit (None: they will not)."""
        self.followed += 1
        self._loop.call_soon_threadsafe(self._spawn, picture, number, choice)

    # --- the phones' loop -----------------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.close()

    def _spawn(self, picture: Path, number: str, choice: RatingChoice | None) -> None:
        task = self._loop.create_task(self._phone(picture, number, choice))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def _say(self, kind: str, number: str, status: dict[str, Any] | None = None, detail: str = "",
             code: str = "") -> None:
        self.news.put(PhoneNews(kind, number, time.time(), status or {}, detail, code))

    async def _phone(self, picture: Path, number: str, choice: RatingChoice | None) -> None:
        link = await asyncio.get_running_loop().run_in_executor(None, read_qr, picture)
        if link is None or "/t/" not in link:
            self._say("lost", number, detail=f"no status-page link in the ticket's QR code ({picture.name})")
            return
        if self._session is None:
            # Pages follow for minutes: no total timeout, but a stream silent for a minute (it carries something
            # at least every half minute) is taken for dead and opened again.
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5,
                                                                                sock_read=60))
        seen: dict[str, Any] = {}
        rated = False
        while not self._stopping:
            try:
                async with self._session.get(f"{link}/events", headers={"Accept": "text/event-stream"}) as stream:
                    if stream.status != 200:
                        self._say("lost", number, detail=f"the page answered HTTP {stream.status}")
                        return
                    async for status in _statuses(stream):
                        if not status.get("found", True):
                            self._say("lost", number, detail="its page says the ticket is not of today")
                            return
                        if not seen:
                            self._say("following", number, status, detail=link)
                        if status.get("state") == "called" and (seen.get("state") != "called"
                                                                 or status.get("recalls") != seen.get("recalls")):
                            self._say("called", number, status)
                        seen = status
                        if choice is not None and not rated and status.get("rating_open"):
                            rated = True
                            await self._rate(link, number, choice, status)
                        if status.get("final"):
                            self._say("done", number, status)
                            return
            except (aiohttp.ClientError, TimeoutError, ValueError):
                pass  # the stream broke: as the page does, open it again in a moment
            await asyncio.sleep(RECONNECT_S)

    async def _rate(self, link: str, number: str, choice: RatingChoice, status: dict[str, Any]) -> None:
        if self._session is None:
            return
        offered = [reason["id"] for reason in status.get("reasons", [])]
        reasons = offered[:choice.reason_count]
        body = {"rating": choice.level, "reasons": reasons, "comment": choice.comment}
        try:
            async with self._session.post(f"{link}/rating", json=body) as answer:
                outcome = await answer.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self._say("rating_refused", number, detail=f"the rating could not be sent ({exc.__class__.__name__})")
            return
        names = {reason["id"]: reason["name_vi"] for reason in status.get("reasons", [])}
        if isinstance(outcome, dict) and outcome.get("ok"):
            why = ", ".join(names.get(r, r) for r in reasons)
            self._say("rated", number, status, detail=choice.level + (f" ({why})" if why else "")
                      + (" with a few words" if choice.comment else ""))
        else:
            error = outcome.get("error") if isinstance(outcome, dict) else None
            message = error.get("message", "?") if isinstance(error, dict) else str(outcome)[:80]
            code = str(error.get("code", "")) if isinstance(error, dict) else ""
            self._say("rating_refused", number, status, detail=message, code=code)


async def _statuses(stream: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """Each ``status`` event's JSON, as an EventSource reads them (comments and other events skipped)."""
    event, data = "message", list[str]()
    async for raw in stream.content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if event == "status" and data:
                with contextlib.suppress(ValueError):
                    value = json.loads("\n".join(data))
                    if isinstance(value, dict):
                        yield value
            event, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
