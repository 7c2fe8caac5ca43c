"""500 phones following their tickets on one hall web service: how soon a call reaches every page.

Run:  .venv/bin/python -m bench.phones_bench [--quick] [--phones 500] [--calls 200] [--services 1]
      [--client-procs 1] [--idle-s 60] [--json PATH]

The issue's target: "500 phones following tickets at once on one hall web service, on this machine. A call
reaches every page within 1 s (p99). Record the service's memory and CPU."

On loopback: a private Mosquitto (the project's config), the hall controller and the manager's web service as
processes (``testbed``), with ``[phones] max_connections`` above the phones followed. Then:

1. **Tickets**: ``--phones`` tickets issued as kiosks ask for them (``TicketRequest`` on ``dispenser/{id}/request``,
   the ``TicketReply`` read for its ``token``), spread over ``--services`` services (one by default: every call
   then moves every page still waiting).
2. **Pages**: one Server-Sent Events stream per ticket, as the phone's page opens it (``GET /t/{token}/events``),
   from ``--client-procs`` programs (aiohttp, one asyncio loop each, ``--follow`` below), each noting the
   monotonic time, state and people ahead of every ``status`` event; the bench waits until every page has its
   first status, and checks that it shows the ticket's place in its line.
3. **Idle** (``--idle-s``): the manager's CPU with every page connected and nothing happening, and one more page
   on a raw socket counting the bytes an idle stream receives (the heartbeat, with HTTP's chunk framing).
4. **Calls**: ``--calls`` presses of ``next`` as counters send them (``CounterCommand`` on
   ``counter/{id}/command``, ``--counters`` counters in turn), a gap drawn between ``--gap-min-ms`` and
   ``--gap-max-ms`` (seeded), while the bench's own subscriber of ``calls`` notes when each ``Call`` came from
   the broker. For each call: (a) the called ticket's page showing ``called``, from the counter's publish and
   from the ``Call``'s arrival; (b) the fan-out: until **every** other page waiting in that service shows its new
   people-ahead count (the first status with ``ahead`` at most what the call left, or a later state: a page that
   was sent a newer status instead of this one has seen it too). A page that never shows it is missed.

Both clocks are this machine's ``CLOCK_MONOTONIC``, the same in every process. The manager's ``VmRSS``,
``VmHWM``, ``Threads`` (``/proc/PID/status``) and CPU seconds (``/proc/PID/stat``) are read before the pages
connect, idle with them connected and after the calls; the load generator's CPU, the broker's, the
controller's, the whole machine's busy share and its load average beside them. Target: p99 ≤ 1 s for the called
page and for the fan-out, no page missed; exit status 1 otherwise. Prints a table and saves
bench/results/phones_bench.json (``--json PATH``: a copy there too).

The figures are only as good as the machine is quiet: the load generator shares the cores with the manager.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import os
import queue
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import aiohttp

from bench.common import ROOT, percentile, report
from hallq import wire
from hallq.mqtt import BrokerSettings, Message, MqttLink
from hallq.topics import Topics
from testbed.broker import PrivateBroker, bound_to_parent, end_process, free_port
from testbed.controller import ControllerProcess
from testbed.manager import ManagerProcess, manager_toml

TOPICS: Final = Topics(hall="bench")
TARGET_P99_S: Final = 1.0
DISPENSERS: Final = 10
SETTLE_S: Final = 3.0  # after the last call: its fan-out's way to every page
CONNECT_TIMEOUT_S: Final = 180.0
CONNECTING_AT_ONCE: Final = 50  # pages opening at once, per client program (a crowd, not a SYN flood)
SERVICES: Final = (("A", "Hộ tịch", "Civil status"), ("B", "Đất đai - Xây dựng", "Land and construction"),
                   ("C", "Tư pháp", "Justice"), ("D", "Đăng ký kinh doanh", "Business registration"),
                   ("E", "Lao động - Thương binh và Xã hội", "Labour and social affairs"),
                   ("F", "Văn hoá - Thông tin", "Culture and information"))
WAITING: Final = "waiting"
CALLED_OR_LATER: Final = frozenset({"called", "ended", "served", "no_show", "void", "expired"})
ENDED_OR_LATER: Final = frozenset({"ended", "served", "no_show"})

# One status as a page received it: (monotonic s, state, people ahead).
PageEvent = tuple[float, str, int | None]


@dataclass(frozen=True, slots=True)
class Options:
    phones: int = 500
    calls: int = 200
    services: int = 1
    counters: int = 20
    gap_min_s: float = 0.1
    gap_max_s: float = 0.5
    idle_s: float = 60.0
    client_procs: int = 1
    seed: int = 16

    def check(self) -> None:
        if not 1 <= self.services <= len(SERVICES):
            raise SystemExit(f"--services must be 1-{len(SERVICES)}")
        if self.calls > self.phones:
            raise SystemExit("--calls must not exceed --phones (each call takes a waiting ticket)")
        if self.phones < 1 or self.counters < 1 or self.client_procs < 1 or self.gap_min_s > self.gap_max_s:
            raise SystemExit("--phones, --counters and --client-procs must be at least 1, the gaps in order")


QUICK: Final = Options(phones=100, calls=50, idle_s=5.0)


# --- the hall ----------------------------------------------------------------------------------------------------


def hall_toml(*, state_dir: Path, services: int, counters: int) -> str:
    """A hall with ``services`` services, ``counters`` counters serving all of them and ``DISPENSERS`` kiosks;
    the manager's account ``manager``; trusting the clock and open at all hours."""
    lines = ['[hall]', 'id = "bench"', 'name_vi = "Trung tâm đo hiệu năng"', 'name_en = "Benchmark hall"',
             '[controller]', f'state_dir = "{state_dir}"', 'log_level = "INFO"', 'trust_clock = "always"',
             '[manager]', 'id = "manager"', '[mqtt]', 'broker = "127.0.0.1:1"']
    ids = [sid for sid, _vi, _en in SERVICES[:services]]
    for sid, name_vi, name_en in SERVICES[:services]:
        lines += ['[[services]]', f'id = "{sid}"', f'name_vi = "{name_vi}"', f'name_en = "{name_en}"',
                  f'prefix = "{sid}"', 'last_number = 9999']
    for n in range(1, counters + 1):
        lines += ['[[counters]]', f'id = "{n}"', f'name = "Quầy {n}"', f'services = {json.dumps(ids)}']
    for n in range(1, DISPENSERS + 1):
        lines += ['[[dispensers]]', f'id = "b{n}"', f'name = "Kiosk {n}"']
    return "\n".join(lines) + "\n"


def phones_manager_toml(path: Path, *, hall_config: Path, broker: PrivateBroker, port: int, state_dir: Path,
                        max_connections: int) -> Path:
    """``testbed.manager.manager_toml`` with a ``[phones]`` table allowing ``max_connections`` pages."""
    manager_toml(path, hall_config=hall_config, broker=broker, port=port, state_dir=state_dir)
    with path.open("a", encoding="utf-8") as config:
        config.write(f"\n[phones]\nmax_connections = {max_connections}\n")
    return path


# --- /proc -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcSample:
    """One reading of a process: CPU seconds so far (user + system), memory (KiB) and threads."""

    cpu_s: float
    rss_kib: int
    hwm_kib: int
    threads: int


def proc_sample(pid: int) -> ProcSample:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    status: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            status[key] = int(value.split()[0])
    return ProcSample(cpu_s=(int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"),
                      rss_kib=status["VmRSS"], hwm_kib=status["VmHWM"], threads=status["Threads"])


def cpu_s(pid: int | None) -> float:
    return proc_sample(pid).cpu_s if pid is not None else float("nan")


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs so far (/proc/stat); busy excludes idle and iowait."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


@dataclass
class Meter:
    """CPU seconds of several processes and the machine over one phase."""

    pids: dict[str, int | None]
    started_s: float = 0.0
    cpu_before: dict[str, float] = field(default_factory=dict)
    jiffies_before: tuple[int, int] = (0, 0)

    def start(self) -> Meter:
        self.started_s = time.monotonic()
        self.cpu_before = {name: cpu_s(pid) for name, pid in self.pids.items()}
        self.jiffies_before = machine_jiffies()
        return self

    def stop(self) -> dict[str, Any]:
        wall_s = time.monotonic() - self.started_s
        busy, total = machine_jiffies()
        used = {name: cpu_s(pid) - self.cpu_before[name] for name, pid in self.pids.items()}
        return {"wall_s": wall_s, "cpu_s": used, "core_share": {name: s / wall_s for name, s in used.items()},
                "machine_busy_share": (busy - self.jiffies_before[0]) / max(1, total - self.jiffies_before[1]),
                "load_average": os.getloadavg()}


# --- the bookkeeping: pure ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One press of ``next`` and what it called: ``sent_s`` (the counter's publish), ``reply_s`` (its reply),
    ``call_seen_s`` (the ``Call`` from the broker at the bench's subscriber), all monotonic; ``token`` the called
    ticket's, ``previous`` the ticket this counter was serving (this ``next`` finished it)."""

    index: int
    counter: str
    sent_s: float
    reply_s: float | None = None
    call_seen_s: float | None = None
    service: str | None = None
    number: str | None = None
    token: str | None = None
    previous: str | None = None


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """How one call reached the pages. Delays are seconds from the counter's publish (``None``: never seen)."""

    index: int
    called_s: float | None  # the called ticket's page shows it called
    called_from_call_s: float | None  # the same, from the Call's arrival from the broker
    previous_ended_s: float | None  # the counter's previous ticket's page shows it ended (or served)
    fanout_s: float | None  # until the last of the others waiting in the service shows its new count
    pages_expected: int  # the others waiting in the service when it was called
    pages_reached: int
    page_delays_s: tuple[float, ...]
    missed: tuple[str, ...]  # tokens of pages that never showed it
    early: tuple[str, ...]  # tokens of pages that showed it before the publish: a wrong count, not a fast one


@dataclass(frozen=True, slots=True)
class Analysis:
    calls: tuple[CallOutcome, ...]
    first_status_wrong: tuple[str, ...]  # pages whose first status did not show the ticket's place in its line
    ahead_went_up: int  # times a waiting page's count grew (nothing joins the lines during the calls)


def _first_at(events: Sequence[PageEvent], start: int, reached: Callable[[PageEvent], bool]) -> int:
    """Index of the first event from ``start`` on for which ``reached`` holds; ``len(events)`` if none."""
    index = start
    while index < len(events) and not reached(events[index]):
        index += 1
    return index


def analyse(lanes: dict[str, list[str]], calls: Sequence[CallRecord],
            pages: dict[str, Sequence[PageEvent]]) -> Analysis:
    """What each call did to the pages. ``lanes``: each service's tokens in the order issued (nothing else waits);
    ``calls`` in the order sent; ``pages``: each followed token's statuses in the order received.

    A waiting page has seen call k once it shows ``ahead`` at most its tickets still waiting before it after call
    k, or any state past waiting: a page handed a newer status in place of this one has seen it too. The counts
    only fall while no ticket joins, so one pointer per page walks its events once over all the calls."""
    position = {token: i for lane in lanes.values() for i, token in enumerate(lane)}
    service_of = {token: sid for sid, lane in lanes.items() for token in lane}
    called: dict[str, list[int]] = {sid: [] for sid in lanes}  # each lane's called positions, sorted
    pointer: dict[str, int] = dict.fromkeys(pages, 0)
    first_wrong = tuple(token for token, events in pages.items() if token in position and (
        not events or events[0][1] != WAITING or events[0][2] != position[token]))
    went_up = 0
    for events in pages.values():
        counts = [ahead for _t, state, ahead in events if state == WAITING and ahead is not None]
        went_up += sum(1 for a, b in itertools.pairwise(counts) if b > a)

    outcomes: list[CallOutcome] = []
    for call in calls:
        called_s = from_call_s = previous_s = None
        if call.token is not None:
            events = pages.get(call.token, ())
            at = _first_at(events, 0, lambda e: e[1] in CALLED_OR_LATER)
            if at < len(events):
                called_s = events[at][0] - call.sent_s
                if call.call_seen_s is not None:
                    from_call_s = events[at][0] - call.call_seen_s
        if call.previous is not None:
            events = pages.get(call.previous, ())
            at = _first_at(events, 0, lambda e: e[1] in ENDED_OR_LATER)
            if at < len(events):
                previous_s = events[at][0] - call.sent_s
        sid = service_of.get(call.token or "")
        if sid is None:
            outcomes.append(CallOutcome(call.index, called_s, from_call_s, previous_s, None, 0, 0, (), (), ()))
            continue
        bisect.insort(called[sid], position[call.token or ""])
        done = called[sid]
        delays: list[float] = []
        missed: list[str] = []
        early: list[str] = []
        expected = 0
        for token in lanes[sid]:
            place = position[token]
            before = bisect.bisect_left(done, place)  # tickets before it called so far
            if before < len(done) and done[before] == place:
                continue  # called, by this call or an earlier one
            expected += 1
            should = place - before  # the tickets before it still waiting

            def seen(event: PageEvent, should: int = should) -> bool:
                return event[1] != WAITING or (event[2] is not None and event[2] <= should)

            events = pages.get(token, ())
            at = pointer[token] = _first_at(events, pointer.get(token, 0), seen)
            if at >= len(events):
                missed.append(token)
                continue
            delay = events[at][0] - call.sent_s
            if delay < 0:
                early.append(token)
            delays.append(delay)
        outcomes.append(CallOutcome(
            call.index, called_s, from_call_s, previous_s, max(delays) if delays and not missed else None,
            expected, len(delays), tuple(delays), tuple(missed), tuple(early)))
    return Analysis(tuple(outcomes), first_wrong, went_up)


def spread(samples_s: Iterable[float | None]) -> dict[str, float | int]:
    """p50/p95/p99/max (ms) of the samples that exist, and how many there are."""
    ms = [s * 1000 for s in samples_s if s is not None]
    if not ms:
        return {"n": 0}
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 2), "p95_ms": round(percentile(ms, 95), 2),
            "p99_ms": round(percentile(ms, 99), 2), "max_ms": round(max(ms), 2)}


# --- the pages: the load generator's programs --------------------------------------------------------------------


@dataclass
class PageRecord:
    """What one page received: its statuses, the heartbeats' times, the body's bytes, and an error if it ended."""

    events: list[PageEvent] = field(default_factory=list)
    beats: list[float] = field(default_factory=list)
    bytes: int = 0
    error: str | None = None


def _read_block(block: bytes, now: float, record: PageRecord) -> None:
    """One SSE event (the lines before a blank line): a status, the ``retry`` hint or a heartbeat (the ``ping``
    event; a comment, from services older than it)."""
    lines = block.split(b"\n")
    if block.startswith(b":") or b"event: ping" in lines:
        record.beats.append(now)
        return
    for line in lines:
        if line.startswith(b"data: "):
            status = json.loads(line[6:])
            if not status.get("found"):
                record.error = "the service does not know the token"
            record.events.append((now, str(status.get("state")), status.get("ahead")))


async def _follow_page(session: aiohttp.ClientSession, url: str, record: PageRecord, gate: asyncio.Semaphore,
                       first: Callable[[], None]) -> None:
    await gate.acquire()
    released = False
    try:
        async with session.get(url, headers={"Accept": "text/event-stream"}) as response:
            if response.status != 200:
                record.error = f"HTTP {response.status}"
                return
            buffer = b""
            async for chunk in response.content.iter_any():
                now = time.monotonic()
                record.bytes += len(chunk)
                buffer += chunk
                while (end := buffer.find(b"\n\n")) >= 0:
                    block, buffer = buffer[:end], buffer[end + 2:]
                    _read_block(block, now, record)
                if not released and record.events:
                    released = True
                    gate.release()
                    first()
            record.error = "the service ended the stream"
    except (aiohttp.ClientError, OSError) as exc:
        record.error = f"{type(exc).__name__}: {exc}"
    finally:
        if not released:
            gate.release()
            first()


async def _follow_all(base_url: str, tokens: list[str], out: Path) -> None:
    """Follow every token's page until a line (or end of file) on standard input, then write the records."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def told() -> None:
        loop.remove_reader(sys.stdin.fileno())
        stop.set()

    loop.add_reader(sys.stdin.fileno(), told)
    records = {token: PageRecord() for token in tokens}
    started = time.monotonic()
    pending = len(tokens)

    def first() -> None:
        nonlocal pending
        pending -= 1
        if pending == 0:
            failed = sum(1 for r in records.values() if r.error is not None)
            sys.stdout.write(f"ready {time.monotonic() - started:.3f} {failed}\n")
            sys.stdout.flush()

    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(_follow_page(session, f"{base_url}/t/{token}/events", records[token], gate,
                                                  first)) for token in tokens]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    out.write_text(json.dumps({token: asdict(record) for token, record in records.items()}), encoding="utf-8")
    sys.stdout.write("done\n")
    sys.stdout.flush()


def follow_main(base_url: str, tokens_file: Path, out: Path) -> int:
    """The ``--follow`` program: one process of the load generator."""
    tokens = json.loads(tokens_file.read_text(encoding="utf-8"))
    asyncio.run(_follow_all(base_url, tokens, out))
    return 0


class Followers:
    """``procs`` programs (``--follow``) sharing ``tokens`` between them, one page per token."""

    def __init__(self, *, base_url: str, tokens: Sequence[str], procs: int, workdir: Path) -> None:
        self.base_url = base_url
        self.shares = [list(tokens[i::procs]) for i in range(procs)]
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.outs: list[Path] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def start(self, *, timeout_s: float = CONNECT_TIMEOUT_S) -> float:
        """Start the programs; seconds until every page has its first status (or failed)."""
        started = time.monotonic()
        for n, share in enumerate(self.shares):
            tokens_file = self.workdir / f"tokens-{n}.json"
            tokens_file.write_text(json.dumps(share), encoding="utf-8")
            out = self.workdir / f"pages-{n}.json"
            self.outs.append(out)
            self.procs.append(subprocess.Popen(
                bound_to_parent([sys.executable, "-m", "bench.phones_bench", "--follow", self.base_url,
                                 "--tokens-file", str(tokens_file), "--out", str(out)]),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, start_new_session=True))
        for proc in self.procs:
            line = self._line(proc, deadline=started + timeout_s)
            if not line.startswith("ready"):
                raise RuntimeError(f"a pages' program did not get ready: {line!r}")
        return time.monotonic() - started

    @staticmethod
    def _line(proc: subprocess.Popen[bytes], *, deadline: float) -> str:
        assert proc.stdout is not None
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise RuntimeError("a pages' program did not answer in time")
            line = proc.stdout.readline().decode()
            if line or proc.poll() is not None:
                return line.strip()

    def stop(self) -> dict[str, PageRecord]:
        records: dict[str, PageRecord] = {}
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(b"stop\n")
            proc.stdin.flush()
        for proc, out in zip(self.procs, self.outs, strict=True):
            line = self._line(proc, deadline=time.monotonic() + 60)
            end_process(proc)
            if line != "done":
                raise RuntimeError(f"a pages' program ended without its records: {line!r}")
            for token, raw in json.loads(out.read_text(encoding="utf-8")).items():
                records[token] = PageRecord(events=[(t, s, a) for t, s, a in raw["events"]], beats=raw["beats"],
                                            bytes=raw["bytes"], error=raw["error"])
        return records

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)


class IdleProbe:
    """One more page of ``token`` on a raw socket: every byte the idle stream brings (headers and the first
    status aside), with HTTP's chunk framing, and when."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self.received: list[tuple[float, int]] = []
        self.window_start_s = 0.0
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._read, name="idle-probe", daemon=True)

    def start(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.sendall(f"GET /t/{self.token}/events HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                     "Accept: text/event-stream\r\nUser-Agent: hallq-bench\r\n\r\n".encode())
        head = b""
        while b"event: status" not in head or not head.endswith((b"\n\n", b"\r\n")):
            data = sock.recv(65536)
            if not data:
                raise RuntimeError(f"the idle probe's stream ended: {head[:200]!r}")
            head += data
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"the idle probe's stream: {head[:200]!r}")
        sock.settimeout(0.5)
        self._sock = sock
        self.window_start_s = time.monotonic()
        self._thread.start()

    def _read(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            self.received.append((time.monotonic(), len(data)))

    def stop(self) -> dict[str, Any]:
        window_s = time.monotonic() - self.window_start_s
        self._stop.set()
        self._thread.join(5)
        if self._sock is not None:
            self._sock.close()
        total = sum(n for _t, n in self.received)
        times = [t for t, _n in self.received]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # The rate from the heartbeat's own period when two came (a window holds a whole number of them).
        per_beat = total / len(self.received) if self.received else 0.0
        period_s = sum(gaps) / len(gaps) if gaps else None
        return {"window_s": window_s, "bytes": total, "writes": len(self.received),
                "bytes_in_window_per_min": total * 60 / window_s if window_s > 0 else float("nan"),
                "bytes_per_write": per_beat, "period_s": period_s,
                "bytes_per_min": per_beat * 60 / period_s if period_s else total * 60 / window_s,
                "sizes": sorted({n for _t, n in self.received}), "gaps_s": gaps}


# --- the driver ----------------------------------------------------------------------------------------------------


class StampedInbox(queue.Queue[tuple[float, Any]]):
    """An MQTT inbox that notes, on paho's thread, the monotonic time each item arrived."""

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put((time.monotonic(), item), block, timeout)


def _await_reply(inbox: StampedInbox, topic: str, request_id: str, timeout_s: float = 10) -> Message:
    deadline = time.monotonic() + timeout_s
    while True:
        _at, item = inbox.get(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(item, Message) and item.topic == topic and f'"request_id":"{request_id}"' in \
                item.payload.decode():
            return item


def issue_tickets(link: MqttLink, inbox: StampedInbox, *, count: int, services: Sequence[str]) \
        -> list[wire.TicketInfo]:
    """``count`` tickets, one request at a time, from the kiosks in turn, in the services in turn."""
    tickets: list[wire.TicketInfo] = []
    for n in range(count):
        kiosk = f"b{n % DISPENSERS + 1}"
        request_id = uuid.uuid4().hex
        link.publish(TOPICS.dispenser_request(kiosk),
                     wire.TicketRequest(request_id=request_id, service=services[n % len(services)]).encode())
        reply = wire.TicketReply.decode(_await_reply(inbox, TOPICS.dispenser_ticket(kiosk), request_id).payload)
        if reply.ticket is None or reply.ticket.token is None:
            raise RuntimeError(f"ticket {n}: no ticket with a token: {reply.error}")
        tickets.append(reply.ticket)
    return tickets


def drive_calls(link: MqttLink, inbox: StampedInbox, *, options: Options, token_of: dict[str, str]) \
        -> list[CallRecord]:
    """``options.calls`` presses of ``next``, the counters in turn, gaps drawn from the options' range; each
    call's reply and ``Call`` noted as they come. Returns the records once every reply came (or ``SETTLE_S``)."""
    rng = random.Random(options.seed)
    records: list[CallRecord] = []
    by_request: dict[str, int] = {}
    call_seen: dict[str, float] = {}  # ticket id -> when its Call came
    serving: dict[str, str | None] = {}
    reply_topics = {TOPICS.counter_reply(str(n)): str(n) for n in range(1, options.counters + 1)}
    calls_topic = TOPICS.calls()

    def take(at: float, item: Any) -> None:
        if not isinstance(item, Message):
            return
        if item.topic == calls_topic:
            call = wire.Call.decode(item.payload)
            if not call.recall:
                call_seen.setdefault(call.ticket_id, at)
        elif item.topic in reply_topics:
            reply = wire.CounterReply.decode(item.payload)
            index = by_request.get(reply.request_id)
            if index is None:
                return
            if reply.ticket is None:
                raise RuntimeError(f"call {index}: next called nobody: {reply.error}")
            records[index] = replace(records[index], reply_s=at, service=reply.ticket.service,
                                     number=reply.ticket.number, token=token_of.get(reply.ticket.id))
            serving[records[index].counter] = reply.ticket.id

    def drain(until_s: float) -> None:
        while True:
            remaining = until_s - time.monotonic()
            try:
                at, item = inbox.get(timeout=remaining) if remaining > 0 else inbox.get_nowait()
            except queue.Empty:
                return
            take(at, item)

    due = time.monotonic()
    for index in range(options.calls):
        drain(due)
        counter = str(index % options.counters + 1)
        request_id = uuid.uuid4().hex
        previous = serving.get(counter)
        by_request[request_id] = index
        records.append(CallRecord(index=index, counter=counter, sent_s=time.monotonic(),
                                  previous=None if previous is None else token_of.get(previous)))
        link.publish(TOPICS.counter_command(counter), wire.CounterCommand(request_id=request_id,
                                                                          action="next").encode())
        due += rng.uniform(options.gap_min_s, options.gap_max_s)
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        drain(deadline)
    ticket_of = {token: ticket_id for ticket_id, token in token_of.items()}
    return [replace(r, call_seen_s=call_seen.get(ticket_of.get(r.token or "", ""))) for r in records]


def run(options: Options) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hallq-bench-phones-") as work_text:
        work = Path(work_text)
        state = work / "state"
        hall = work / "hall.toml"
        hall.write_text(hall_toml(state_dir=state, services=options.services, counters=options.counters),
                        encoding="utf-8")
        try:
            with PrivateBroker(work / "broker") as broker, \
                    ControllerProcess(config=hall, broker=broker, state_dir=state,
                                      log_path=work / "controller.log") as controller:
                port = free_port()
                config = phones_manager_toml(work / "manager.toml", hall_config=hall, broker=broker, port=port,
                                             state_dir=work / "manager", max_connections=options.phones + 100)
                with ManagerProcess(config=config, port=port, log_path=work / "manager.log") as manager:
                    return measure(options, broker=broker, controller=controller, manager=manager, work=work)
        except BaseException:
            kept = ROOT / "bench" / "results" / "phones_bench-failed"
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(work, kept, ignore=shutil.ignore_patterns("*.sqlite3*", "data"))
            sys.stderr.write(f"logs kept in {kept}\n")
            raise


def measure(options: Options, *, broker: PrivateBroker, controller: ControllerProcess, manager: ManagerProcess,
            work: Path) -> dict[str, Any]:
    if manager.proc is None or controller.proc is None:
        raise RuntimeError("the manager or the controller is not running")
    manager_pid = manager.proc.pid
    data: dict[str, Any] = {"options": asdict(options), "load_average_start": os.getloadavg()}
    data["manager_start"] = asdict(proc_sample(manager_pid))

    inbox = StampedInbox()
    subscriptions = [(TOPICS.dispenser_ticket(f"b{n}"), 1) for n in range(1, DISPENSERS + 1)]
    subscriptions += [(TOPICS.counter_reply(str(n)), 1) for n in range(1, options.counters + 1)]
    subscriptions.append((TOPICS.calls(), 1))
    link = MqttLink(client_id="bench-devices", broker=BrokerSettings(port=broker.port), inbox=inbox,
                    subscriptions=subscriptions)
    link.start()
    if not link.wait_up(10):
        raise RuntimeError("the bench's MQTT link did not come up")
    time.sleep(0.1)  # the SUBSCRIBE's way to the broker before the first request
    services = [sid for sid, _vi, _en in SERVICES[:options.services]]
    issued = time.monotonic()
    tickets = issue_tickets(link, inbox, count=options.phones, services=services)
    data["issue_s"] = time.monotonic() - issued
    token_of = {t.id: t.token or "" for t in tickets}
    lanes: dict[str, list[str]] = {sid: [] for sid in services}
    for ticket in tickets:
        lanes[ticket.service].append(ticket.token or "")
    time.sleep(1.0)
    data["manager_tickets_no_pages"] = asdict(proc_sample(manager_pid))

    followers = Followers(base_url=manager.url, tokens=[t.token or "" for t in tickets],
                          procs=options.client_procs, workdir=work)
    pids: dict[str, int | None] = {"manager": manager_pid, "broker": broker.pid,
                                   "controller": controller.proc.pid, "bench_driver": os.getpid()}
    try:
        connect = Meter(dict(pids)).start()
        data["connect_all_s"] = followers.start()
        pids.update({f"pages_program_{n}": pid for n, pid in enumerate(followers.pids)})
        data["connect_phase"] = connect.stop()
        time.sleep(1.0)
        data["manager_connected"] = asdict(proc_sample(manager_pid))

        probe = IdleProbe(manager.port, tickets[-1].token or "")
        probe.start()
        idle = Meter(dict(pids)).start()
        time.sleep(options.idle_s)
        data["idle_phase"] = idle.stop()
        data["idle_probe"] = probe.stop()
        data["manager_idle"] = asdict(proc_sample(manager_pid))

        busy = Meter(dict(pids)).start()
        calls = drive_calls(link, inbox, options=options, token_of=token_of)
        data["call_phase"] = busy.stop()
        data["manager_after_calls"] = asdict(proc_sample(manager_pid))
        pages = followers.stop()
    finally:
        followers.kill()
        link.stop()

    idle_from = data["idle_phase"]["wall_s"]
    data["pages_with_errors"] = {t[:6]: r.error for t, r in pages.items() if r.error is not None}
    data["page_bytes_total"] = sum(r.bytes for r in pages.values())
    data["beats_per_page_idle"] = _beats_in_idle(pages, probe.window_start_s, probe.window_start_s + idle_from)
    analysis = analyse(lanes, calls, {token: r.events for token, r in pages.items()})
    data["calls"] = [asdict(c) for c in calls]
    data["outcomes"] = [{**asdict(o), "page_delays_s": None, "missed": list(o.missed)[:20]}
                        for o in analysis.calls]
    data["analysis"] = _summary(analysis, pages, calls)
    return data


def _beats_in_idle(pages: dict[str, PageRecord], start_s: float, end_s: float) -> dict[str, Any]:
    beats = [sum(1 for t in r.beats if start_s <= t <= end_s) for r in pages.values()]
    statuses = [sum(1 for t, _s, _a in r.events if start_s <= t <= end_s) for r in pages.values()]
    return {"beats_min": min(beats, default=0), "beats_max": max(beats, default=0),
            "statuses_in_idle": sum(statuses)}


def _summary(analysis: Analysis, pages: dict[str, PageRecord], calls: Sequence[CallRecord]) -> dict[str, Any]:
    outcomes = analysis.calls
    replies = [None if c.reply_s is None else c.reply_s - c.sent_s for c in calls]
    call_msgs = [None if c.call_seen_s is None else c.call_seen_s - c.sent_s for c in calls]
    return {
        "called_page": spread(o.called_s for o in outcomes),
        "called_page_from_call": spread(o.called_from_call_s for o in outcomes),
        "fanout_all_pages": spread(o.fanout_s for o in outcomes),
        "fanout_each_page": spread(d for o in outcomes for d in o.page_delays_s),
        "previous_ended": spread(o.previous_ended_s for o in outcomes),
        "reply_at_counter": spread(replies),
        "call_from_broker": spread(call_msgs),
        "called_page_never": sum(1 for o in outcomes if o.called_s is None),
        "calls_without_reply": sum(1 for c in calls if c.reply_s is None),
        "pages_per_call": {"min": min((o.pages_reached for o in outcomes), default=0),
                           "max": max((o.pages_reached for o in outcomes), default=0),
                           "total": sum(o.pages_reached for o in outcomes)},
        "page_updates_expected": sum(o.pages_expected for o in outcomes),
        "page_updates_missed": sum(len(o.missed) for o in outcomes),
        "calls_with_missed_pages": sum(1 for o in outcomes if o.missed),
        "early": sum(len(o.early) for o in outcomes),
        "first_status_wrong": len(analysis.first_status_wrong),
        "ahead_went_up": analysis.ahead_went_up,
        "statuses_per_page": {"min": min((len(r.events) for r in pages.values()), default=0),
                              "max": max((len(r.events) for r in pages.values()), default=0),
                              "total": sum(len(r.events) for r in pages.values())},
    }


# --- the table ---------------------------------------------------------------------------------------------------


def _ms(figures: dict[str, Any]) -> str:
    if not figures.get("n"):
        return "none"
    return f"{figures['p50_ms']:.0f}/{figures['p95_ms']:.0f}/{figures['p99_ms']:.0f}/{figures['max_ms']:.0f} ms"


def rows_of(data: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    options = data["options"]
    summary = data["analysis"]
    calls = options["calls"]
    target = f"p99 ≤ {TARGET_P99_S * 1000:.0f} ms"

    def within(figures: dict[str, Any]) -> bool:
        return bool(figures.get("n")) and figures["p99_ms"] <= TARGET_P99_S * 1000

    start, connected, after = (data[k] for k in ("manager_tickets_no_pages", "manager_connected",
                                                 "manager_after_calls"))
    idle_phase, call_phase = data["idle_phase"], data["call_phase"]
    generator = [name for name in call_phase["cpu_s"] if name.startswith("pages_program")]
    gen_share = sum(call_phase["core_share"][n] for n in generator)
    gen_idle = sum(idle_phase["core_share"][n] for n in generator)
    probe = data["idle_probe"]
    per_page_kib = (connected["rss_kib"] - start["rss_kib"]) / options["phones"]
    missed = summary["page_updates_missed"] + summary["called_page_never"]
    return [
        ("pages following tickets", f"{options['phones']} ({len(data['pages_with_errors'])} failed)", "",
         not data["pages_with_errors"]),
        ("all pages' first status", f"{data['connect_all_s']:.1f} s", "", summary["first_status_wrong"] == 0),
        ("calls (p50/p95/p99/max below)", f"{calls}", "", summary["calls_without_reply"] == 0),
        ("next → called page", _ms(summary["called_page"]), target, within(summary["called_page"])),
        ("Call from broker → called page", _ms(summary["called_page_from_call"]), "", True),
        ("next → every other page (fan-out)", _ms(summary["fanout_all_pages"]), target,
         within(summary["fanout_all_pages"])),
        ("next → each other page", _ms(summary["fanout_each_page"]), "", True),
        ("next → previous ticket's page ended", _ms(summary["previous_ended"]), "", True),
        ("next → reply at the counter", _ms(summary["reply_at_counter"]), "", True),
        ("pages updated per call (min-max)",
         f"{summary['pages_per_call']['min']}-{summary['pages_per_call']['max']}", "", True),
        ("page updates missed", f"{missed} of {summary['page_updates_expected'] + calls}", "0", missed == 0),
        ("wrong counts (early, grew)", f"{summary['early']}, {summary['ahead_went_up']}", "", summary["early"] == 0),
        ("manager RSS: no pages / connected / after", f"{start['rss_kib'] / 1024:.1f} / "
         f"{connected['rss_kib'] / 1024:.1f} / {after['rss_kib'] / 1024:.1f} MB", "", True),
        ("manager RSS per page, peak RSS", f"{per_page_kib:.1f} KB, {after['hwm_kib'] / 1024:.1f} MB", "", True),
        ("manager threads: no pages / connected", f"{start['threads']} / {connected['threads']}", "", True),
        ("manager CPU idle, pages connected", f"{idle_phase['core_share']['manager'] * 100:.2f} % of a core",
         "", True),
        ("manager CPU during calls", f"{call_phase['core_share']['manager'] * 100:.1f} % of a core, "
         f"{call_phase['cpu_s']['manager'] / calls * 1000:.0f} ms/call", "", True),
        ("load generator CPU: idle / calls", f"{gen_idle * 100:.1f} / {gen_share * 100:.1f} % of a core",
         "", True),
        ("broker, controller CPU during calls", f"{call_phase['core_share']['broker'] * 100:.1f}, "
         f"{call_phase['core_share']['controller'] * 100:.1f} % of a core", "", True),
        ("machine busy: idle / calls", f"{idle_phase['machine_busy_share'] * 100:.0f} / "
         f"{call_phase['machine_busy_share'] * 100:.0f} % of 2 cores"
         if os.cpu_count() == 2 else f"{idle_phase['machine_busy_share'] * 100:.0f} / "
         f"{call_phase['machine_busy_share'] * 100:.0f} %", "", True),
        ("load average 1 min: start / idle / calls", f"{data['load_average_start'][0]:.2f} / "
         f"{idle_phase['load_average'][0]:.2f} / {call_phase['load_average'][0]:.2f}", "", True),
        ("idle page: bytes per minute", f"{probe['bytes_per_min']:.0f} B ({probe['bytes_per_write']:.0f} B every "
         f"{probe['period_s']:.1f} s)" if probe["period_s"] else
         f"{probe['bytes_per_min']:.0f} B ({probe['writes']} in {probe['window_s']:.0f} s)", "", True),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 phones, 50 calls, 5 s idle (a smoke run)")
    parser.add_argument("--phones", type=int)
    parser.add_argument("--calls", type=int)
    parser.add_argument("--services", type=int, help="services the tickets are spread over (default 1)")
    parser.add_argument("--counters", type=int)
    parser.add_argument("--gap-min-ms", type=float)
    parser.add_argument("--gap-max-ms", type=float)
    parser.add_argument("--idle-s", type=float, help="idle phase with every page connected (default 60)")
    parser.add_argument("--client-procs", type=int, help="programs sharing the pages (default 1)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--json", type=Path, help="also write the results there")
    parser.add_argument("--follow", help=argparse.SUPPRESS)  # one pages' program (internal)
    parser.add_argument("--tokens-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.follow:
        return follow_main(args.follow, args.tokens_file, args.out)
    options = QUICK if args.quick else Options()
    given = {"phones": args.phones, "calls": args.calls, "services": args.services, "counters": args.counters,
             "gap_min_s": None if args.gap_min_ms is None else args.gap_min_ms / 1000,
             "gap_max_s": None if args.gap_max_ms is None else args.gap_max_ms / 1000,
             "idle_s": args.idle_s, "client_procs": args.client_procs, "seed": args.seed}
    options = replace(options, **{k: v for k, v in given.items() if v is not None})
    options.check()
    data = run(options)
    rows = rows_of(data)
    path = report("phones_bench", rows, data)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, args.json)
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
