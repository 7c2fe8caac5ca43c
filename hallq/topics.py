"""The one place that builds and parses hallq's MQTT topics (contract v1).

Theory of operation: every topic lives under ``{base}/{hall}`` (``qms/hcm-q1`` by default). A device's
identity is the device segment of the topics it publishes on; the broker's ACL (see ``deploy``) pins each
device's credentials to its own segment, and the controller refuses ids its configuration does not know.
Adding a topic means adding a method here, a section to ``docs/mqtt-contract.md`` and an example there;
``tests/test_contract_doc.py`` checks that they agree. No other module formats topic strings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hallq.limits import MAX_ID_LEN, is_token


def is_valid_id(value: str) -> bool:
    """True if ``value`` may be a hall, device or service id: 1–32 of ``A-Z a-z 0-9 _ . -``, starting with a letter
    or digit (``hallq.limits``).

    Ids become topic segments, so MQTT's wildcards and separators (``+ # /``) are excluded by construction, and
    so is any control character: an id can never start a line of a log.
    """
    return is_token(value, MAX_ID_LEN)


def base_topic_problem(base: str) -> str | None:
    """Why ``base`` cannot prefix hallq's topics, or None if it can."""
    if not base or any(ch in base for ch in "+#") or base.startswith("/") or base.endswith("/"):
        return "may not be empty, contain + or #, or start or end with /"
    return None


class TopicKind(enum.Enum):
    DISPENSER_REQUEST = "dispenser/request"
    DISPENSER_TICKET = "dispenser/ticket"
    DISPENSER_PRINTED = "dispenser/printed"
    COUNTER_COMMAND = "counter/command"
    COUNTER_REPLY = "counter/reply"
    COUNTER_STATE = "counter/state"
    MANAGER_COMMAND = "manager/command"
    MANAGER_REPLY = "manager/reply"
    CALLS = "calls"
    BOARD = "board"
    NOTICE = "notice"
    EVENTS = "events"
    STATUS = "status"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    """A topic taken apart: its kind and, for per-device topics, the device id."""

    kind: TopicKind
    device: str | None = None


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic scheme of one hall: ``Topics(hall="hcm-q1").calls() == "qms/hcm-q1/calls"``."""

    hall: str
    base: str = "qms"

    def __post_init__(self) -> None:
        if not is_valid_id(self.hall):
            raise ValueError(f"invalid hall id {self.hall!r}")
        problem = base_topic_problem(self.base)
        if problem is not None:
            raise ValueError(f"invalid base topic {self.base!r}: {problem}")

    @property
    def root(self) -> str:
        return f"{self.base}/{self.hall}"

    def all_topics(self) -> str:
        """The filter of every topic of this hall (the controller's and a technician's ACL)."""
        return f"{self.root}/#"

    def _device(self, role: str, device: str, leaf: str) -> str:
        if not is_valid_id(device):
            raise ValueError(f"invalid {role} id {device!r}")
        return f"{self.root}/{role}/{device}/{leaf}"

    # dispenser <-> controller
    def dispenser_request(self, dispenser: str) -> str:
        return self._device("dispenser", dispenser, "request")

    def dispenser_ticket(self, dispenser: str) -> str:
        return self._device("dispenser", dispenser, "ticket")

    def dispenser_printed(self, dispenser: str) -> str:
        return self._device("dispenser", dispenser, "printed")

    # counter <-> controller
    def counter_command(self, counter: str) -> str:
        return self._device("counter", counter, "command")

    def counter_reply(self, counter: str) -> str:
        return self._device("counter", counter, "reply")

    def counter_state(self, counter: str) -> str:
        return self._device("counter", counter, "state")

    # manager <-> controller
    def manager_command(self, manager: str) -> str:
        return self._device("manager", manager, "command")

    def manager_reply(self, manager: str) -> str:
        return self._device("manager", manager, "reply")

    def all_manager_commands(self) -> str:
        return f"{self.root}/manager/+/command"

    # controller -> the manager
    def events(self) -> str:
        return f"{self.root}/events"

    # controller -> everyone
    def notice(self) -> str:
        return f"{self.root}/notice"

    def calls(self) -> str:
        return f"{self.root}/calls"

    def board(self) -> str:
        return f"{self.root}/board"

    def status(self, client: str) -> str:
        if not is_valid_id(client):
            raise ValueError(f"invalid client id {client!r}")
        return f"{self.root}/status/{client}"

    # subscription filters (the controller's and the displays')
    def all_dispenser_requests(self) -> str:
        return f"{self.root}/dispenser/+/request"

    def all_dispenser_printed(self) -> str:
        return f"{self.root}/dispenser/+/printed"

    def all_counter_commands(self) -> str:
        return f"{self.root}/counter/+/command"

    def all_counter_replies(self) -> str:
        return f"{self.root}/counter/+/reply"

    def all_counter_states(self) -> str:
        return f"{self.root}/counter/+/state"

    def all_status(self) -> str:
        return f"{self.root}/status/+"

    def parse(self, topic: str) -> ParsedTopic | None:
        """Take a topic of this hall apart; ``None`` for anything that is not a v1 topic of this hall."""
        prefix = self.root + "/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix) :].split("/")
        if parts == ["calls"]:
            return ParsedTopic(TopicKind.CALLS)
        if parts == ["board"]:
            return ParsedTopic(TopicKind.BOARD)
        if parts == ["notice"]:
            return ParsedTopic(TopicKind.NOTICE)
        if parts == ["events"]:
            return ParsedTopic(TopicKind.EVENTS)
        if len(parts) == 2 and parts[0] == "status" and is_valid_id(parts[1]):
            return ParsedTopic(TopicKind.STATUS, parts[1])
        if len(parts) == 3 and is_valid_id(parts[1]):
            try:
                kind = TopicKind(f"{parts[0]}/{parts[2]}")
            except ValueError:
                return None
            return ParsedTopic(kind, parts[1])
        return None
