"""The thin, typed adapter around paho-mqtt that every hallq role uses.

Wiring: one ``MqttLink`` per device process, with client id = username = the device id (two clients with
the same id knock each other off the broker); the controller has one per device it receives from. paho's
network thread calls our callbacks; they only put ``Message``, ``LinkUp`` and ``LinkDown`` items on the inbox
the caller gave us and return, so a slow consumer (SQLite, a printer, a voice) never stalls keepalives or
acks. (The controller drives all its links from its one thread instead: see "Threads" below.)

Latency: neither paho nor Mosquitto disables Nagle's algorithm, which costs ~44 ms per hop on loopback.
``on_connect`` sets TCP_NODELAY on paho's socket; the broker config sets ``set_tcp_nodelay true``.

Acknowledgements: by default paho acknowledges a QoS 1 message as soon as it arrives. A consumer that must
not lose a message it has not yet handled (the controller) passes ``manual_ack=True`` and calls ``ack()``
once the message's outcome is durable; the broker redelivers what was never acknowledged.

Presence: the link publishes a retained ``online`` payload once subscribed and registers a retained ``offline``
last will; ``stop()`` publishes ``offline`` itself because a clean disconnect does not fire the will.

Readiness: ``LinkUp`` is queued, ``up`` set and ``online`` published once the broker acknowledged the subscriptions
(SUBACK), not at CONNACK: a consumer that reports "ready", and a client it announced itself to, receive everything
published after that. ``up`` is cleared when the connection is lost (``LinkDown``).

Threads: ``start()`` gives the link a paho network thread of its own (a device process has one link). A process
with many links (the controller) drives them all from one thread instead: ``hallq.linkloop.LinkLoop`` calls the
``connect_now``/``read``/``write``/``keepalive`` methods below, and then every callback and every publish runs on
that thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import queue
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from hallq.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Where and how to reach the broker. ``tls`` with ``ca_file`` verifies the broker's certificate.

    ``password_file`` is read when a link is made (``password_now``), not when the config is checked: under
    systemd it is a credential (``/run/credentials/UNIT/...``) that exists only while the unit runs.
    """

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    password_file: str | None = None
    tls: bool = False
    ca_file: str | None = None
    # Measured across a network of namespaces (docs/reliability.md, "A hall across a real network"): a client
    # notices a dead link one to two keepalives after it last heard the broker, and the broker publishes its last
    # will after about one and a half. At 15 s, kiosks noticed a pulled cable 18-30 s late (presses meanwhile went
    # unanswered) and their wills came 20-27 s late; at 5 s, 7-11 s and 8-12 s, for one ping each way every 5 s.
    # Kiosks on a 5 % lossy link were never dropped by it at 5 s (TCP repairs a lost ping within a second).
    keepalive_s: int = 5
    # The ceiling of paho's reconnect backoff (1, 2, 4 ... s); while a cable is out each attempt also waits out
    # paho's 5 s connect timeout. At 10 s clients came back up to 8 s (once 24 s) after their link; at 3 s within 5 s.
    reconnect_max_s: int = 3

    def with_address(self, address: str) -> BrokerSettings:
        """A copy pointing at ``HOST:PORT`` (the ``--broker`` option); raises ValueError if malformed."""
        host, port = parse_address(address)
        return dataclasses.replace(self, host=host, port=port)

    def password_now(self) -> str | None:
        """The password: inline, or read from ``password_file`` now; ConfigError naming the file if unreadable."""
        if self.password_file is None:
            return self.password
        try:
            return Path(self.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(self.password_file, "", f"cannot read the MQTT password file ([mqtt] password_file): "
                                                      f"{exc.strerror}") from None


def parse_address(address: str) -> tuple[str, int]:
    """``"127.0.0.1:1883"`` → ``("127.0.0.1", 1883)``; ``[::1]:1883`` works too. ValueError if malformed."""
    host, sep, port_text = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"address {address!r} is not HOST:PORT")
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class Message:
    """A message received on a subscribed topic (``mid`` and ``qos`` for ``MqttLink.ack``; ``source`` is the
    client id of the link that received it, for a process with several links)."""

    topic: str
    payload: bytes
    retain: bool = False
    mid: int = 0
    qos: int = 0
    source: str = ""


@dataclass(frozen=True, slots=True)
class LinkUp:
    """The link (re)connected and re-subscribed."""


@dataclass(frozen=True, slots=True)
class LinkDown:
    """The link lost the broker; paho reconnects by itself, unless ``taken_over`` (see ``MqttLink``)."""

    reason: str
    taken_over: bool = False


InboxItem = Message | LinkUp | LinkDown


class Inbox(Protocol):
    """Where a link puts what it receives: a ``queue.Queue`` or anything with the same ``put``."""

    def put(self, item: Any) -> None: ...  # pragma: no cover


class MqttLink:
    """One MQTT v5 connection with automatic reconnection, presence and TCP_NODELAY.

    ``subscriptions`` are (topic filter, QoS) pairs, subscribed again on every (re)connect. With
    ``session_expiry_s`` > 0 the broker keeps the session (subscriptions and QoS 1 messages) while the
    process is away, so requests published during a restart are delivered when it is back.
    ``receive_maximum`` (MQTT 5) caps the QoS 1 messages the broker sends before we acknowledge them.
    ``quiet`` logs routine connects and losses at DEBUG (a process with many links logs a summary itself);
    refusals by the broker are logged at ERROR either way. ``unsubscribe`` lists filters to drop on every
    connect: those a resumed session may still hold from an older version of the program.

    Session taken over: another connection logged in with our client id (the same device running twice, or two
    desks sharing one account behind ``use_username_as_clientid``), and the broker closed ours. Reconnecting takes
    the session back, and the two push each other off, once a second, for as long as both run. With
    ``stop_when_taken_over`` the link gives up instead: it logs why at ERROR, queues ``LinkDown(taken_over=True)``
    and never connects again (``stop()`` still ends it cleanly, and publishes no ``offline`` over the other
    connection's presence). Without it the link reconnects as after any loss, logging a known takeover at ERROR.

    How the link knows: MQTT 5 has a DISCONNECT reason for it (142), but Mosquitto 2.0.11 closes the connection
    without sending it (paho reports an unspecified error, not from the server), and publishes the pushed-off
    connection's will. So the link also reads its own presence topic: a payload there other than its own
    ``online``/``offline`` is another process with this id, and a connection lost within ``TAKEN_OVER_WINDOW_S``
    of seeing one counts as taken over. Both payloads must then name the process (host, pid). Between two such
    links on that broker the newcomer stops: connecting, it reads the other's will (or ``online``); the other,
    pushed off without being told why, reconnects after a second and pushes the newcomer off inside the window.
    (A broker that sends 142 makes the one pushed off first stop at once.) A restarted process may read its
    predecessor's will: it stops only if it also loses its connection within the window. Without a told reason
    or a distinct presence, two links fight as before.
    """

    def __init__(
        self,
        *,
        client_id: str,
        broker: BrokerSettings,
        inbox: queue.Queue[Any] | Inbox,
        subscriptions: Sequence[tuple[str, int]] = (),
        presence_topic: str | None = None,
        online_payload: bytes = b"",
        offline_payload: bytes = b"",
        session_expiry_s: int = 0,
        manual_ack: bool = False,
        receive_maximum: int | None = None,
        quiet: bool = False,
        unsubscribe: Sequence[str] = (),
        stop_when_taken_over: bool = False,
        gone: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.client_id = client_id
        self.broker = broker
        self._inbox = inbox
        self._subscriptions = list(subscriptions)
        self._stop_when_taken_over = stop_when_taken_over
        # Tells a presence left by a process that no longer runs (this machine's previous run, before a power
        # cut), which is no sign of a takeover.
        self._gone = gone
        if stop_when_taken_over:
            if presence_topic is None:
                raise ValueError("stop_when_taken_over needs a presence topic to watch")
            self._subscriptions.append((presence_topic, 1))
        self._other_presence_s: float | None = None
        self._other_presence = b""
        self._presence_topic = presence_topic
        self._online_payload = online_payload
        self._offline_payload = offline_payload
        self._session_expiry_s = session_expiry_s
        self._receive_maximum = receive_maximum
        self._unsubscribe = list(unsubscribe)
        self._routine_level = logging.DEBUG if quiet else logging.INFO
        self._trouble_level = logging.DEBUG if quiet else logging.WARNING
        self._subscribe_mid: int | None = None
        self.up = threading.Event()
        self._connected = False  # CONNACK received and not lost since: a loss then is worth a log line
        self.given_up = False  # taken over with stop_when_taken_over: never connects again
        self.received = 0  # messages put on the inbox so far (LinkLoop reads while they keep coming)
        self._last_failure = ""
        self._last_failure_logged = 0.0
        self.manual_ack = manual_ack
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=manual_ack,
        )
        if broker.username is not None:
            self._client.username_pw_set(broker.username, broker.password_now())
        if broker.tls:
            self._client.tls_set(ca_certs=broker.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        if presence_topic is not None:
            self._client.will_set(presence_topic, offline_payload, qos=1, retain=True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=broker.reconnect_max_s)
        # Bounded: a device offline for hours must not grow without limit; QoS 1 beyond this is refused.
        self._client.max_queued_messages_set(10_000)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_connect_fail = self._on_connect_fail

    # --- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background on a thread of the link's own; returns at once. Progress arrives on the
        inbox as LinkUp/LinkDown."""
        self.configure()
        self._client.loop_start()

    def configure(self, *, connect_timeout_s: float = 5.0) -> None:
        """Set where and how to connect, without connecting (``start()`` or a ``LinkLoop`` connects); a connect
        attempt (TCP and TLS) gives up after ``connect_timeout_s``."""
        self._client.connect_timeout = connect_timeout_s
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if self._session_expiry_s > 0:
            props.SessionExpiryInterval = self._session_expiry_s
        if self._receive_maximum is not None:
            props.ReceiveMaximum = self._receive_maximum
        self._client.connect_async(
            self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s,
            clean_start=self._session_expiry_s == 0, properties=props,
        )

    def wait_up(self, timeout_s: float) -> bool:
        """Wait until the link is up (connected and subscribed); False after ``timeout_s``."""
        return self.up.wait(timeout_s)

    def stop(self, *, timeout_s: float = 2.0) -> None:
        """Publish ``offline`` (a clean disconnect does not fire the will), disconnect, stop the thread."""
        self.begin_stop(timeout_s=timeout_s)
        self.finish_stop()

    def begin_stop(self, *, timeout_s: float = 2.0) -> None:
        """The first half of ``stop()``: offline presence and disconnect. A link waiting to reconnect notices
        within a second; stopping many links, begin all of them before finishing any (``stop_all``)."""
        if (self._presence_topic is not None and self._connected
                and not self.publish_and_wait(self._presence_topic, self._offline_payload, retain=True,
                                              timeout_s=timeout_s)):
            log.debug("offline presence not confirmed for client=%s", self.client_id)
        self._connected = False  # before disconnecting: a planned stop is not logged as a lost broker
        self.up.clear()
        self._client.disconnect()

    def finish_stop(self) -> None:
        """The second half of ``stop()``: wait for paho's thread to end."""
        self._client.loop_stop()

    # --- publishing ------------------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Queue a message. QoS 1 while disconnected is kept by paho and sent after reconnecting."""
        self._client.publish(topic, payload, qos=qos, retain=retain)

    def publish_and_wait(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                         timeout_s: float = 2.0) -> bool:
        """Publish and wait until the broker acknowledged it. Never call this from a paho callback."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def ack(self, message: Message) -> None:
        """Acknowledge a QoS 1 message (with ``manual_ack``): the broker may forget it now.

        Until then the broker keeps it in the session and delivers it again after a reconnect, so a consumer
        that acknowledges only what it has durably handled loses nothing when it crashes. Thread-safe.
        """
        if self.manual_ack and message.qos > 0:
            self._client.ack(message.mid, message.qos)

    def set_presence(self, payload: bytes) -> None:
        """Replace the retained online payload (e.g. a dispenser's printer state changed)."""
        self._online_payload = payload
        if self._presence_topic is not None:
            self.publish(self._presence_topic, payload, qos=1, retain=True)

    # --- driven by a LinkLoop (hallq/linkloop.py) instead of a thread of the link's own ----------------

    def socket(self) -> Any:
        """The connection's socket (or TLS socket), None while not connected."""
        return self._client.socket()

    def connect_now(self) -> bool:
        """One connection attempt, blocking up to the ``connect_timeout_s`` given to ``configure``; False, logged,
        if it failed. The CONNACK and everything after it arrive through ``read()``."""
        try:
            self._client.reconnect()
        except (OSError, ValueError) as exc:
            cause = _connect_failure_cause(exc)
            if self._should_log_failure(cause):
                log.log(self._trouble_level, "cannot reach broker %s:%s client=%s: %s; retrying", self.broker.host,
                        self.broker.port, self.client_id, cause)
            return False
        return True

    def read(self, *, more: Callable[[], bool] = lambda: True) -> bool:
        """Read what the socket has: one packet, then more while they are messages and ``more()`` allows.
        False if the connection was lost (``LinkDown`` is then on the inbox)."""
        while True:
            before = self.received
            if self._client.loop_read() != paho.MQTT_ERR_SUCCESS or self._client.socket() is None:
                return False
            # No new message: the socket is drained, or it was an acknowledgement; a level-triggered poll comes
            # back for the rest. A message: there may be more, read them now while the buffers are warm.
            if self.received == before or not more():
                return True

    def write(self) -> bool:
        """Send what paho could not send at once; False if the connection was lost."""
        return self._client.loop_write() == paho.MQTT_ERR_SUCCESS and self._client.socket() is not None

    def wants_write(self) -> bool:
        return self._client.want_write()

    def keepalive(self) -> bool:
        """Ping when due and notice a broker that stopped answering; False if the connection is lost."""
        return self._client.loop_misc() == paho.MQTT_ERR_SUCCESS

    def pending_bytes(self) -> int:
        """Bytes a TLS socket has decrypted but not handed out yet: the kernel will not say it is readable."""
        sock = self._client.socket()
        pending = getattr(sock, "pending", None)
        return int(pending()) if callable(pending) else 0

    def disconnect(self) -> None:
        """Publish ``offline`` (if up) and disconnect, without waiting: a ``LinkLoop`` sends both."""
        if self._presence_topic is not None and self._connected:
            self.publish(self._presence_topic, self._offline_payload, retain=True)
        self._connected = False
        self.up.clear()
        self._client.disconnect()

    # --- paho callbacks: paho's thread (or the LinkLoop's); they only enqueue -----------------------------

    def _on_connect(self, client: paho.Client, _userdata: Any, _flags: Any, reason_code: ReasonCode,
                    _properties: Any) -> None:
        if reason_code.is_failure:
            if self._should_log_failure(f"refused: {reason_code}"):
                log.error("broker refused connection client=%s reason=%s (check credentials and ACL)",
                          self.client_id, reason_code)
            return
        self._last_failure = ""
        sock = client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # SUBSCRIBE goes out before anyone is told we are connected: a request published after ``connected`` is
        # set reaches the broker after it, so its answer finds the subscription in place.
        if self._unsubscribe:
            client.unsubscribe(list(self._unsubscribe))
        if self._subscriptions:
            _result, self._subscribe_mid = client.subscribe(list(self._subscriptions))
        log.log(self._routine_level, "connected to broker %s:%s client=%s", self.broker.host, self.broker.port,
                self.client_id)
        self._connected = True
        if not self._subscriptions:
            self._up(client)

    def _on_subscribe(self, client: paho.Client, _userdata: Any, mid: int, reason_codes: list[ReasonCode],
                      _properties: Any) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [topic for (topic, _qos), code in zip(self._subscriptions, reason_codes, strict=False)
                   if code.is_failure]
        if refused:
            log.error("broker refused the subscriptions %s client=%s (check the ACL)", ", ".join(refused),
                      self.client_id)
        self._up(client)

    def _up(self, client: paho.Client) -> None:
        """Subscribed (or nothing to subscribe): tell the consumer first, then the hall that we are online, so
        that whoever acts on our presence finds us ready."""
        self.up.set()
        self._inbox.put(LinkUp())
        if self._presence_topic is not None:
            client.publish(self._presence_topic, self._online_payload, qos=1, retain=True)

    def _on_disconnect(self, client: paho.Client, _userdata: Any, _flags: Any, reason_code: ReasonCode,
                       _properties: Any) -> None:
        was_connected = self._connected
        self._connected = False
        self.up.clear()
        if self._stop_when_taken_over and was_connected and (
            reason_code == _SESSION_TAKEN_OVER
            or (self._other_presence_s is not None and time.monotonic() - self._other_presence_s < TAKEN_OVER_WINDOW_S)
        ):
            # From paho's own thread loop_stop() only asks the loop to end (it cannot join itself): the loop ends
            # instead of reconnecting, whether the broker sent DISCONNECT or dropped the connection (after which
            # paho would override a disconnect() made here with "connection lost", and reconnect).
            client.loop_stop()
            self.given_up = True
            log.error("another client connected with client id %s and took this connection over; not reconnecting, "
                      "so as not to take it back (two processes with one id knock each other off: is the same device "
                      "running twice, or do two desks share one account?); the other's presence: %s", self.client_id,
                      self._other_presence.decode("utf-8", "replace")[:200] or "-")
            self._inbox.put(LinkDown(str(reason_code), taken_over=True))
            return
        if reason_code == _SESSION_TAKEN_OVER:
            log.error("another client connected with client id %s and took this connection over; two processes "
                      "with one id knock each other off (is the same device running twice? a listener with "
                      "use_username_as_clientid gives every connection of one account the same id)", self.client_id)
        if was_connected:
            log.log(self._trouble_level, "lost broker %s:%s client=%s reason=%s; reconnecting", self.broker.host,
                    self.broker.port, self.client_id, reason_code)
            self._inbox.put(LinkDown(str(reason_code)))

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        # paho calls this inside its ``except OSError`` block: the exception tells the operator why.
        cause = _connect_failure_cause(sys.exc_info()[1])
        if self._should_log_failure(cause):
            log.log(self._trouble_level, "cannot reach broker %s:%s client=%s: %s; retrying", self.broker.host,
                    self.broker.port, self.client_id, cause)

    def _should_log_failure(self, cause: str) -> bool:
        """A failure is logged when it changes, and again once a minute while it lasts (retries are frequent)."""
        now = time.monotonic()
        if cause != self._last_failure or now - self._last_failure_logged > 60:
            self._last_failure, self._last_failure_logged = cause, now
            return True
        return False

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        if self._stop_when_taken_over and message.topic == self._presence_topic:
            payload = bytes(message.payload)
            if payload and payload not in (self._online_payload, self._offline_payload) and not (
                    self._gone is not None and self._gone(payload)):
                self._other_presence_s, self._other_presence = time.monotonic(), payload
            return
        self.received += 1
        self._inbox.put(Message(topic=message.topic, payload=bytes(message.payload), retain=bool(message.retain),
                                mid=message.mid, qos=message.qos, source=self.client_id))


_SESSION_TAKEN_OVER = 142  # MQTT 5 DISCONNECT reason "Session taken over"
# A connection lost this soon after another process's presence showed on our own presence topic was taken over:
# the other, pushed off by our connecting, reconnects after paho's first delay (1 s) and pushes us off in turn.
TAKEN_OVER_WINDOW_S = 5.0


class LoopInbox(queue.Queue[Any]):
    """An inbox for a process that runs an asyncio event loop (the display, the manager): ``put``, called from
    paho's thread, hands each item to ``target`` on the loop. A subclass rather than a forwarding thread: one hop
    less between the broker and the page."""

    def __init__(self, loop: asyncio.AbstractEventLoop, target: asyncio.Queue[Any]) -> None:
        super().__init__()
        self._loop = loop
        self._target = target

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop already closed: we are shutting down
            self._loop.call_soon_threadsafe(self._target.put_nowait, item)


def stop_all(links: Sequence[MqttLink]) -> None:
    """Stop several links in about the time of one (each may be waiting up to a second to reconnect)."""
    for link in links:
        link.begin_stop()
    for link in links:
        link.finish_stop()


def _connect_failure_cause(exc: BaseException | None) -> str:
    """What went wrong connecting, in words an operator can act on."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({exc.verify_message}); check [mqtt] ca_file and the broker's names"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason}); is the port a TLS listener?"
    if isinstance(exc, ConnectionResetError):
        return "the broker closed the connection (TLS on a plain port, or plain on a TLS port? check [mqtt] tls)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the broker running and listening on that port?)"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer (network down or a firewall in between?)"
    if isinstance(exc, OSError):
        return exc.strerror or exc.__class__.__name__
    return "unknown error"
