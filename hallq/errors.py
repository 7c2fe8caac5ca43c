"""The root of hallq's exceptions.

Refusals ("queue empty", "unknown service") are values that travel on the wire, never exceptions. Exceptions
are for broken invariants and for bad configuration found at start. Each narrow class also inherits the
matching builtin, so callers that only know Python's exceptions still catch them.
"""

from __future__ import annotations


class HallqError(Exception):
    """Root of every exception hallq raises on purpose."""


class ConfigError(HallqError, ValueError):
    """A configuration file is missing, unreadable or invalid.

    ``path`` and ``key`` name where the problem is, so the message an operator reads is actionable:
    ``config/hall.toml: counters[id="3"].services: unknown service 'Z'``.
    """

    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {problem}")


class PayloadError(HallqError, ValueError):
    """A wire payload could not be decoded into its typed form.

    ``code`` is the machine-readable error code sent back on the reply topic (``bad_request`` or
    ``unsupported_version``); the message says which field is wrong.
    """

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class InvariantError(HallqError, RuntimeError):
    """An internal invariant was broken: a bug, never a user's mistake."""


# Exit statuses, from sysexits.h. EX_CONFIG: the configuration is wrong; systemd units treat it as final.
EXIT_CONFIG = 78
EXIT_DATAERR = 65  # a damaged or foreign ledger
EXIT_UNAVAILABLE = 69  # a device the role needs (printer, GPIO, sound) is not there
EXIT_SOFTWARE = 70  # an internal failure (e.g. the TLS tools)
EXIT_CANTCREAT = 73  # an output file cannot be written
EXIT_IOERR = 74  # the ledger's storage cannot be used


class ProfileError(HallqError):
    """Citizens' profiles cannot be used: no key, a wrong key, an unreadable database (the controller's
    ``hall_controller/profiles.py``). ``message`` says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
