"""Counter ``next`` → the new number in the hall manager's live view, on loopback.

Run:  .venv/bin/python -m bench.manager_live [--quick] [--duration-s 60] [--interval-ms 500] [--sse-clients 20]

A private Mosquitto (the project's config), the hall controller and the manager's web service as processes, an
account made with ``hallq-manager users add --password-stdin``, and two kinds of readers at once:

* one headless Chromium (/usr/bin/chromium) logged in on the live view ``/``: a ``MutationObserver`` on the
  counters' table notes, at the next animation frame, the wall-clock time (``performance.timeOrigin + now()``)
  at which counter 1's row first shows each number;
* ``--sse-clients`` programs (aiohttp, in one asyncio thread), each logged in with its own session, reading
  ``/events`` and noting the time each ``live`` event first carries counter 1's new number.

A test client (counter 1) presses ``next`` every ``--interval-ms`` for ``--duration-s`` (``--quick``: 15 s) and
notes the wall-clock time it sent each; the tickets were issued before. Both clocks are this machine's, so the
difference is the whole path: controller, broker, manager, SSE, and for the page its render.

Target: p99 ≤ 1 s (docs/manager.md: "every change the broker brings is on the page within a second"), for the
page and for the SSE clients. Prints a table and saves bench/results/manager_live.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import re
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import percentile, report
from hallq import wire
from hallq.mqtt import BrokerSettings, LinkDown, LinkUp, Message, MqttLink
from hallq.topics import Topics
from testbed.broker import PrivateBroker, free_port
from testbed.controller import ControllerProcess
from testbed.display import Kiosk
from testbed.manager import ManagerProcess, add_user, manager_toml

TOPICS = Topics(hall="bench")
TARGET_P99_MS = 1000.0
PASSWORD = "mật khẩu đo hiệu năng"
USERS = ("lan", *(f"sse{n}" for n in range(1, 101)))

HALL_TOML = """
[hall]
id = "bench"
name_vi = "Trung tâm đo hiệu năng"
name_en = "Benchmark hall"
[controller]
state_dir = "{state_dir}"
log_level = "INFO"
trust_clock = "always"
[manager]
id = "manager"
[mqtt]
broker = "127.0.0.1:1"
[[services]]
id = "A"
name_vi = "Hộ tịch"
name_en = "Civil status"
prefix = "A"
last_number = 9999
[[services]]
id = "B"
name_vi = "Đất đai - Xây dựng"
name_en = "Land and construction"
prefix = "B"
[[counters]]
id = "1"
name = "Quầy 1"
services = ["A"]
[[counters]]
id = "2"
name = "Quầy 2"
services = ["A", "B"]
[[dispensers]]
id = "b1"
name = "Kiosk 1"
"""

# Counter 1's number as the page draws it; noted at the frame after the table changed.
OBSERVE_PAGE = """() => {
  window.seen = {};
  const body = document.querySelector('#counters tbody');
  const note = () => {
    const cell = body.querySelector('tr[data-counter="1"] td.number');
    const number = cell ? cell.textContent.split(' ')[0] : null;
    if (number && number !== '—' && !(number in window.seen)) {
      window.seen[number] = null;
      requestAnimationFrame(() => { window.seen[number] = performance.timeOrigin + performance.now(); });
    }
  };
  new MutationObserver(note).observe(body, {childList: true, subtree: true, characterData: true});
  note();
}"""


def _wait_reply(inbox: queue.Queue[Message | LinkUp | LinkDown], topic: str, request_id: str) -> Message:
    deadline = time.monotonic() + 5
    while True:
        item = inbox.get(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(item, Message) and item.topic == topic \
                and f'"request_id":"{request_id}"' in item.payload.decode():
            return item


class SseClients:
    """``count`` logged-in readers of ``/events`` on one asyncio loop in a thread of their own; ``seen[i]`` maps
    each number counter 1 showed to the wall-clock time (s) client ``i`` first received it."""

    def __init__(self, url: str, names: list[str], password: str) -> None:
        self.url = url
        self.names = names
        self.password = password
        self.seen: list[dict[str, float]] = [{} for _ in names]
        self.events = [0 for _ in names]
        self.ready = threading.Event()
        self.problem: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="sse-clients", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self.ready.wait(60) or self.problem is not None:
            raise RuntimeError(f"SSE clients did not start: {self.problem!r}")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # handed to the main thread, which reports it
            self.problem = exc
            self.ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        sessions = [aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), read_bufsize=2**20)
                    for _ in self.names]
        try:
            for session, name in zip(sessions, self.names, strict=True):
                await self._log_in(session, name)
            connected = [asyncio.Event() for _ in sessions]
            tasks = [asyncio.create_task(self._follow(i, session, connected[i])) for i, session in enumerate(sessions)]
            for event in connected:
                await event.wait()
            self.ready.set()
            await self._stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for session in sessions:
                await session.close()

    async def _log_in(self, session: aiohttp.ClientSession, name: str) -> None:
        async with session.get(self.url + "/login") as response:
            page = await response.text()
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
        if match is None:
            raise RuntimeError("no CSRF token on the login page")
        form = {"csrf_token": match.group(1), "next": "/", "name": name, "password": self.password}
        async with session.post(self.url + "/login", data=form, allow_redirects=False) as response:
            if response.status != 303:
                raise RuntimeError(f"login {name}: HTTP {response.status}")

    async def _follow(self, index: int, session: aiohttp.ClientSession, connected: asyncio.Event) -> None:
        seen = self.seen[index]
        async with session.get(self.url + "/events", timeout=aiohttp.ClientTimeout(total=None)) as response:
            connected.set()
            async for raw in response.content:
                if not raw.startswith(b"data: "):
                    continue
                at = time.time()
                self.events[index] += 1
                view = json.loads(raw[6:])
                for row in view["counters"]:
                    if row["counter"] == "1" and row["number"] and row["number"] not in seen:
                        seen[row["number"]] = at


def _cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    if pid is None:
        return float("nan")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(duration_s: float, interval_s: float, sse_clients: int) -> dict[str, Any]:
    calls = int(duration_s / interval_s)
    with tempfile.TemporaryDirectory(prefix="hallq-bench-manager-") as work_text:
        work = Path(work_text)
        state = work / "state"
        hall = work / "hall.toml"
        hall.write_text(HALL_TOML.format(state_dir=state), encoding="utf-8")
        with PrivateBroker(work / "broker") as broker, \
                ControllerProcess(config=hall, broker=broker, state_dir=state, log_path=work / "controller.log"):
            port = free_port()
            config = manager_toml(work / "manager.toml", hall_config=hall, broker=broker, port=port,
                                  state_dir=work / "manager")
            for name in USERS[:sse_clients + 1]:
                add_user(work / "manager" / "users.json", name, password=PASSWORD,
                         role="manager" if name == "lan" else "viewer")
            with ManagerProcess(config=config, port=port, log_path=work / "manager.log") as manager, \
                    Kiosk(width=1366, height=768) as kiosk:
                return measure(broker, manager, kiosk, calls=calls, interval_s=interval_s, sse_clients=sse_clients)


def measure(broker: PrivateBroker, manager: ManagerProcess, kiosk: Kiosk, *, calls: int, interval_s: float,
            sse_clients: int) -> dict[str, Any]:
    inbox: queue.Queue[Message | LinkUp | LinkDown] = queue.Queue()
    link = MqttLink(client_id="bench-counter", broker=BrokerSettings(port=broker.port), inbox=inbox,
                    subscriptions=[(TOPICS.dispenser_ticket("b1"), 1), (TOPICS.counter_reply("1"), 1)])
    link.start()
    link.wait_up(5)
    time.sleep(0.1)  # let the SUBSCRIBE reach the broker before the first request
    for _ in range(calls):
        rid = uuid.uuid4().hex
        link.publish(TOPICS.dispenser_request("b1"), wire.TicketRequest(request_id=rid, service="A").encode())
        _wait_reply(inbox, TOPICS.dispenser_ticket("b1"), rid)

    kiosk.open(manager.url + "/")
    kiosk.tab.fill("input[name=name]", "lan")
    kiosk.tab.fill("input[name=password]", PASSWORD)
    kiosk.tab.click("button[type=submit]")
    kiosk.wait_for("() => document.querySelectorAll('#counters tbody tr').length === 2 "
                   "&& document.getElementById('link').dataset.state === 'up'", timeout_s=10)
    kiosk.evaluate(OBSERVE_PAGE)
    readers = SseClients(manager.url, list(USERS[1:sse_clients + 1]), PASSWORD)
    if sse_clients:
        readers.start()
    pid = manager.proc.pid if manager.proc is not None else None
    cpu_before, wall_before = _cpu_s(pid), time.monotonic()

    sent: dict[str, float] = {}
    reply_ms: list[float] = []
    next_at = time.monotonic()
    for _ in range(calls):
        next_at += interval_s
        rid = uuid.uuid4().hex
        sent_at = time.time()
        link.publish(TOPICS.counter_command("1"), wire.CounterCommand(request_id=rid, action="next").encode())
        reply = wire.CounterReply.decode(_wait_reply(inbox, TOPICS.counter_reply("1"), rid).payload)
        reply_ms.append((time.time() - sent_at) * 1000)
        if reply.ticket is None:
            raise RuntimeError(f"next called nobody: {reply.error}")
        sent[reply.ticket.number] = sent_at
        time.sleep(max(0.0, next_at - time.monotonic()))
    time.sleep(1.5)  # the last number's way to every reader
    cpu_s, wall_s = _cpu_s(pid) - cpu_before, time.monotonic() - wall_before
    page_seen: dict[str, float | None] = kiosk.evaluate("() => window.seen")
    if sse_clients:
        readers.stop()
    link.stop()

    page_ms = [page_seen[n] - t * 1000 for n, t in sent.items() if page_seen.get(n) is not None]  # type: ignore[operator]
    sse_ms = [(seen[n] - t) * 1000 for seen in readers.seen for n, t in sent.items() if n in seen]
    return {"calls": calls, "interval_ms": interval_s * 1000, "sse_clients": sse_clients,
            "page_ms": page_ms, "page_missed": len(sent) - len(page_ms),
            "sse_ms": sse_ms, "sse_missed": len(sent) * sse_clients - len(sse_ms),
            "sse_events_per_client": readers.events, "reply_ms": reply_ms,
            "manager_cpu_s": cpu_s, "manager_cpu_share": cpu_s / wall_s}


def _rows(name: str, samples: list[float], missed: int) -> list[tuple[str, str, str, bool]]:
    if not samples:
        return [(f"next → {name}", "nothing seen", f"p99 ≤ {TARGET_P99_MS:.0f} ms", False)]
    p99 = percentile(samples, 99)
    return [
        (f"next → {name}, p50", f"{percentile(samples, 50):.1f} ms", "", True),
        (f"next → {name}, p99", f"{p99:.1f} ms", f"≤ {TARGET_P99_MS:.0f} ms", p99 <= TARGET_P99_MS),
        (f"next → {name}, max", f"{max(samples):.1f} ms", "", True),
        (f"next → {name}, numbers never seen", str(missed), "0", missed == 0),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="15 s instead of 60 s")
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--interval-ms", type=float, default=500.0, help="between two presses of next")
    parser.add_argument("--sse-clients", type=int, default=20, choices=range(101), metavar="0-100")
    args = parser.parse_args()
    data = run(15.0 if args.quick else args.duration_s, args.interval_ms / 1000, args.sse_clients)
    rows = [*_rows("the live page (Chromium)", data["page_ms"], data["page_missed"])]
    if args.sse_clients:
        rows += _rows(f"{args.sse_clients} SSE clients", data["sse_ms"], data["sse_missed"])
    reply = data["reply_ms"]
    rows.append(("next → reply at the counter, p50 / p99",
                 f"{percentile(reply, 50):.2f} / {percentile(reply, 99):.2f} ms", "", True))
    rows.append(("manager's CPU while measured", f"{data['manager_cpu_share'] * 100:.1f} % of a core", "", True))
    summary = {name: {"p50_ms": percentile(data[key], 50), "p99_ms": percentile(data[key], 99),
                      "max_ms": max(data[key], default=float("nan"))}
               for name, key in (("page", "page_ms"), ("sse", "sse_ms"), ("reply", "reply_ms")) if data[key]}
    report("manager_live", rows, {"summary": summary, "target_p99_ms": TARGET_P99_MS, **data})
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
