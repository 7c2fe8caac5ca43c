"""The controller's broker connections: its own, one per configured device, one for ids the config does not know.

Theory of operation: every configured device's messages arrive on a connection of the controller's own
(``{client_id}.dispenser.{id}``, ``{client_id}.counter.{id}``, ``{client_id}.manager.{id}``), which puts them in
that device's inbox (``intake.py``): the broker queues each connection apart, so one device's flood never delays
another's request. One more connection (``{client_id}.others``) subscribes to every device topic, to answer ids
the config does not know (``unknown_dispenser``, ``unknown_counter``). On a provisioned broker its account is
denied the configured devices' topics (``provision.py``), so the broker never sends it what a device's own
connection already receives; on an open broker (the simulated hall, most tests) it does, and ``admission.py``
drops those. The controller's own connection (``{client_id}``) subscribes to nothing and publishes everything.

All of them are driven from the controller's one thread by a ``LinkLoop`` (``hallq/linkloop.py``): no thread
per device, and a reply is written to the socket by the thread that decided it.

Online: the controller says ``online`` (and READY to systemd the first time) once its own connection is up and
every device connection has subscribed, or ``GRACE_S`` after its own came up: a device whose connection cannot
come up (an account missing from the broker) must not keep the whole hall offline. Device connections down
for ``DOWN_REPORT_S`` while the own one is up are reported, once a minute.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from hall_controller.config import ControllerConfig
from hall_controller.intake import Intake
from hall_controller.limits import Throttle
from hallq import wire
from hallq.linkloop import LinkLoop
from hallq.mqtt import Message, MqttLink
from hallq.topics import Topics

log = logging.getLogger(__name__)

# Logged once every device connection has subscribed; tests and tools wait for it.
READY_LOG = "controller ready"
DOWN_REPORT_S = 10.0
GRACE_S = 10.0
SESSION_EXPIRY_S = 3600  # requests sent while the controller restarts wait in the broker for it


class Connections:
    """The controller's links and the loop that drives them; ``intake`` receives what they read."""

    def __init__(self, config: ControllerConfig, topics: Topics, intake: Intake, *, receive_maximum: int) -> None:
        t = topics
        self.topics = topics
        self.intake = intake
        self._online_payload = wire.Presence(state="online", role="controller").encode()
        self._offline_payload = wire.Presence(state="offline", role="controller").encode()
        self.own = MqttLink(
            client_id=config.client_id, broker=config.broker, inbox=intake.inbox(config.client_id, control=True),
            presence_topic=topics.status(config.client_id),
            # "offline" until every device connection has subscribed (then ``announce`` says "online"): whoever
            # waits for the controller to be online can count on its requests being received.
            online_payload=self._offline_payload, offline_payload=self._offline_payload,
            # This connection subscribes to nothing. It resumes its session, and drops the filters an older
            # version subscribed on it, so that what that session still held is handled, not discarded.
            session_expiry_s=SESSION_EXPIRY_S, manual_ack=True,
            unsubscribe=[t.all_dispenser_requests(), t.all_dispenser_printed(), t.all_counter_commands()],
        )
        self.devices: dict[str, MqttLink] = {}
        self.others_name = ""
        for conn in config.intakes():
            broker = config.intake_broker(conn)
            inbox = intake.inbox(conn.name)
            if conn.role == "others":
                # QoS 0 and no session: best effort, a misconfigured device asks again.
                self.others_name = conn.name
                self.devices[conn.name] = MqttLink(
                    client_id=conn.name, broker=broker, inbox=inbox, quiet=True,
                    subscriptions=[(t.all_dispenser_requests(), 0), (t.all_dispenser_printed(), 0),
                                   (t.all_counter_commands(), 0)])
                continue
            subscriptions = {
                "dispenser": [(t.dispenser_request(conn.device), 1), (t.dispenser_printed(conn.device), 1)],
                "counter": [(t.counter_command(conn.device), 1)],
                "manager": [(t.manager_command(conn.device), 1)],
            }[conn.role]
            self.devices[conn.name] = MqttLink(
                client_id=conn.name, broker=broker, inbox=inbox, subscriptions=subscriptions,
                session_expiry_s=SESSION_EXPIRY_S,
                # Acknowledged only once its outcome is stored and answered: a message received but not stored
                # before a crash is delivered again after the restart.
                manual_ack=True, receive_maximum=receive_maximum, quiet=True,
            )
        self._by_id = {config.client_id: self.own, **self.devices}
        self.loop = LinkLoop([self.own, *self.devices.values()], may_read=intake.accepts)
        self.online = False
        self._ready_said = False
        self._own_up_since: float | None = None
        self._down_since: float | None = None
        self._down_log: Throttle[str] = Throttle(window_s=60.0, burst=1)

    @property
    def up(self) -> bool:
        """Whether the controller's own connection, which publishes, is up."""
        return self.own.up.is_set()

    def start(self) -> None:
        self.loop.start()

    def poll(self, timeout_s: float) -> None:
        """Read and write what the sockets allow, waiting up to ``timeout_s`` for something to happen."""
        self.loop.poll(timeout_s)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.own.publish(topic, payload, retain=retain)

    def ack(self, messages: Iterable[Message]) -> None:
        """These messages have their outcome stored and their answer sent: the broker may forget them."""
        for message in messages:
            self._by_id[message.source].ack(message)

    def stop(self) -> None:
        self.loop.stop()

    def went_down(self) -> None:
        """The own connection was lost: "online" again only once every connection is back."""
        if self.online:
            self.online = False
            self.own.set_presence(self._offline_payload)

    def announce(self, now_s: float) -> bool:
        """Say ``online`` when due (see the module doc); True the first time, when the caller tells systemd."""
        if not self.up:
            self._own_up_since = None
            return False
        if self._own_up_since is None:
            self._own_up_since = now_s
        down = [name for name in self.intake.disconnected() if name != self.own.client_id]
        first = False
        if not self.online and (not down or now_s - self._own_up_since >= GRACE_S):
            self.online = True
            self.own.set_presence(self._online_payload)
            if not self._ready_said:
                self._ready_said = first = True
                log.info("%s: connected to the broker and receiving from %d of %d devices, each on a connection "
                         "of its own", READY_LOG, len(self.devices) - 1 - len(down), len(self.devices) - 1)
        self._report_down(down, now_s)
        return first

    def _report_down(self, down: list[str], now_s: float) -> None:
        if not down:
            if self._down_since is not None and now_s - self._down_since >= DOWN_REPORT_S:
                log.info("every device connection is up again")
            self._down_since = None
            return
        if self._down_since is None:
            self._down_since = now_s
        elif now_s - self._down_since >= DOWN_REPORT_S and self._down_log.allow("down", now_s):
            log.warning("%d device connections down for %.0f s while the controller's own is up: %s; those "
                        "devices get no answers. Check the broker's log (max_connections? refused logins? "
                        "run provision again and reload the broker)", len(down), now_s - self._down_since,
                        ", ".join(sorted(down)))
