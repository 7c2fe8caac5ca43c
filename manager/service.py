"""The manager's shell: MQTT in and out, the ledger read again every few seconds, the live model, and the web
service, on one asyncio loop.

Wiring: one ``MqttLink`` (client id = username = the manager's id, ``[manager] id``; presence on
``status/{id}``) subscribed at QoS 1 to the retained ``board``, every counter's retained ``state``, ``calls``,
every client's retained ``status``, the retained ``notice``, the controller's ``events`` and its own ``reply``
topic. paho's thread only hands items to the loop (``LoopInbox``). The loop:

* ``_consume``: decodes each message at the boundary and folds it into ``LiveModel`` and the tickets' status
  pages' ``PhoneModel``; a ``ManagerReply`` wakes the action waiting for its ``request_id``;
* ``_read_ledger``: today's journal, read-only in a worker thread, at start and every ``LEDGER_EVERY_S``
  (``LiveModel.seed``, ``PhoneModel.seed``), so a restarted manager knows the day so far; sooner when asked
  (``fresh_ledger``: a status page's token not known yet, a ticket whose counter finished with it), but never
  more often than every ``FRESH_READ_GAP_S``, however many ask;
* ``_warm_reports``: the closed business days summarised into the report cache, in the background on a report
  thread (lowest priority, within the reports' CPU share), soon after start and then every ``WARM_EVERY_S``, so
  that a manager's first year report reads a warm cache instead of the whole journal;
* ``_push``: the live view to every page (Server-Sent Events) at once after a change, and every second anyway
  (the waits and service times grow by themselves);
* ``_push_phones``: each followed ticket's status to its phones (``manager.phone_web``) at once after a change,
  only where it moved, and every ``PHONE_REFRESH_S`` anyway (a rating's time runs out by itself);
* ``_serve_guest``: with ``[phones] guest_listen``, the status pages alone on a second, plain-HTTP listener for
  the guest Wi-Fi; an address that cannot be bound yet (the guest network not up) is tried again every
  ``GUEST_RETRY_S`` while the office's pages go on;
* ``_heartbeat``: ``READY=1`` once HTTP listens and the broker is connected, ``WATCHDOG=1`` while the loop runs.

Open files: each phone that follows its ticket holds a connection, one open file. At start (``run``) the soft
limit on open files is raised to the hard one (systemd gives a service 1024 unless its unit says otherwise:
``LimitNOFILE`` in systemd/hallq-manager.service), and ``[phones] max_connections`` is lowered, with one
warning, to what fits under that limit beside ``OPEN_FILES_MARGIN`` for everything else (``phone_bound``): a
hall whose phones ran the service out of files would lose its office pages and the ledger's readings too.

Actions (``act``) publish a ``ManagerCommand`` with a fresh request id and wait up to ``ACTION_TIMEOUT_S`` for
its reply. One is never queued while the broker is away: a day ended an hour after the click would surprise.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import resource
import signal
import time
import uuid
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any, Final

from aiohttp import web

from hall_controller.engine.events import TicketRated
from hallq import systemd, wire
from hallq.errors import PayloadError
from hallq.mqtt import LinkDown, LinkUp, LoopInbox, Message, MqttLink
from hallq.sse import Hub
from hallq.topics import TopicKind, Topics
from manager import budget, journal
from manager import cache as report_cache
from manager.config import ManagerConfig
from manager.live import LiveModel
from manager.phone_web import PhonePages
from manager.phones import PhoneModel
from manager.users import Users
from manager.web import CLIENT_BACKLOG, ActionOutcome, make_app

log = logging.getLogger(__name__)

ACTION_TIMEOUT_S: Final = 5.0
LEDGER_EVERY_S: Final = 5.0
PUSH_EVERY_S: Final = 1.0
HEARTBEAT_S: Final = 1.0
# The report cache is warmed this long after start (the hall's own start comes first), then every hour.
WARM_AFTER_S: Final = 20.0
WARM_EVERY_S: Final = 3600.0
FRESH_READ_GAP_S: Final = 2.0  # readings of the ledger asked for (not the regular ones) at most this often
PHONE_REFRESH_S: Final = 5.0
GUEST_RETRY_S: Final = 10.0
# Today's kinds for the live view and the status pages: the reports' and the ratings (once each).
TODAY_KINDS: Final = tuple(dict.fromkeys((*journal.REPORT_KINDS, TicketRated.kind)))
# Open files besides the phones' streams: the office's pages and their live views, the ledger's and the report
# cache's readings, the broker's connection, the listeners, the logs.
OPEN_FILES_MARGIN: Final = 200


def phone_bound(*, open_files_limit: int | None, requested: int, margin: int = OPEN_FILES_MARGIN) -> int:
    """How many phones may follow their tickets at once: ``requested`` (``[phones] max_connections``) if it fits
    with ``margin`` under ``open_files_limit`` (the soft RLIMIT_NOFILE; None: no limit), else what fits (0 at
    the least: the pages' JSON status still answers)."""
    if open_files_limit is None:
        return requested
    return max(0, min(requested, open_files_limit - margin))


def raise_open_files_limit() -> int | None:
    """Raise this process's soft limit on open files to its hard limit; the soft limit now (None: unlimited). A
    refusal (a sandbox forbidding it) leaves the limit as it was."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft not in (hard, resource.RLIM_INFINITY):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError) as exc:
            log.debug("open files limit left at %d (hard %d): %s", soft, hard, exc)
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def _fit_phones(config: ManagerConfig) -> ManagerConfig:
    """``config`` with ``[phones] max_connections`` lowered to what the open files limit allows (one warning)."""
    limit = raise_open_files_limit()
    requested = config.phones.max_connections
    bound = phone_bound(open_files_limit=limit, requested=requested)
    if bound == requested:
        return config
    log.warning("open files limit=%s allows only %d phones of [phones] max_connections=%d (%d kept for the office "
                "and the ledger); raise LimitNOFILE in the service's unit, or lower max_connections", limit, bound,
                requested, OPEN_FILES_MARGIN)
    return replace(config, phones=replace(config.phones, max_connections=bound))



class ManagerService:
    """One manager: ``run(stop)`` serves until ``stop`` is set."""

    def __init__(self, config: ManagerConfig, *, users: Users) -> None:
        self.config = config
        self.users = users
        self.spec = config.hall
        self.topics = Topics(hall=self.spec.id, base=config.base_topic)
        self.model = LiveModel(self.spec, controller_id=config.controller.client_id, manager_id=config.manager_id,
                               offline_alarm_s=config.offline_alarm_s)
        self.hub = Hub(backlog=CLIENT_BACKLOG)
        self.link: MqttLink | None = None
        self._pending: dict[str, asyncio.Future[wire.ManagerReply]] = {}
        self._changed = asyncio.Event()
        self.listening = False
        self.phones = PhoneModel(self.spec)
        self._phones_changed = asyncio.Event()
        self.phone_pages = PhonePages(spec=self.spec, model=self.phones, now=self.now, act=self.act,
                                      fresh_ledger=self.fresh_ledger, changed=self._phones_changed.set,
                                      max_connections=config.phones.max_connections,
                                      max_per_ticket=config.phones.max_per_ticket)
        self.guest_listening = False
        self._ledger_poke = asyncio.Event()
        self._ledger_read = asyncio.Condition()
        self._reads_started = 0
        self._reads_done = 0

    def now(self) -> datetime:
        return datetime.now(self.spec.zone)

    def view(self) -> dict[str, Any]:
        return self.model.view(self.now())

    def health(self) -> dict[str, Any]:
        connected = self.link is not None and self.link.up.is_set()
        return {"healthy": connected and self.listening, "broker_connected": connected,
                "board": self.model.board is not None, "ledger_problem": self.model.ledger_problem,
                "pages": self.hub.clients, "phones": self.phone_pages.streams.connections,
                "guest_listening": self.guest_listening if self.config.phones.guest_url else None}

    def app(self) -> web.Application:
        return make_app(spec=self.spec, users=self.users, secure_cookies=self.config.tls, view=self.view,
                        act=self.act, hub=self.hub, ledger=self.config.ledger, health=self.health, now=self.now,
                        cache_dir=self.config.state_dir, phones=self.phone_pages)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[Any] = asyncio.Queue()
        topics, manager_id = self.topics, self.config.manager_id
        self.link = MqttLink(
            client_id=manager_id, broker=self.config.broker, inbox=LoopInbox(loop, items),
            subscriptions=[(topics.board(), 1), (topics.all_counter_states(), 1), (topics.calls(), 1),
                           (topics.all_status(), 1), (topics.notice(), 1), (topics.events(), 1),
                           (topics.manager_reply(manager_id), 1)],
            presence_topic=topics.status(manager_id),
            online_payload=wire.Presence("online", "manager").encode(),
            offline_payload=wire.Presence("offline", "manager").encode(),
        )
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.listen_host, self.config.listen_port, reuse_address=True,
                           ssl_context=self.config.ssl_context())
        await site.start()
        self.listening = True
        log.info("manager listening on %s hall=%s ledger=%s", self.config.url, self.spec.id, self.config.ledger)
        self.link.start()
        notifier = systemd.ServiceNotifier()
        tasks = [asyncio.create_task(coro) for coro in
                 (self._consume(items), self._read_ledger(), self._push(), self._push_phones(),
                  self._heartbeat(notifier), self._warm_reports(), self._serve_guest())]
        try:
            await stop.wait()
        finally:
            notifier.stopping()
            self.hub.close()
            self.phone_pages.streams.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await loop.run_in_executor(None, self.link.stop)
            await runner.cleanup()
            log.info("manager stopped")

    async def _warm_reports(self) -> None:
        """Summarise every closed business day into the report cache (see the module doc). A failure is logged
        and tried again next time; reports still work without the cache."""
        loop = asyncio.get_running_loop()
        threads = budget.report_executor()
        try:
            await asyncio.sleep(WARM_AFTER_S)
            while True:
                started = time.monotonic()
                yesterday = self.now().date() - timedelta(days=1)
                try:
                    await loop.run_in_executor(threads, functools.partial(
                        report_cache.day_summaries, self.config.ledger, spec=self.spec, first_day=date(2000, 1, 1),
                        last_day=yesterday, cache_dir=self.config.state_dir, pace=budget.CpuBudget().checkpoint))
                    log.info("report cache warm up to %s in %.1f s", yesterday.isoformat(),
                             time.monotonic() - started)
                except Exception as exc:
                    log.warning("could not warm the report cache (%s); reports read the journal meanwhile", exc)
                await asyncio.sleep(WARM_EVERY_S)
        finally:
            threads.shutdown(wait=False, cancel_futures=True)

    # --- actions ----------------------------------------------------------------------------------------------

    async def act(self, command: wire.ManagerCommand) -> ActionOutcome:
        """Publish ``command`` (its ``request_id`` fresh) and wait for the controller's reply."""
        link = self.link
        if link is None or not link.up.is_set():
            return ActionOutcome.failed("broker_unavailable", "the manager is not connected to the hall's broker; "
                                                              "nothing was sent")
        future: asyncio.Future[wire.ManagerReply] = asyncio.get_running_loop().create_future()
        self._pending[command.request_id] = future
        try:
            link.publish(self.topics.manager_command(self.config.manager_id), command.encode())
            async with asyncio.timeout(ACTION_TIMEOUT_S):
                reply = await future
        except TimeoutError:
            return ActionOutcome.failed("timeout", f"the controller did not answer within {ACTION_TIMEOUT_S:.0f} s; "
                                                   "look at the live view before trying again")
        finally:
            self._pending.pop(command.request_id, None)
        if reply.error is not None:
            return ActionOutcome.failed(str(reply.error.code), reply.error.message)
        return ActionOutcome(ok=True)

    @staticmethod
    def new_request_id() -> str:
        return str(uuid.uuid4())

    # --- MQTT in ----------------------------------------------------------------------------------------------

    async def _consume(self, items: asyncio.Queue[Any]) -> None:
        while True:
            item = await items.get()
            if isinstance(item, LinkUp | LinkDown):
                self.model.on_link(up=isinstance(item, LinkUp))
                self.phones.on_link(up=isinstance(item, LinkUp))
            elif isinstance(item, Message):
                self._message(item)
            self._changed.set()
            self._phones_changed.set()

    def _message(self, message: Message) -> None:
        parsed = self.topics.parse(message.topic)
        if parsed is None:
            return
        seen_s = time.monotonic()
        try:
            match parsed.kind:
                case TopicKind.BOARD:
                    board = wire.Board.decode(message.payload)
                    self.model.on_board(board)
                    self.phones.on_board(board, seen_s=seen_s)
                case TopicKind.COUNTER_STATE:
                    state = wire.CounterState.decode(message.payload)
                    self.model.on_counter_state(state, seen_s=seen_s)
                    ended = self.phones.on_counter_state(state, seen_s=seen_s)
                    if ended is not None and self.phone_pages.streams.follows(ended):
                        self._ledger_poke.set()  # a followed ticket's visit ended: served, or not?
                case TopicKind.CALLS:
                    call = wire.Call.decode(message.payload)
                    self.model.on_call(call, seen_s=seen_s)
                    self.phones.on_call(call, seen_s=seen_s)
                case TopicKind.STATUS:
                    presence = wire.Presence.decode(message.payload) if message.payload else None
                    self.model.on_presence(parsed.device or "", presence, now=self.now())
                case TopicKind.NOTICE:
                    self.model.on_notice(wire.Notice.decode(message.payload) if message.payload else None)
                case TopicKind.EVENTS:
                    self.model.on_event(wire.HallEvent.decode(message.payload))
                case TopicKind.MANAGER_REPLY:
                    reply = wire.ManagerReply.decode(message.payload)
                    future = self._pending.get(reply.request_id)
                    if future is not None and not future.done():
                        future.set_result(reply)
                case _:
                    pass
        except PayloadError as exc:
            log.warning("ignored undecodable message topic=%s code=%s: %s", message.topic, exc.code, exc.message)

    # --- the ledger -------------------------------------------------------------------------------------------

    async def _read_ledger(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._ledger_poke.clear()  # this reading answers every ask made before it starts
            self._reads_started += 1
            reading = self._reads_started
            day = self.spec.business_day(self.now())
            seen_s = time.monotonic()
            try:
                events = await loop.run_in_executor(None, self._today, day)
            except journal.JournalError as exc:
                if self.model.ledger_problem != str(exc):
                    log.warning("cannot read the ledger (the live view goes on from the broker alone): %s", exc)
                self.model.ledger_unreadable(str(exc))
            else:
                self.model.seed(events, day=day, seen_s=seen_s)
                self.phones.seed(events, day=day, seen_s=seen_s)
            async with self._ledger_read:
                self._reads_done = reading
                self._ledger_read.notify_all()
            self._changed.set()
            self._phones_changed.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LEDGER_EVERY_S):
                    await self._ledger_poke.wait()
            # Readings asked for are paced: a crowd of phones opening their pages costs one reading per gap.
            await asyncio.sleep(max(0.0, FRESH_READ_GAP_S - (time.monotonic() - seen_s)))

    async def fresh_ledger(self) -> None:
        """Return once a reading of the ledger that began after this call has been folded into the models (a
        ticket printed a moment ago is then known). Readings asked for come at most every ``FRESH_READ_GAP_S``."""
        wanted = self._reads_started + 1
        self._ledger_poke.set()
        async with self._ledger_read:
            await self._ledger_read.wait_for(lambda: self._reads_done >= wanted)

    def _today(self, day: str) -> list[Any]:
        first = date.fromisoformat(day)
        return list(journal.read_events(self.config.ledger, first_day=first, last_day=first, kinds=TODAY_KINDS))

    # --- pages ------------------------------------------------------------------------------------------------

    async def _push(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that arrives as the
            # event is set, and this task would then outlive the service's stop (seen under load).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PUSH_EVERY_S):
                    await self._changed.wait()
            self._changed.clear()
            if self.hub.clients:
                self.hub.publish("live", self.view())

    async def _push_phones(self) -> None:
        # A refresh renders every followed ticket (500 pages: about 10 ms): only when the model moved, or when
        # time alone may have changed a status (a rating's window closing).
        pushed_version, pushed_s = -1, 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PHONE_REFRESH_S):
                    await self._phones_changed.wait()
            self._phones_changed.clear()
            now_s = time.monotonic()
            if self.phones.version == pushed_version and now_s - pushed_s < PHONE_REFRESH_S:
                continue
            pushed_version, pushed_s = self.phones.version, now_s
            if self.phone_pages.streams.connections:
                self.phone_pages.streams.refresh()

    async def _serve_guest(self) -> None:
        """The status pages alone on ``[phones] guest_listen`` (plain HTTP), until the service stops."""
        phones = self.config.phones
        if phones.guest_host is None or phones.guest_port is None:
            return
        runner = web.AppRunner(self.phone_pages.guest_app(), access_log=None, handle_signals=False,
                               shutdown_timeout=1.0)
        await runner.setup()
        try:
            failures = 0
            while True:
                try:
                    await web.TCPSite(runner, phones.guest_host, phones.guest_port, reuse_address=True).start()
                    break
                except OSError as exc:
                    failures += 1
                    # Said once as an error (the operator's to fix), then quietly tried again: the guest network's
                    # interface may come up after the service.
                    (log.error if failures == 1 else log.debug)(
                        "cannot listen for the guest network's status pages on %s: %s (check [phones] "
                        "guest_listen); trying again every %.0f s", phones.guest_url, exc.strerror or exc,
                        GUEST_RETRY_S)
                    await asyncio.sleep(GUEST_RETRY_S)
            self.guest_listening = True
            log.info("status pages for the guest network on %s", phones.guest_url)
            await asyncio.Event().wait()  # until cancelled when the service stops
        finally:
            self.guest_listening = False
            await runner.cleanup()

    # --- systemd ----------------------------------------------------------------------------------------------

    async def _heartbeat(self, notifier: systemd.ServiceNotifier) -> None:
        watchdog_s = notifier.watchdog_interval_s
        while True:
            if self.listening and self.link is not None and self.link.up.is_set():
                notifier.ready()
            notifier.beat()
            await asyncio.sleep(min(HEARTBEAT_S, watchdog_s or HEARTBEAT_S))


def run(config: ManagerConfig, stop: asyncio.Event | None = None) -> None:
    """Run the manager until SIGTERM/SIGINT (or ``stop`` is set)."""
    users = Users.load(config.users_file)
    config = _fit_phones(config)

    async def main() -> None:
        done = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, done.set)
        await ManagerService(config, users=users).run(done)

    asyncio.run(main())
