"""The display's shell: MQTT in, the pure core, audio generation, and pushes to the pages, on one event loop.

Wiring: one ``MqttLink`` (client id = the display's device id) subscribed to ``calls`` and the retained
``board`` and ``notice`` at QoS 1. A display publishes nothing, not even presence: the broker's ACL makes
displays read-only, so a screen on the hall's network can never disturb the queue; its health is its own
watchdog and ``/healthz``. paho's thread only hands items to the event loop (``LoopInbox``). The loop:

* ``_consume``: decodes each message at the boundary, lets the core update, pushes ``screen`` (and for a
  new call ``call``) to every page, and queues calls to announce (never the notice: it is for reading);
* ``_make_audio``: speaks each call's sentences into PCM (espeak-ng in a worker thread, one call at a time,
  in order): the lead and the merged form of the first language, and the second language's sentence;
* ``_play``: asks the planner (``display.announcer.Announcer``) what to say now, logs what it skips, and
  plays each segment strictly after the previous one: in the page (the ``announce`` event; the browser
  fetches the WAV) or on this machine's output (``[announce] player``);
* ``_heartbeat``: ``READY=1`` once listening and connected, ``WATCHDOG=1`` while the loop runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from display.announcer import SKIP_REASONS, Announcer, Part, PendingCall, Segment
from display.audio import AnnouncementMaker, AudioError, Clip, pcm_duration_s
from display.config import DisplayConfig
from display.core import DisplayCore, read_notice
from display.web import CLIENT_BACKLOG, AudioStore, make_app
from hallq import systemd, wire
from hallq.errors import PayloadError
from hallq.mqtt import LinkDown, LinkUp, LoopInbox, Message, MqttLink
from hallq.sse import Hub
from hallq.topics import TopicKind, Topics

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
PLAYER_SLACK_S = 5.0
SPEECH_KEEP = 64  # calls whose sentences are kept until spoken or skipped (far more than can wait)


@dataclass(frozen=True, slots=True)
class CallSpeech:
    """One call's sentences as PCM: in the first language ``lead`` (calm speed), ``busy_lead`` and
    ``busy_more`` (busy speed, the lead and continuation forms); ``second``: the second language's, if spoken."""

    texts: tuple[str, ...]
    lead: bytes
    busy_lead: bytes
    busy_more: bytes
    second: bytes | None

    def pcm(self, part: Part) -> bytes:
        if part.voice == "second":
            return self.second or b""
        return self.lead if part.form == "lead" else self.busy_lead if part.form == "busy_lead" else self.busy_more



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
        self.hub = Hub(backlog=CLIENT_BACKLOG)
        self.audio = AudioStore()
        settings = announce.voice_settings()
        self.maker = AnnouncementMaker(settings)
        self.voice = Announcer(max_lag_s=announce.max_lag_s, gap_s=announce.gap_s, pause_s=settings.pause_s,
                               chime_s=self.maker.chime_s)
        self.speech: OrderedDict[int, CallSpeech] = OrderedDict()
        self.player = LocalPlayer(announce.player)
        self._to_make: asyncio.Queue[tuple[wire.Call, float]] = asyncio.Queue()
        self._wake = asyncio.Event()
        self.link: MqttLink | None = None

    def now(self) -> datetime:
        return datetime.now(self.zone)

    def health(self) -> dict[str, Any]:
        connected = self.link is not None and self.link.up.is_set()
        return {"healthy": connected and self.core.board is not None, "broker_connected": connected,
                "board": self.core.board is not None, "seq": self.core.last_call_seq, "pages": self.hub.clients}

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[Any] = asyncio.Queue()
        client_id = self.config.client_id
        self.link = MqttLink(
            client_id=client_id, broker=self.config.broker, inbox=LoopInbox(loop, items),
            subscriptions=[(self.topics.calls(), 1), (self.topics.board(), 1), (self.topics.notice(), 1)],
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
        notifier = systemd.ServiceNotifier()
        tasks = [asyncio.create_task(coro) for coro in
                 (self._consume(items), self._make_audio(), self._play(), self._heartbeat(notifier))]
        try:
            await stop.wait()
        finally:
            notifier.stopping()
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
                last = self.core.last_call_seq
                self.core.on_board(board)
                if last is not None and board.seq < last:
                    # A new ledger (a restore, say): the old sequence numbers mean nothing any more.
                    log.warning("the hall's call sequence went back (%d after %d): following the new one", board.seq,
                                last)
                    self.voice.reset()
                self.hub.publish("screen", self.core.screen())
                if first:
                    log.info("board received hall=%s seq=%d calls=%d counters=%d", board.hall, board.seq,
                             len(board.calls), len(board.counters))
            elif parsed.kind is TopicKind.CALLS:
                self._call(wire.Call.decode(message.payload))
            elif parsed.kind is TopicKind.NOTICE:
                self._notice(read_notice(message.payload))
        except PayloadError as exc:
            log.warning("ignored undecodable message topic=%s code=%s: %s", message.topic, exc.code, exc.message)

    def _notice(self, notice: wire.Notice | None) -> None:
        # Shown, never said: a spoken notice would compete with the calls for the citizens' ears.
        if notice == self.core.notice:
            return  # the same retained notice again (after a reconnect): nothing to redraw
        self.core.on_notice(notice)
        self.hub.publish("screen", self.core.screen())
        if notice is None:
            log.info("notice cleared")
        else:
            log.info("notice shown by=%s at=%s", notice.by or "-", wire.iso(notice.at))

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
        self.voice.seen(counter=call.counter, seq=call.seq)
        if outcome.announce:
            self._to_make.put_nowait((call, asyncio.get_running_loop().time()))

    # --- announcements ----------------------------------------------------------------------------------------

    async def _make_audio(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            call, arrived_s = await self._to_make.get()
            started = time.perf_counter()
            try:
                speech = await loop.run_in_executor(None, self._speak, call)
            except AudioError as exc:
                log.error("cannot make the announcement ticket=%s counter=%s: %s", call.number, call.counter, exc)
                continue
            self.speech[call.seq] = speech
            while len(self.speech) > SPEECH_KEEP:
                self.speech.popitem(last=False)
            log.debug("speech ready ticket=%s seq=%d made_in_ms=%.0f", call.number, call.seq,
                      (time.perf_counter() - started) * 1000)
            self.voice.push(PendingCall(
                seq=call.seq, number=call.number, counter=call.counter, recall=call.recall, arrived_s=arrived_s,
                lead_s=pcm_duration_s(speech.lead), busy_lead_s=pcm_duration_s(speech.busy_lead),
                busy_more_s=pcm_duration_s(speech.busy_more),
                second_s=None if speech.second is None else pcm_duration_s(speech.second)))
            self._wake.set()

    def _speak(self, call: wire.Call) -> CallSpeech:
        """Every sentence the planner may ask for this call (worker thread: espeak-ng takes ~20 ms each, four
        sentences at most)."""
        announce = self.config.announce
        lead = announce.texts(number=call.number, counter=call.counter)
        more = announce.texts(number=call.number, counter=call.counter, more=True)
        say, busy = self.maker.sentence_pcm, announce.busy_speed_wpm
        return CallSpeech(texts=tuple(u.text for u in lead), lead=say(lead[0]),
                          busy_lead=say(lead[0], speed_wpm=busy), busy_more=say(more[0], speed_wpm=busy),
                          second=say(lead[1]) if len(lead) > 1 else None)

    async def _play(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            now = loop.time()
            plan = self.voice.due(now)
            if plan is not None:
                for skip in plan.skipped:
                    call = skip.call
                    log.info("not announced ticket=%s counter=%s seq=%d reason=%s (%s)", call.number, call.counter,
                             call.seq, skip.reason, SKIP_REASONS[skip.reason])
                if plan.segment is not None:
                    await self._start(plan.segment)
                continue
            wake_at = self.voice.next_wakeup_s(now)
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that arrives as the
            # event is set, and the announcer would then outlive the service's stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if wake_at is None else max(0.0, wake_at - now)):
                    await self._wake.wait()

    async def _start(self, segment: Segment) -> None:
        loop = asyncio.get_running_loop()
        sentences: list[bytes] = []
        texts: list[str] = []
        for part in segment.parts:
            speech = self.speech.get(part.call.seq)
            if speech is None:  # cannot happen while SPEECH_KEEP exceeds what may wait; never play a gap
                log.error("speech lost ticket=%s seq=%d; segment dropped", part.call.number, part.call.seq)
                self.voice.finished(loop.time())
                return
            sentences.append(speech.pcm(part))
            texts.append(speech.texts[-1 if part.voice == "second" else 0])
        clip = await loop.run_in_executor(None, partial(self.maker.compose, sentences, chime=segment.chime))
        first = segment.parts[0].call
        audio_id = f"{first.seq}-{first.number}" + ("-2" if segment.parts[0].voice == "second" else "")
        self.audio.put(audio_id, clip.wav)
        output = self.config.announce.output
        # The lag is measured when the audio leaves for the player: composing it is part of what a citizen waits.
        begun = loop.time()
        for i, part in enumerate(segment.parts, start=1):
            call = part.call
            log.info("announcing ticket=%s counter=%s seq=%d recall=%s voice=%s part=%d/%d lag_s=%.2f "
                     "duration_s=%.1f output=%s", call.number, call.counter, call.seq, call.recall, part.voice, i,
                     len(segment.parts), begun + part.offset_s - call.arrived_s, clip.duration_s, output)
        if output == "page":
            self.hub.publish("announce", {"seq": first.seq, "number": first.number, "counter": first.counter,
                                          "recall": first.recall, "texts": texts,
                                          "calls": [{"seq": p.call.seq, "number": p.call.number,
                                                     "counter": p.call.counter} for p in segment.parts],
                                          "duration_s": clip.duration_s, "url": f"/audio/{audio_id}.wav"})
            return
        # The planner waits for the player itself: a slow audio device must not make two segments overlap.
        await loop.run_in_executor(None, self.player.play, clip)
        self.voice.finished(loop.time())

    # --- systemd ----------------------------------------------------------------------------------------------

    async def _heartbeat(self, notifier: systemd.ServiceNotifier) -> None:
        # The loop wakes at least once per watchdog interval by itself, so every turn pings (beat): with tick,
        # a wake-up a hair before the due time would skip a whole interval.
        watchdog_s = notifier.watchdog_interval_s
        while True:
            if self.link is not None and self.link.up.is_set():
                notifier.ready()
            notifier.beat()
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

