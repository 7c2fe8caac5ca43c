"""The contract's field limits and alphabets: one definition for every wire decoder, the topic scheme and every
role's config reader.

Theory of operation: a value a config check accepts must be one every role can carry. A counter name the
controller's config took but the displays' decoder refused blanked every board and call of the hall, so each
limit below is written once and read by both sides: ``hallq/wire.py`` (decoders), ``hallq/topics.py`` (ids)
and ``hallq/configfile.py`` (``Table.ident``, ``Table.name``). Lengths count characters (code points), as
Python's ``len`` and every JSON decoder do, not bytes.

Control characters (C0, DEL, C1, and the Unicode line and paragraph separators) can start a new line in a log
or on a screen. Where the contract has no use for them they are refused: ids, ticket ids and numbers have the
strict ``A-Z a-z 0-9 _ . -`` alphabet; request ids and names may hold any other character. Free text for
people (a print failure's reason, an error message, a printer's detail) is accepted as sent, and escaped
wherever a log line quotes it (``hallq/logsetup.py``).
"""

from __future__ import annotations

import re
from typing import Final

MAX_ID_LEN: Final = 32            # hall, device and service ids: topic segments and usernames
MAX_REQUEST_ID_LEN: Final = 64    # chosen by the sender (a UUID takes 32 or 36)
MAX_TICKET_ID_LEN: Final = 64     # chosen by the controller (32 hexadecimal digits)
MAX_PREFIX_LEN: Final = 3         # a service's number prefix, capital letters
MAX_NUMBER_VALUE: Final = 99_999  # the largest number of a service's range
MAX_NUMBER_LEN: Final = 16        # a ticket number as printed and called: prefix and digits, "UE003"
MAX_NAME_LEN: Final = 200         # the hall's, a service's and a counter's names; a dispenser's button labels
MAX_ACTION_LEN: Final = 16        # a counter command's action
MAX_REASON_LEN: Final = 64        # why a ticket could not be printed
MAX_ROLE_LEN: Final = 32          # a client's role in its presence
MAX_DETAIL_LEN: Final = 500       # a dispenser's printer detail, for the operator
MAX_ERROR_CODE_LEN: Final = 64
MAX_ERROR_MESSAGE_LEN: Final = 1000
MAX_MOMENT_LEN: Final = 40        # an RFC 3339 time
MAX_DAY_LEN: Final = 10           # a business day, "2026-11-27"
MAX_NOTICE_LEN: Final = 200       # a notice shown on every display ("Hệ thống tạm dừng 10 phút")
MAX_USER_LEN: Final = 32          # a hall manager's login name

# The longest number a config can make must be one a decoder takes.
assert MAX_PREFIX_LEN + len(str(MAX_NUMBER_VALUE)) <= MAX_NUMBER_LEN

CONTROL_CHARACTERS: Final = frozenset(
    [chr(c) for c in range(0x20)] + [chr(c) for c in range(0x7F, 0xA0)] + ["\u2028", "\u2029"]
)
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def is_token(value: str, max_len: int) -> bool:
    """True if ``value`` is 1 to ``max_len`` of ``A-Z a-z 0-9 _ . -``, starting with a letter or digit: the
    alphabet of ids, ticket ids and ticket numbers (the whole value: a trailing line break does not pass)."""
    return 0 < len(value) <= max_len and _TOKEN.fullmatch(value) is not None


def has_control(value: str) -> bool:
    """True if ``value`` holds a character that can start a new line or steer a terminal."""
    return not CONTROL_CHARACTERS.isdisjoint(value)
