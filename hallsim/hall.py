"""The simulated hall's shell: starts every role as a process, drives kiosks and counters, reports live.

Processes (each bound to this one with ``setpriv --pdeathsig``, so nothing outlives the simulation): a
private Mosquitto, ``python -m hall_controller``, two ``python -m dispenser --simulate`` (their stdin takes
one button key per line), ``python -m display`` and ``python -m manager run`` (the office's page, with a demo
account whose password is made for the run and printed). The clerks are MQTT clients speaking the counter contract.
Everything a run writes goes to ``var/sim/``: tickets (PNG previews), logs, the ledger, display screenshots.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import random
import re
import secrets
import shutil
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from counter.core import CounterCore, Press
from counter.screen import screen_text
from hall_controller import config as controller_config
from hall_controller.ledger import LEDGER_FILE
from hall_controller.profiles import new_key_text
from hall_controller.service import READY_LOG
from hallq import wire
from hallq.mqtt import BrokerSettings, LinkDown, LinkUp, Message, MqttLink
from hallq.topics import TopicKind, Topics
from hallsim.citizens import crowd_cards
from hallsim.crowd import Clerk, Crowd
from hallsim.history import ledger_is_empty, write_history
from hallsim.phones import PhoneNews, Phones, RatingChoice
from manager.users import Users
from testbed.broker import PrivateBroker, free_port, port_open
from testbed.children import ChildProcess
from testbed.display import Kiosk

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DEMO_USER = "lan"
CONFIG = ROOT / "config" / "sim"
KIOSKS = ("kiosk-1", "kiosk-2")
SCAN_KIOSKS = ("kiosk-1",)  # has a card scanner (config/sim/kiosk-1.toml)
HALL = "sim-hall"
COUNTERS = {"1": ("A", "B", "C", "D"), "2": ("A",), "3": ("A", "D"), "4": ("B",), "5": ("B", "C"), "6": ("C", "D")}
COUNTER_NAMES = {"1": "Quầy 1 - Ưu tiên", **{c: f"Quầy {c}" for c in "23456"}}
SERVICE_NAMES = {"A": "Hộ tịch", "B": "Đất đai - Xây dựng", "C": "Đăng ký kinh doanh", "D": "Chứng thực"}
RATING_WORDS = {"very_satisfied": "Rất hài lòng", "satisfied": "Hài lòng", "neutral": "Bình thường",
                "dissatisfied": "Không hài lòng"}
BUTTON_RATING_SHARE = 0.5  # of the citizens served, those who press a counter's rating button
PHONE_SHARE = 0.35  # of the citizens, those who scan their ticket's QR code and follow it on their phone
PHONE_RATING_SHARE = 0.6  # of those, the ones who rate the visit on the phone (if the buttons did not first)


HALL_ZONE = ZoneInfo(controller_config.load(CONFIG / "hall.toml").hall.time_zone)
_FIELD = re.compile(r"(\w+)=(\S+)")


@dataclass
class Tally:
    printed: int = 0
    calls: int = 0
    recalls: int = 0
    announced: int = 0
    refused: int = 0
    tickets: list[Path] = field(default_factory=list)
    voice_lags_s: list[float] = field(default_factory=list)
    not_said: Counter[str] = field(default_factory=Counter)
    screenshot: Path | None = None
    office_screenshot: Path | None = None
    cards_read: int = 0
    profiles_shown: int = 0
    returning: int = 0
    registered: int = 0
    rated: Counter[str] = field(default_factory=Counter)  # ratings stored, by channel
    phones: int = 0  # citizens who followed their ticket on a phone
    phone_call_lags_s: list[float] = field(default_factory=list)  # from the call on the broker to the phone
    phone_screenshot: Path | None = None
    ratings_refused: Counter[str] = field(default_factory=Counter)  # by error code

    def summary(self) -> list[str]:
        """The closing lines: what the hall did, and how well the voice kept up with the screen."""
        lines = [f"stopped: {self.printed} tickets printed, {self.calls} calls, {self.recalls} recalls, "
                 f"{self.refused} refusals"]
        called = self.calls + self.recalls
        if called:
            said = f"voice: {self.announced} of {called} calls said"
            if self.voice_lags_s:
                lags = self.voice_lags_s
                said += (f", words started {statistics.median(lags):.1f} s after the screen (median), "
                         f"{max(lags):.1f} s at most")
            if self.not_said:
                said += "; not said: " + ", ".join(f"{n} {reason}" for reason, n in sorted(self.not_said.items()))
            lines.append(said)
        if self.cards_read:
            lines.append(f"cards: {self.cards_read} read at the kiosk, {self.profiles_shown} profiles shown at the "
                         f"counter that called ({self.returning} returning citizens), {self.registered} first "
                         "visits registered")
        if self.phones:
            seen = self.phone_call_lags_s
            line = f"phones: {self.phones} citizens followed their ticket on its live page"
            if seen:
                line += (f"; {len(seen)} saw their call there {statistics.median(seen):.2f} s after it (median), "
                         f"{max(seen):.2f} s at most")
            lines.append(line)
        if self.rated or self.ratings_refused:
            rated = ", ".join(f"{n} at the {'counters’ buttons' if channel == 'counter' else 'phones'}"
                              for channel, n in sorted(self.rated.items()))
            refused = ", ".join(f"{n} {code}" for code, n in sorted(self.ratings_refused.items()))
            lines.append(f"ratings: {rated or 'none stored'}" + (f"; refused: {refused}" if refused else ""))
        return lines


class SimulatedHall:
    """Runs the hall for ``minutes`` (None: until Ctrl-C) and writes what happens through ``say``."""

    def __init__(self, *, work: Path, display_port: int, seed: int, arrival_every_s: float,
                 say: Callable[[str], None], screenshots: bool, manager_port: int | None = None) -> None:
        self.work = work
        self.display_port = display_port
        self.manager_port = manager_port or free_port()
        self.manager_password = secrets.token_urlsafe(9)  # a demo account's, new every run
        self.say = say
        self.screenshots = screenshots
        self.topics = Topics(hall=HALL)
        self.tally = Tally()
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible crowd, not a secret
        self.crowd = Crowd(
            rng=self.rng, kiosks=KIOSKS, regular_keys=("1", "2", "3", "4"), priority_keys=("5", "6"),
            clerks={c: Clerk(c, s) for c, s in COUNTERS.items()}, transfer_targets=tuple(SERVICE_NAMES),
            arrival_every_s=arrival_every_s, scan_kiosks=SCAN_KIOSKS,
            citizens=crowd_cards(seed, today=datetime.now(HALL_ZONE).date()),
        )
        self.consoles: dict[str, CounterCore] = {}  # what each clerk's console would show
        self.broker = PrivateBroker(work / "broker")
        self.roles: dict[str, ChildProcess] = {}
        self.inbox: queue.Queue[Message | LinkUp | LinkDown] = queue.Queue()
        self.pending: dict[str, tuple[str, bytes, float]] = {}  # counter -> (request id, payload, sent)
        self._stop = threading.Event()
        self._shooter: threading.Thread | None = None
        self._said: list[tuple[str, str]] = []  # the calls of the segment being announced, and their lags
        self.serving: dict[str, wire.ServingTicket] = {}  # what each counter serves, from the replies
        # Ratings at the counters' buttons: (when, counter, ticket id, number, level), and those sent, by request id.
        self.button_presses: list[tuple[float, str, str, str, wire.RatingLevel]] = []
        self.ratings_sent: dict[str, tuple[str, str, wire.RatingLevel]] = {}
        self.phones = Phones()
        # (number, recalls so far) -> when the controller made that call (epoch s): a page's call is matched to it
        self.calls_seen: dict[tuple[str, int], float] = {}
        self.recalls: Counter[str] = Counter()
        self.phone_link: str | None = None  # the last page a phone followed, for the screenshot
        self.held_news: list[PhoneNews] = []

    @property
    def display_url(self) -> str:
        return f"http://127.0.0.1:{self.display_port}/"

    @property
    def manager_url(self) -> str:
        return f"http://127.0.0.1:{self.manager_port}/"

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def attach_lines(self) -> list[str]:
        """How a person joins the running hall: their own kiosk and counter, on the hall's broker."""
        broker = self.broker.address
        return [
            f"hall running: broker {broker}, display {self.display_url}  "
            f"(open it in a browser; chime and voice play there)",
            f"  press your own kiosk:  .venv/bin/hallq-dispenser --simulate "
            f"--config {self._rel(self._kiosk_config('kiosk-3'))} --broker {broker}",
            f"  work your own counter: .venv/bin/hallq-counter console --config config/sim/counter-7.toml "
            f"--broker {broker}",
            f"the hall's office: {self.manager_url}  (log in as {DEMO_USER}, password {self.manager_password}; "
            f"live view, actions, reports)",
            f"tickets are printed as PNG pictures to {self._rel(self.work / 'tickets')}/; "
            f"logs in {self._rel(self.work / 'logs')}/; Ctrl-C stops",
        ]

    def _roles(self) -> dict[str, ChildProcess]:
        logs = self.work / "logs"
        broker = ["--broker", self.broker.address]
        roles = {"controller": ChildProcess(
            name="controller", module="hall_controller", log_path=logs / "controller.log",
            args=["--config", str(self._controller_config()), *broker, "--state-dir", str(self.work / "state")])}
        for kiosk in KIOSKS:
            roles[kiosk] = ChildProcess(
                name=kiosk, module="dispenser", log_path=logs / f"{kiosk}.log", stdin=True,
                args=["--simulate", "--config", str(self._kiosk_config(kiosk)), *broker,
                      "--preview-dir", str(self.work / "tickets" / kiosk)])
        roles["display"] = ChildProcess(
            name="display", module="display", log_path=logs / "display.log",
            args=["--config", str(CONFIG / "display.toml"), *broker, "--listen", f"127.0.0.1:{self.display_port}"])
        roles["manager"] = ChildProcess(
            name="manager", module="manager", log_path=logs / "manager.log",
            args=["run", "--config", str(self._manager_config()), *broker,
                  "--listen", f"127.0.0.1:{self.manager_port}"])
        return roles

    def _controller_config(self) -> Path:
        """config/sim/hall.toml with the key of this run's citizens' profiles (in the work folder, beside them)."""
        key = self.work / "profile.key"
        if not key.exists():
            key.write_text(new_key_text(), encoding="ascii")
            key.chmod(0o600)
        text = (CONFIG / "hall.toml").read_text(encoding="utf-8")
        path = self.work / "hall.toml"
        path.write_text(text.replace("\n[cards]\n", f'\n[cards]\nkey_file = "{key}"\n', 1), encoding="utf-8")
        return path

    def _kiosk_config(self, kiosk: str) -> Path:
        """config/sim/KIOSK.toml with its QR code's link on this run's manager (the status page's port)."""
        text = (CONFIG / f"{kiosk}.toml").read_text(encoding="utf-8")
        text = text.replace("http://127.0.0.1:8443/t/", f"{self.manager_url}t/")
        path = self.work / f"{kiosk}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def _manager_config(self) -> Path:
        """The manager's config for this run: config/sim/manager.toml with this run's ledger, accounts and state,
        and a demo account (``DEMO_USER``, role manager) with a password made for the run."""
        folder = self.work / "manager"
        folder.mkdir(parents=True, exist_ok=True)
        users = Users.load(folder / "users.json")
        users.add(DEMO_USER, self.manager_password, "manager", replace=True)
        text = (CONFIG / "manager.toml").read_text(encoding="utf-8")
        settings = {"hall_config": CONFIG / "hall.toml", "ledger": self.work / "state" / LEDGER_FILE,
                    "users_file": folder / "users.json", "state_dir": folder}
        lines = [line for line in text.splitlines() if line.split("=")[0].strip() not in settings]
        at = lines.index("[manager]") + 1
        lines[at:at] = [f'{key} = "{value}"' for key, value in settings.items()]
        path = folder / "manager.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def run(self, minutes: float | None) -> Tally:
        (self.work / "logs").mkdir(parents=True, exist_ok=True)
        self._write_history()
        self.broker.start()
        self.roles = self._roles()
        link = MqttLink(client_id="sim-clerks", broker=BrokerSettings(port=self.broker.port), inbox=self.inbox,
                        subscriptions=[(self.topics.calls(), 1), (self.topics.all_counter_replies(), 1)])
        try:
            for role in self.roles.values():
                role.start()
            link.start()
            if not self._wait_ready():
                return self.tally
            for line in self.attach_lines():
                self.say(line)
            self.phones.start()
            self._loop(link, minutes)
        finally:
            link.stop()
            self.phones.stop()
            if self._shooter is not None:
                self._shooter.join()
            if self.screenshots:
                self._screenshot()
                if port_open(self.manager_port):
                    self._office_screenshot()
                    self._phone_screenshot()
            for role in reversed(list(self.roles.values())):
                role.stop()
            self.broker.stop()
        return self.tally

    def _write_history(self) -> None:
        """A new hall starts with a week of past days in its ledger, so the manager's reports show something."""
        cfg = dataclasses.replace(controller_config.load(CONFIG / "hall.toml"), state_dir=self.work / "state")
        if not ledger_is_empty(cfg):
            return
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        tickets = write_history(cfg)
        self.say(f"ledger: a week of past business days written for the reports ({tickets} tickets)")

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(ROOT))
        except ValueError:
            return str(path)

    def _wait_ready(self) -> bool:
        """Until every role is up (True), or a stop was asked for meanwhile (False)."""
        deadline = time.monotonic() + 30
        needs = [("controller", READY_LOG), ("kiosk-1", "connected to broker"), ("kiosk-1", "card scanner ready"),
                 ("kiosk-2", "connected to broker"), ("display", "display listening"), ("manager", "manager listening")]
        for name, text in needs:
            while True:
                if self._stop.is_set():
                    return False
                try:
                    self.roles[name].wait_for_log(text, timeout_s=0.2)
                    break
                except AssertionError as exc:
                    if time.monotonic() > deadline or self.roles[name].proc.poll() is not None:  # type: ignore[union-attr]
                        raise SystemExit(f"{exc}\nsee {self.work / 'logs'}") from None
        return True

    def _loop(self, link: MqttLink, minutes: float | None) -> None:
        end = None if minutes is None else time.monotonic() + minutes * 60
        next_shot = time.monotonic() + 10
        while not self._stop.is_set() and (end is None or time.monotonic() < end):
            now = time.monotonic()
            for press in self.crowd.arrivals(now):
                if press.scan is not None:
                    self.roles[press.kiosk].send_line(f"scan {press.scan}")
                self.roles[press.kiosk].send_line(press.key)
            for command in self.crowd.commands(now):
                self._send(link, command.counter, command.action, command.service)
            self._press_rating_buttons(link, now)
            for counter, (rid, payload, sent) in list(self.pending.items()):
                if now - sent > 5.0:  # no reply: ask again with the same request id (a repeated id is answered once)
                    self.pending[counter] = (rid, payload, now)
                    link.publish(self.topics.counter_command(counter), payload)
            self._drain(link, now)
            self._phone_news()
            self._follow_logs()
            if self.screenshots and now >= next_shot and not (self._shooter and self._shooter.is_alive()):
                # In the background: a browser takes seconds to start, and the hall must not wait for it.
                self._shooter = threading.Thread(target=self._screenshot, name="screenshot", daemon=True)
                self._shooter.start()
                next_shot = now + 15
            for name, role in self.roles.items():
                if role.proc is not None and role.proc.poll() is not None:
                    raise SystemExit(f"{name} stopped unexpectedly (exit {role.proc.returncode}); "
                                     f"see {self._rel(role.log_path)}")

    def _send(self, link: MqttLink, counter: str, action: str, service: str | None) -> None:
        rid = uuid.uuid4().hex
        payload = wire.CounterCommand(request_id=rid, action=action, service=service).encode()  # type: ignore[arg-type]
        self.pending[counter] = (rid, payload, time.monotonic())
        link.publish(self.topics.counter_command(counter), payload)

    def _drain(self, link: MqttLink, now: float) -> None:
        deadline = time.monotonic() + 0.1
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self.inbox.get(timeout=left)
            except queue.Empty:
                return
            if not isinstance(item, Message):
                continue
            parsed = self.topics.parse(item.topic)
            if parsed is None:
                continue
            if parsed.kind is TopicKind.CALLS:
                call = wire.Call.decode(item.payload)
                if call.recall:
                    self.tally.recalls += 1
                else:
                    self.tally.calls += 1
                self.recalls[call.number] = self.recalls[call.number] + 1 if call.recall else 0
                self.calls_seen[(call.number, self.recalls[call.number])] = call.at.timestamp()
                what = "RECALL " if call.recall else "CALL   "
                lane = " (ưu tiên)" if call.priority else ""
                self.say(f"{what} {call.number}{lane} → {call.counter_name}")
            elif parsed.kind is TopicKind.COUNTER_REPLY and parsed.device is not None:
                reply = wire.CounterReply.decode(item.payload)
                if reply.action == "rate":
                    self._rated(reply)
                    continue
                if reply.profile is not None:
                    self._profile(link, parsed.device, reply, now)
                if reply.action == "profile":
                    if reply.ok:
                        self.tally.registered += 1
                        self.say(f"REGISTER {COUNTER_NAMES[parsed.device]} completed a first visit's profile "
                                 f"(phone); the next scan brings it back")
                    continue
                pending = self.pending.get(parsed.device)
                if pending is None or pending[0] != reply.request_id:
                    continue
                del self.pending[parsed.device]
                served = self.serving.get(parsed.device)
                if reply.action == "complete" and reply.ok and served is not None:
                    self._citizen_may_rate(parsed.device, served, now)
                if reply.ticket is not None:
                    self.serving[parsed.device] = reply.ticket
                else:
                    self.serving.pop(parsed.device, None)
                if reply.error is not None and reply.error_code != "queue_empty":
                    self.tally.refused += 1
                    self.say(f"REFUSED  {COUNTER_NAMES[parsed.device]} {reply.action}: {reply.error.message}")
                elif reply.action == "transfer" and reply.ok:
                    self.say(f"TRANSFER {COUNTER_NAMES[parsed.device]} sent its citizen to another service")
                self.crowd.answered(parsed.device, action=reply.action, ok=reply.ok,
                                    serving=reply.ticket is not None, now=now)

    def _citizen_may_rate(self, counter: str, served: wire.ServingTicket, now: float) -> None:
        """A citizen just served at ``counter`` presses one of its lit rating buttons, a few seconds later (about
        half of them; the phones rate others)."""
        if self.rng.random() < BUTTON_RATING_SHARE:
            level = self.rng.choices(wire.RATING_LEVELS, weights=(0.5, 0.3, 0.13, 0.07))[0]
            self.button_presses.append((now + self.rng.uniform(1.0, 4.0), counter, served.id, served.number, level))

    def _press_rating_buttons(self, link: MqttLink, now: float) -> None:
        """The presses due now, as the counter's rating buttons send them (``rate``, the served ticket's id)."""
        due = [press for press in self.button_presses if press[0] <= now]
        self.button_presses = [press for press in self.button_presses if press[0] > now]
        for _, counter, ticket, number, level in due:
            rid = uuid.uuid4().hex
            self.ratings_sent[rid] = (counter, number, level)
            link.publish(self.topics.counter_command(counter), wire.CounterCommand(
                request_id=rid, action="rate", ticket=ticket, rating=level).encode())

    def _rated(self, reply: wire.CounterReply) -> None:
        sent = self.ratings_sent.pop(reply.request_id, None)
        if sent is None:
            return
        counter, number, level = sent
        if reply.error is None:
            self.tally.rated["counter"] += 1
            self.say(f"RATING  {number} at {COUNTER_NAMES[counter]}'s buttons: «{RATING_WORDS[level]}»")
        else:
            self.tally.ratings_refused[str(reply.error.code)] += 1
            self.say(f"RATING  {number} at {COUNTER_NAMES[counter]}'s buttons refused: {reply.error.message}")

    def _phone_news(self) -> None:
        """What the citizens' phones saw since the last look, on the terminal. A page that shows a call before
        the hall's own subscription has it waits here (at most 2 s), so that its lag is measured from that call."""
        held, self.held_news = self.held_news, []
        while True:
            try:
                held.append(self.phones.news.get_nowait())
            except queue.Empty:
                break
        for news in held:
            called_at = self.calls_seen.get((news.number, news.status.get("recalls") or 0))
            if news.kind == "called" and called_at is None and time.time() - news.seen_at < 2.0:
                self.held_news.append(news)
            else:
                self._phone_line(news)

    def _phone_line(self, news: PhoneNews) -> None:
        status = news.status
        match news.kind:
            case "following":
                self.phone_link = news.detail or self.phone_link
                if status.get("state") == "waiting" and not status.get("ahead"):
                    where = "next in line"
                elif status.get("state") == "waiting":
                    wait_min = max(1, round((status.get("estimated_wait_s") or 0) / 60))
                    where = f"{status.get('ahead')} ahead, about {wait_min} min"
                else:
                    where = str(status.get("state"))
                self.say(f"PHONE   {news.number}: a citizen follows the ticket on its live page ({where})")
            case "called":
                called_at = self.calls_seen.get((news.number, status.get("recalls") or 0))
                lag = "" if called_at is None else f", {news.seen_at - called_at:.2f} s after the call"
                if called_at is not None:
                    self.tally.phone_call_lags_s.append(news.seen_at - called_at)
                again = " again" if status.get("recalls") else ""
                self.say(f"PHONE   {news.number}'s page{again}: «Mời bạn đến {status.get('counter_name')}» "
                         f"(chime and vibration{lag})")
            case "rated":
                self.tally.rated["phone"] += 1
                level, _, rest = news.detail.partition(" ")
                self.say(f"RATING  {news.number} on the phone: «{RATING_WORDS.get(level, level)}»"
                         + (f" {rest}" if rest else ""))
            case "rating_refused":
                self.tally.ratings_refused[news.code or "not sent"] += 1
                self.say(f"RATING  {news.number} on the phone refused: {news.detail}")
            case "lost":
                self.say(f"PHONE   {news.number}: {news.detail}")
            case _:
                pass

    def _profile(self, link: MqttLink, counter: str, reply: wire.CounterReply, now: float) -> None:
        """A clerk's console got the profile of the citizen it called: draw the screen the clerk sees into a file
        (the terminal says only that it did: no personal data here), and register a first visit's phone."""
        profile = reply.profile
        if profile is None:
            return
        core = self.consoles.setdefault(counter, CounterCore(counter=counter))
        core.on_link(up=True)
        if core.press(Press(reply.action), now_s=now, request_id=reply.request_id) is not None:  # type: ignore[arg-type]
            core.on_reply(reply, now_s=now)
        path = self.work / "consoles" / f"counter-{counter}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(screen_text(core.view)) + "\n", encoding="utf-8")
        if reply.action == "profile":
            return  # the registration's own line says it
        self.tally.profiles_shown += 1
        self.tally.returning += not profile.first_visit
        visits = "first visit" if profile.first_visit else f"returning, {len(profile.visits)} earlier visit(s)"
        self.say(f"PROFILE {COUNTER_NAMES[counter]} sees who is coming ({visits}; profile {profile.ref[:8]}) "
                 f"→ {self._rel(path)}")
        if profile.first_visit and reply.action == "next":
            phone = f"09{self.rng.randint(10_000_000, 99_999_999)}"
            edit = wire.ProfileEdit(phone=f"{phone[:4]} {phone[4:7]} {phone[7:]}")
            link.publish(self.topics.counter_command(counter), wire.CounterCommand(
                request_id=uuid.uuid4().hex, action="profile", serving=profile.ticket, profile=edit).encode())

    def _follow_logs(self) -> None:
        for kiosk in KIOSKS:
            for line in self.roles[kiosk].new_lines():
                if "card read:" in line:
                    self.tally.cards_read += 1
                    self.say(f"CARD    {kiosk} read a citizen's card ({line.split('card read: ', 1)[1].split(';')[0]});"
                             " the next press takes a ticket linked to it")
                elif "bad scan ignored" in line:
                    self.say(f"CARD    {kiosk}: {line.split(': ', 1)[-1]}")
                elif "printed ticket=" in line:
                    fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
                    path = Path(fields.get("preview", ""))
                    self.tally.printed += 1
                    self.tally.tickets.append(path)
                    service = SERVICE_NAMES.get(fields.get("service", ""), "")
                    lane = " ưu tiên" if fields.get("priority") == "True" else ""
                    lane += " (card read)" if fields.get("card") == "yes" else ""
                    self.say(f"TICKET  {fields.get('ticket', '?')} {service}{lane} at {kiosk}, "
                             f"{fields.get('ahead', '?')} ahead → {self._rel(path)}")
                    if path.name and self.phones.can_read_codes and self.rng.random() < PHONE_SHARE:
                        choice = RatingChoice.draw(self.rng) if self.rng.random() < PHONE_RATING_SHARE else None
                        self.tally.phones += 1
                        self.phones.follow(path, fields.get("ticket", "?"), choice)
                elif "ERROR" in line or "WARNING" in line:
                    self.say(f"{kiosk}: {line.split(': ', 1)[-1]}")
        for line in self.roles["display"].new_lines():
            self._voice(line)

    def _voice(self, line: str) -> None:
        """The display's log of what it said, one line per call: said together under one chime, or not."""
        fields = dict(_FIELD.findall(line))
        if "announcing ticket=" in line and fields.get("voice") == "first":
            self.tally.announced += 1
            lag = fields.get("lag_s", "?")
            self.tally.voice_lags_s.append(float(lag))
            self._said.append((f"số {fields.get('ticket', '?')} đến quầy số {fields.get('counter', '?')}", lag))
            part, _, of = fields.get("part", "1/1").partition("/")
            if part == of:
                words = ", ".join(text for text, _ in self._said)
                lags = " / ".join(f"{lag} s" for _, lag in self._said)
                self._said = []
                self.say(f"VOICE   «Mời {words}» ({fields.get('duration_s', '?')} s with the chime; "
                         f"words {lags} after the screen)")
        elif "not announced ticket=" in line:
            reason = fields.get("reason", "?")
            if reason != "second_language_yielded":
                self.tally.not_said[reason] += 1
                self.say(f"VOICE   not said: {fields.get('ticket', '?')} at counter {fields.get('counter', '?')}, "
                         f"{line.rpartition('(')[2].rstrip(')')}")

    def _shoot(self, name: str, url: str, *, size: tuple[int, int] = (1920, 1080),
               ready: Callable[[Kiosk], None] = lambda _kiosk: None) -> Path | None:
        """A headless Chromium's picture of ``url`` at ``size`` into ``name`` in the work folder, once ``ready``
        has prepared the page; None (logged) if it failed: a screenshot is a courtesy, the hall goes on."""
        path = self.work / name
        try:
            with Kiosk(width=size[0], height=size[1]) as kiosk:
                kiosk.open(url)
                ready(kiosk)
                kiosk.screenshot(path)
        except Exception as exc:  # whatever the browser did, the hall goes on without the picture
            log.warning("%s screenshot failed: %s", name, exc)
            return None
        return path

    def _screenshot(self) -> None:
        if shutil.which("chromium") is None or not port_open(self.display_port):
            return
        # The page paints from the board, then the clock ticks.
        path = self._shoot("display.png", self.display_url, ready=lambda _kiosk: time.sleep(1.0))
        if path is not None:
            self.tally.screenshot = path
            self.say(f"SCREEN  the display right now: {self._rel(path)}")

    def _office_screenshot(self) -> None:
        """The manager's live view as the office sees it (logged in with the demo account), 1366×768."""
        def log_in(kiosk: Kiosk) -> None:  # the login page first
            kiosk.tab.fill("input[name=name]", DEMO_USER)
            kiosk.tab.fill("input[name=password]", self.manager_password)
            kiosk.tab.click("button[type=submit]")
            kiosk.wait_for("() => document.querySelectorAll('#counters tbody tr').length > 0 "
                           "&& document.getElementById('link').dataset.state === 'up'", timeout_s=10)

        path = self._shoot("manager.png", self.manager_url, size=(1366, 768), ready=log_in)
        if path is not None:
            self.tally.office_screenshot = path
            self.say(f"SCREEN  the office's live view: {self._rel(path)}")

    def _phone_screenshot(self) -> None:
        """The live page of the last ticket a phone followed, on a 360×640 phone screen."""
        link = self.phone_link
        if link is None or shutil.which("chromium") is None:
            return
        path = self._shoot("phone.png", link, size=(360, 640), ready=lambda kiosk: kiosk.wait_for(
            "() => document.body.dataset.state !== undefined && document.body.dataset.state !== 'loading'",
            timeout_s=10))
        if path is not None:
            self.tally.phone_screenshot = path
            self.say(f"SCREEN  a citizen's phone, following {link.rsplit('/', 1)[-1][:4]}…: {self._rel(path)}")


def default_port() -> int:
    return 8080 if not port_open(8080) else free_port()


def timestamp() -> str:
    """The hall's time, as its tickets and display show it, whatever this machine's own time zone."""
    return datetime.now(HALL_ZONE).strftime("%H:%M:%S")


def zone_line() -> str:
    now = datetime.now(HALL_ZONE)
    return f"times are the hall's ({HALL_ZONE.key}, UTC{now.strftime('%z')[:3]}:{now.strftime('%z')[3:]}), " \
           f"as on its tickets and display"
