"""Which received messages the controller acts on: rate limits, stored copies, the ``others`` connection.

Theory of operation (see ``limits.py`` for the buckets): before a message is decoded its device spends a token
of its own bucket (``[limits]`` in the config; ids the config does not know share one bucket per role). A
message without a token is dropped and the device's inbox is paused until it has a token again (at least
``PAUSE_MIN_S``): its connection is not read meanwhile, so the broker, not Python, absorbs the flood. The device
gets at most one ``rate_limited`` reply a second, the operator one log line when a device starts being limited
and then a summary every ``DROP_LOG_WINDOW_S``. Refusal log lines are throttled per device the same way, so a
hostile device cannot bury the log.

The ``others`` connection (``connections.py``) has a budget of its own, the sum of every device's, so a flood of
made-up ids through it is paused like any other; on an open broker it also carries every known device's
messages, which are dropped here (their own connection brings them).

Retained messages: requests, print reports and commands are not retained (the contract), but the broker's ACL
cannot stop a device from setting the flag, and the broker then hands the stored message to every later
subscription: after each reconnect and restart, on later business days too. A message that arrives with the
retain flag is such a stored copy (a live message arrives without it, even if published retained), so it is
never acted on: it is reported once per device, and cleared from the broker with an empty retained publish on
its topic (the controller's account may write every topic of the hall). The broker delivers that empty message
to the controller's own subscription too; it is recognised and dropped.

Pure: time is passed in; the verdicts say what the shell must do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hall_controller.engine.spec import HallSpec
from hall_controller.limits import DeviceLimiter, Limits, Throttle
from hallq.mqtt import Message
from hallq.topics import ParsedTopic, TopicKind, Topics

log = logging.getLogger(__name__)

DROP_LOG_WINDOW_S = 10.0
REFUSAL_LOGS_PER_WINDOW = 20
# A paused inbox is paused at least this long, so a flood costs at most one inbox's worth of dropped messages per
# pause however generous the rate limit.
PAUSE_MIN_S = 0.1

Key = tuple[str, str]  # (role, device id or "(unknown ids)"): a device's bucket


@dataclass(frozen=True, slots=True)
class Act:
    """Decode and decide the message."""

    parsed: ParsedTopic


@dataclass(frozen=True, slots=True)
class Drop:
    """Not acted on; ``pause_until_s``: pause the connection's inbox until then (and drop what it holds);
    ``answer``: tell the device it is ``rate_limited``; ``clear``: publish an empty retained message on the
    topic, to clear a stored copy from the broker."""

    parsed: ParsedTopic | None = None
    pause_until_s: float | None = None
    answer: bool = False
    clear: bool = False


Verdict = Act | Drop


class Admission:
    """The gate every received message passes; see the module doc."""

    def __init__(self, spec: HallSpec, topics: Topics, limits: Limits, *, others_name: str, connections: int,
                 manager_id: str | None = None) -> None:
        self._spec = spec
        self._manager_id = manager_id
        self._topics = topics
        self._others_name = others_name
        self.limiter: DeviceLimiter[Key] = DeviceLimiter(rate_per_s=limits.device_messages_per_s,
                                                         burst=limits.device_burst)
        self._others_budget: DeviceLimiter[str] = DeviceLimiter(
            rate_per_s=limits.device_messages_per_s * connections, burst=limits.device_burst * connections)
        self._limited_replies: Throttle[Key] = Throttle(window_s=1.0, burst=1)
        self._limited_log: Throttle[Key] = Throttle(window_s=DROP_LOG_WINDOW_S, burst=1)
        self._refusal_log: Throttle[Key] = Throttle(window_s=DROP_LOG_WINDOW_S, burst=REFUSAL_LOGS_PER_WINDOW)
        self._retained_reported: set[Key] = set()
        self._clearing: set[str] = set()  # topics whose retained message we cleared: their empty echo is ours

    def admit(self, message: Message, now_s: float) -> Verdict:
        parsed = self._topics.parse(message.topic)
        if message.source == self._others_name:
            if not self._others_budget.allow("others", now_s):
                return Drop(pause_until_s=max(self._others_budget.next_token_s("others", now_s), now_s + PAUSE_MIN_S))
            if parsed is not None and self.known(parsed):
                return Drop()  # its own connection brings it
        if parsed is None or parsed.device is None:
            log.debug("ignored message on topic=%s", message.topic)
            return Drop()
        key = self.device_key(parsed)
        if message.retain:
            if key not in self._retained_reported:
                self._retained_reported.add(key)
                log.warning("ignored a retained message from %s=%s topic=%s and cleared it from the broker: a "
                            "device must publish requests, print reports and commands with retain=false (the "
                            "broker replays a retained one at every reconnect and restart); fix that device's MQTT "
                            "settings", key[0], key[1], message.topic)
            self._clearing.add(message.topic)
            return Drop(parsed, clear=True)
        if not message.payload and message.topic in self._clearing:
            self._clearing.discard(message.topic)  # our own clearing, delivered back to us
            return Drop()
        if self.limiter.allow(key, now_s):
            return Act(parsed)
        return Drop(parsed, pause_until_s=max(self.limiter.next_token_s(key, now_s), now_s + PAUSE_MIN_S),
                    answer=self._limited_replies.allow(key, now_s))

    def dropped(self, parsed: ParsedTopic, count: int, now_s: float) -> None:
        """``count`` messages of ``parsed``'s device were dropped for its rate: log it (throttled)."""
        key = self.device_key(parsed)
        if self._limited_log.allow(key, now_s, count=count):  # the rest counted for the summary line
            log.warning("rate limit: dropping messages from %s=%s (more than %g a second, burst %d); a device "
                        "that sends this much is faulty or hostile: check it", key[0], key[1],
                        self.limiter.rate_per_s, self.limiter.burst)

    def log_refusal(self, parsed: ParsedTopic, now_s: float, level: int, message: str, *args: object) -> None:
        """A refusal's log line, at most ``REFUSAL_LOGS_PER_WINDOW`` per device (bucket) per window."""
        if self._refusal_log.allow(self.device_key(parsed), now_s):
            log.log(level, message, *args)

    def summarise(self, now_s: float) -> None:
        """Summary lines of the windows that ended."""
        for (role, device), dropped, window_s in self._limited_log.ended(now_s):
            log.warning("rate limit: dropped %d messages from %s=%s in the last %.0f s (and the broker dropped "
                        "what it could not queue for it)", dropped, role, device, window_s)
        for (role, device), held_back, window_s in self._refusal_log.ended(now_s):
            log.warning("%d more refusals of %s=%s not logged in the last %.0f s", held_back, role, device,
                        window_s)
        self._limited_replies.ended(now_s)  # forget the reply windows

    def known(self, parsed: ParsedTopic) -> bool:
        if parsed.kind is TopicKind.COUNTER_COMMAND:
            return parsed.device in self._spec.counter_by_id
        if parsed.kind is TopicKind.MANAGER_COMMAND:
            return parsed.device is not None and parsed.device == self._manager_id
        return parsed.device in self._spec.dispenser_by_id

    def device_key(self, parsed: ParsedTopic) -> Key:
        """The bucket of the device in ``parsed``: its own if configured, else the role's shared "unknown" one."""
        role = {TopicKind.COUNTER_COMMAND: "counter", TopicKind.MANAGER_COMMAND: "manager"}.get(parsed.kind,
                                                                                              "dispenser")
        return (role, (parsed.device or "") if self.known(parsed) else "(unknown ids)")
