"""A hall's network made of Linux network namespaces, for the split-hall run (``bench/split_hall.py``).

Wiring: every Pi of the hall is a network namespace with one interface, ``eth0``, plugged into one switch: a
bridge ``br0`` in a namespace of its own, whose port for the Pi ``name`` is ``p-<name>``. All addresses are in
``10.77.0.0/24`` (namespaces are private, so two runs never see each other's). Names carry a tag unique to the
run (``hq<pid><random>-<name>``), and ``close()`` deletes every namespace the run made: deleting a namespace
deletes its veth ends, its bridge and its nftables tables with it, so nothing else needs undoing.

Faults, as a hall would have them:

* a pulled cable (``unplug``/``plug``): the switch's port goes down, so the Pi's ``eth0`` loses its carrier;
  packets are dropped, connects time out (no quick "unreachable"), and nothing tells either end;
* a partition (``partition``/``heal``): an nftables table in one Pi's namespace drops everything to and from
  one address, the link staying up (a switch misconfigured, a VLAN lost);
* Wi-Fi loss (``lossy``): an nftables table drops a share of ``eth0``'s packets each way, chosen by
  ``numgen random``. The kernel here has no ``netem``, so delay is not made in the kernel: see ``DelayRelay``.

Threads: ``enter(ns)`` moves the calling thread (only it) into a namespace; threads and processes it starts
afterwards are born there. That is how one Python process runs simulated devices on several Pis.
``DelayRelay`` is an asyncio TCP relay that holds each chunk for a random 20-100 ms in each direction, in order.

Needs root, ``ip`` (iproute2) and ``nft``; ``unavailable()`` says in one line why not, or ``None``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import random
import secrets
import shutil
import subprocess
import threading
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

SUBNET_PREFIX = "10.77.0."
PREFIX_LEN = 24
_CLONE_NEWNET = 0x40000000
_T = TypeVar("_T")


def unavailable() -> str | None:
    """Why namespaces cannot be made here (one line), or ``None`` if they can."""
    if os.geteuid() != 0:
        return "needs root to make network namespaces"
    for tool in ("ip", "nft", "mosquitto"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"needs {tool!r} on PATH"
    probe = f"hqprobe{os.getpid()}{secrets.token_hex(2)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip() or 'ip netns add failed'}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def enter(ns: str) -> None:
    """Move the calling thread into network namespace ``ns`` (made by ``ip netns add``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {ns}: {os.strerror(err)}")
    finally:
        os.close(fd)


def run_in(ns: str, fn: Callable[[], _T], *, timeout_s: float = 30.0) -> _T:
    """``fn()`` on a short-lived thread inside ``ns``; its result, or its exception raised here."""
    out: list[_T] = []
    err: list[BaseException] = []

    def target() -> None:
        try:
            enter(ns)
            out.append(fn())
        except BaseException as exc:  # handed to the caller's thread
            err.append(exc)

    thread = threading.Thread(target=target, name=f"in-{ns}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if err:
        raise err[0]
    if not out:
        raise TimeoutError(f"nothing returned within {timeout_s} s in {ns}")
    return out[0]


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")


class HallNetwork:
    """A switch and one namespace per Pi; ``add(name, host)`` plugs a Pi with address ``10.77.0.<host>``."""

    def __init__(self) -> None:
        self.tag = f"hq{os.getpid():x}{secrets.token_hex(2)}"
        self.switch = f"{self.tag}-sw"
        self.addresses: dict[str, str] = {}
        self._made: list[str] = []
        self._lossy: set[str] = set()

    def ns(self, name: str) -> str:
        return f"{self.tag}-{name}"

    def start(self) -> None:
        self._add_ns(self.switch)
        _run("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", self.switch, "link", "set", "br0", "up")

    def _add_ns(self, ns: str) -> None:
        _run("ip", "netns", "add", ns)
        self._made.append(ns)
        _run("ip", "-n", ns, "link", "set", "lo", "up")

    def add(self, name: str, host: int) -> str:
        """Make the Pi ``name`` plugged into the switch; returns its address."""
        ns = self.ns(name)
        port = self.port(name)
        self._add_ns(ns)
        _run("ip", "-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _run("ip", "-n", self.switch, "link", "set", port, "master", "br0", "up")
        address = f"{SUBNET_PREFIX}{host}"
        _run("ip", "-n", ns, "addr", "add", f"{address}/{PREFIX_LEN}", "dev", "eth0")
        _run("ip", "-n", ns, "link", "set", "eth0", "up")
        self.addresses[name] = address
        return address

    @staticmethod
    def port(name: str) -> str:
        port = f"p-{name}"
        if len(port) > 15:
            raise ValueError(f"Pi name {name!r} too long for an interface name")
        return port

    def unplug(self, name: str) -> None:
        """Pull ``name``'s cable: its switch port goes down."""
        _run("ip", "-n", self.switch, "link", "set", self.port(name), "down")

    def plug(self, name: str) -> None:
        _run("ip", "-n", self.switch, "link", "set", self.port(name), "up")

    def nft(self, name: str, script: str) -> None:
        """Run an nftables script inside ``name``'s namespace."""
        result = subprocess.run(["ip", "netns", "exec", self.ns(name), "nft", "-f", "-"], input=script,
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"nft in {name} failed: {result.stderr.strip()}")

    def lossy(self, name: str, *, percent: int) -> None:
        """Drop ``percent`` % of ``name``'s packets on ``eth0``, each way, at random (Wi-Fi-like loss)."""
        rules = {"inbound": ("input", "iifname"), "outbound": ("output", "oifname")}
        chains = "".join(f"  chain {chain} {{\n    type filter hook {hook} priority 0; policy accept;\n"
                         f'    {match} "eth0" numgen random mod 100 < {percent} counter drop\n  }}\n'
                         for chain, (hook, match) in rules.items())
        self.nft(name, "table inet hallq_wifi {\n" + chains + "}\n")
        self._lossy.add(name)

    def dropped(self, name: str) -> int:
        """Packets the Wi-Fi loss dropped so far on ``name`` (both ways)."""
        result = subprocess.run(["ip", "netns", "exec", self.ns(name), "nft", "list", "table", "inet", "hallq_wifi"],
                                capture_output=True, text=True, check=False)
        total = 0
        words = result.stdout.split()
        for n, word in enumerate(words[:-1]):
            if word == "packets" and words[n + 1].isdigit():
                total += int(words[n + 1])
        return total

    def partition(self, name: str, peer: str) -> None:
        """Drop everything between ``name`` and ``peer``'s address, in ``name``'s namespace; the link stays up."""
        address = self.addresses[peer]
        rules = {"inbound": ("input", "saddr"), "outbound": ("output", "daddr")}
        chains = "".join(f"  chain {chain} {{\n    type filter hook {hook} priority 0; policy accept;\n"
                         f"    ip {match} {address} drop\n  }}\n" for chain, (hook, match) in rules.items())
        self.nft(name, "table inet hallq_partition {\n" + chains + "}\n")

    def heal(self, name: str) -> None:
        self.nft(name, "delete table inet hallq_partition\n")

    def close(self) -> None:
        """Delete every namespace this network made (their veths, bridge and nftables tables go with them)."""
        for ns in reversed(self._made):
            result = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True, check=False)
            if result.returncode != 0:
                log.error("could not delete network namespace %s: %s", ns, result.stderr.strip())
        self._made.clear()


class DelayRelay:
    """A TCP relay inside namespace ``ns``, from ``listen`` to ``upstream`` (host, port), that holds each chunk
    it reads for a random ``delay_s`` (low, high) before writing it on, in each direction, never reordering.

    What it models: a link whose one-way latency wanders between 20 and 100 ms (Wi-Fi contention, a busy
    access point), in order, as TCP delivers it. What it does not: the delay is added above TCP, so the
    kernel's retransmission timers on the lossy link do not see it (loss is repaired at LAN speed, then
    delayed); there is no reordering, bandwidth limit or queueing; and the relay ends each TCP connection
    itself, so a cut between it and the client reaches the broker only through the relay (it closes the
    broker's side when the client's side ends, and vice versa). Put it at the broker's end of the link, so
    the client's own connection crosses the link under test.
    """

    def __init__(self, ns: str, *, listen: tuple[str, int], upstream: tuple[str, int], seed: int,
                 delay_s: tuple[float, float] = (0.02, 0.1)) -> None:
        self.ns = ns
        self.listen = listen
        self.upstream = upstream
        self.delay_s = delay_s
        self.rng = random.Random(seed)
        self.chunks = 0
        self.delay_total_s = 0.0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._run, name=f"delay-{ns}", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            enter(self.ns)  # before the loop makes any socket
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._relay, host=self.listen[0], port=self.listen[1]))
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer, up_writer}
        self._writers.update(pair)
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._writers.difference_update(pair)
            for w in pair:
                w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read chunks as they come; write each at its release time, which never goes back (order kept)."""
        loop = asyncio.get_running_loop()
        held: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def release() -> None:
            while (item := await held.get()) is not None:
                at, data = item
                wait = at - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        releaser = asyncio.ensure_future(release())
        last = 0.0
        try:
            while data := await reader.read(65536):
                delay = self.rng.uniform(*self.delay_s)
                last = max(last, loop.time() + delay)
                self.chunks += 1
                self.delay_total_s += delay
                held.put_nowait((last, data))
            held.put_nowait(None)
            await releaser
        except (ConnectionError, OSError):
            pass
        finally:
            releaser.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await releaser
            writer.transport.abort()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()

        with contextlib.suppress(RuntimeError, TimeoutError):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

