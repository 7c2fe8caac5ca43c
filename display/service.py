"""The display's shell: MQTT in, the pure core, audio generation, and pushes to the pages, on one event loop.

Wiring: one ``MqttLink`` (client id = the display's device id) subscribed to ``calls`` and the retained
``board`` at QoS 1. A display publishes nothing, not even presence: the broker's ACL makes displays read-only,
so a screen on the hall's network can never disturb the queue; its health is its own watchdog and ``/healthz``.
paho's thread only hands items to the event loop (``LoopInbox``). The loop:

* ``_consume``: decodes each message at the boundary, lets the core update, pushes ``screen`` (and for a
  new call ``call``) to every page, and queues calls to announce;
* ``_make_audio``: turns each call into one WAV (espeak-ng in a worker thread, one at a time, in order);
* ``_play``: starts announcements strictly one after another (``AnnouncementQueue``): in the page (the
  ``announce`` event; the browser fetches the WAV) or on this machine's output (``[announce] player``);
* ``_heartbeat``: ``READY=1`` once listening and connected, ``WATCHDOG=1`` while the loop runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import signal
import subprocess
import tempfile
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from display.audio import AnnouncementMaker, AudioError, Clip
from display.config import DisplayConfig
from display.core import Announcement, AnnouncementQueue, DisplayCore
from display.web import AudioStore, Hub, make_app
from hallq import systemd, wire
from hallq.errors import PayloadError
from hallq.mqtt import LinkDown, LinkUp, Message, MqttLink
from hallq.topics import TopicKind, Topics

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
PLAYER_SLACK_S = 5.0


class LoopInbox(queue.Queue[Any]):
    """The inbox ``MqttLink`` fills from paho's thread: ``put`` hands each item to the event loop's queue.

    A subclass rather than a forwarding thread: one hop less between the broker and the page.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, target: asyncio.Queue[Any]) -> None:
        super().__init__()
        self._loop = loop
        self._target = target

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop already closed: we are shutting down
            self._loop.call_soon_threadsafe(self._target.put_nowait, item)


class LocalPlayer:
    """Plays a WAV on this machine's audio output with ``command`` + the file's path (``aplay -q`` on a Pi)."""

    def __init__(self, command: tuple[str, ...]) -> None:
        self.command = command

    def play(self, clip: Clip) -> None:
        with tempfile.NamedTemporaryFile(suffix=".wav") as file:
            file.write(clip.wav)
            file.flush()
            try:
                result = subprocess.run([*self.command, file.name], capture_output=True, check=False,
                                        timeout=clip.duration_s + PLAYER_SLACK_S)
            except subprocess.TimeoutExpired:
                log.error("audio player %s did not finish within %.0f s", self.command[0],
                          clip.duration_s + PLAYER_SLACK_S)
                return
            if result.returncode != 0:
                log.error("audio player %s failed status=%s: %s", self.command[0], result.returncode,
                          result.stderr.decode("utf-8", "replace").strip()[:300])


class DisplayService:
    """One display: ``run(stop)`` serves until ``stop`` is set."""

    def __init__(self, config: DisplayConfig) -> None:
        self.config = config
        self.zone = ZoneInfo(config.time_zone)
        self.topics = Topics(hall=config.hall, base=config.base_topic)
        announce = config.announce
        self.core = DisplayCore(languages=config.languages, recent_count=config.recent_calls,
                                time_zone=config.time_zone,
                                max_call_age_s=announce.max_call_age_s, announce=announce.enabled)
        self.hub = Hub()
        self.audio = AudioStore()
        self.maker = AnnouncementMaker(announce.voice_settings())
        self.announcements = AnnouncementQueue(gap_s=announce.gap_s)
        self.player = LocalPlayer(announce.player)
        self._to_make: asyncio.Queue[wire.Call] = asyncio.Queue()
        self._wake = asyncio.Event()
        self.link: MqttLink | None = None

    def now(self) -> datetime:
        return datetime.now(self.zone)

    def health(self) -> dict[str, Any]:
        connected = self.link is not None and self.link.connected.is_set()
        return {"healthy": connected and self.core.board is not None, "broker_connected": connected,
                "board": self.core.board is not None, "seq": self.core.last_call_seq, "pages": self.hub.clients}

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[Any] = asyncio.Queue()
        client_id = self.config.client_id
        self.link = MqttLink(
            client_id=client_id, broker=self.config.broker, inbox=LoopInbox(loop, items),
            subscriptions=[(self.topics.calls(), 1), (self.topics.board(), 1)],
        )
        app = make_app(hub=self.hub, screen=self.core.screen, audio=self.audio, health=self.health)
        app.router.add_get("/audio/chime.wav", self._chime)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.listen_host, self.config.listen_port, reuse_address=True)
        await site.start()
        host = self.config.listen_host
        shown = f"[{host}]" if ":" in host else host
        log.info("display listening on http://%s:%s/ (one counter: /counter/ID) hall=%s", shown,
                 self.config.listen_port, self.config.hall)
        self.link.start()
        tasks = [asyncio.create_task(coro) for coro in
                 (self._consume(items), self._make_audio(), self._play(), self._heartbeat())]
        try:
            await stop.wait()
        finally:
            systemd.notify("STOPPING=1")
            self.hub.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await loop.run_in_executor(None, self.link.stop)
            await runner.cleanup()
            log.info("display stopped")

    async def _chime(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.maker.chime().wav, content_type="audio/wav")

    # --- MQTT in ----------------------------------------------------------------------------------------------

    async def _consume(self, items: asyncio.Queue[Any]) -> None:
        while True:
            item = await items.get()
            if isinstance(item, LinkUp | LinkDown):
                self.core.on_link(up=isinstance(item, LinkUp))
                self.hub.publish("screen", self.core.screen())
            elif isinstance(item, Message):
                self._message(item)

    def _message(self, message: Message) -> None:
        parsed = self.topics.parse(message.topic)
        try:
            if parsed is None:
                return
            if parsed.kind is TopicKind.BOARD:
                board = wire.Board.decode(message.payload)
                first = self.core.board is None
                self.core.on_board(board)
                self.hub.publish("screen", self.core.screen())
                if first:
                    log.info("board received hall=%s seq=%d calls=%d counters=%d", board.hall, board.seq,
                             len(board.calls), len(board.counters))
            elif parsed.kind is TopicKind.CALLS:
                self._call(wire.Call.decode(message.payload))
        except PayloadError as exc:
            log.warning("ignored undecodable message topic=%s code=%s: %s", message.topic, exc.code, exc.message)

    def _call(self, call: wire.Call) -> None:
        outcome = self.core.on_call(call, now=self.now())
        if outcome.kind == "duplicate":
            log.debug("duplicate call seq=%d ignored", call.seq)
            return
        if outcome.missed:
            log.warning("missed calls count=%d before seq=%d (the link was down); the board shows them",
                        outcome.missed, call.seq)
        self.hub.publish("screen", self.core.screen())
        self.hub.publish("call", {"seq": call.seq, "number": call.number, "counter": call.counter,
                                  "counter_name": call.counter_name, "recall": call.recall,
                                  "flash_s": self.config.flash_s})
        log.info("%s ticket=%s counter=%s seq=%d announce=%s", "recall" if call.recall else "call", call.number,
                 call.counter, call.seq, outcome.announce)
        if outcome.announce:
            self._to_make.put_nowait(call)

    # --- announcements ----------------------------------------------------------------------------------------

    async def _make_audio(self) -> None:
        loop = asyncio.get_running_loop()
        announce = self.config.announce
        while True:
            call = await self._to_make.get()
            utterances = announce.texts(number=call.number, counter=call.counter)
            started = time.perf_counter()
            try:
                clip = await loop.run_in_executor(None, self.maker.make, utterances)
            except AudioError as exc:
                log.error("cannot make the announcement ticket=%s counter=%s: %s", call.number, call.counter, exc)
                continue
            audio_id = f"{call.seq}-{call.number}"
            self.audio.put(audio_id, clip.wav)
            log.debug("announcement ready ticket=%s seq=%d duration_s=%.2f made_in_ms=%.0f", call.number, call.seq,
                      clip.duration_s, (time.perf_counter() - started) * 1000)
            self.announcements.push(Announcement(seq=call.seq, number=call.number, counter=call.counter,
                                                 recall=call.recall, texts=tuple(u.text for u in utterances),
                                                 duration_s=clip.duration_s, audio_id=audio_id))
            self._wake.set()

    async def _play(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            now = loop.time()
            item = self.announcements.due(now)
            if item is not None:
                await self._start(item)
                continue
            wake_at = self.announcements.next_wakeup_s(now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), None if wake_at is None else max(0.0, wake_at - now))

    async def _start(self, item: Announcement) -> None:
        log.info("announcing ticket=%s counter=%s seq=%d recall=%s duration_s=%.1f output=%s", item.number,
                 item.counter, item.seq, item.recall, item.duration_s, self.config.announce.output)
        if self.config.announce.output == "page":
            self.hub.publish("announce", {"seq": item.seq, "number": item.number, "counter": item.counter,
                                          "recall": item.recall, "texts": list(item.texts),
                                          "duration_s": item.duration_s, "url": f"/audio/{item.audio_id}.wav"})
            return
        wav = self.audio.get(item.audio_id)
        if wav is None:
            return
        loop = asyncio.get_running_loop()
        # The queue waits for the player itself: a slow audio device must not make two announcements overlap.
        await loop.run_in_executor(None, self.player.play, Clip(wav=wav, duration_s=item.duration_s))
        self.announcements.finished(loop.time())

    # --- systemd ----------------------------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        watchdog_s = systemd.watchdog_interval_s()
        ready_sent = False
        while True:
            connected = self.link is not None and self.link.connected.is_set()
            if not ready_sent and connected:
                systemd.notify("READY=1")
                ready_sent = True
            if watchdog_s is not None:
                systemd.notify("WATCHDOG=1")
            await asyncio.sleep(min(HEARTBEAT_S, watchdog_s or HEARTBEAT_S))


def run(config: DisplayConfig, stop: asyncio.Event | None = None) -> None:
    """Run the display until SIGTERM/SIGINT (or ``stop`` is set)."""
    async def main() -> None:
        done = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, done.set)
        await DisplayService(config).run(done)

    asyncio.run(main())

