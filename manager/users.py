"""The manager's local accounts: a users file of names, roles and scrypt password hashes.

The file (default ``/var/lib/hallq/manager/users.json``, mode 0600, owned by the service's user: written by root,
it takes the owner of its folder) is JSON::

    {"version": 1,
     "users": {"lan": {"role": "manager",
                       "password": {"scheme": "scrypt", "n": 16384, "r": 8, "p": 1,
                                    "salt": "<base64, 16 bytes>", "hash": "<base64, 32 bytes>"}}}}

Each hash carries its own parameters, so they can be raised later: an old hash still verifies with the
parameters it was made with, and ``hallq-manager users passwd`` rewrites it with today's. Every change is
written to a temporary file beside the real one, flushed to disk (``fsync``) and renamed over it
(``os.replace``), so a reader, or a power cut, finds either the old file or the new one, never half of one.

There is no default account and no default password: a missing file means nobody can log in until
``hallq-manager users add NAME --role manager`` creates the first account.

Passwords are compared after Unicode NFC normalisation (a Vietnamese password typed on a phone and on a PC may
reach us composed differently), in constant time; an unknown name costs the same scrypt work as a known one, so
the time taken does not say which names exist.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import hmac
import json
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, cast

from hallq.errors import ConfigError, HallqError

Role = Literal["viewer", "manager"]
ROLES: Final[tuple[Role, ...]] = ("viewer", "manager")

FILE_VERSION: Final = 1
FILE_MODE: Final = 0o600
NAME_RE: Final = re.compile(r"[a-z0-9._-]{1,32}")
PASSWORD_MIN_CHARS: Final = 10
PASSWORD_MAX_CHARS: Final = 1024  # longer is refused before hashing: no one types it, and it costs work

SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
SALT_BYTES: Final = 16
HASH_BYTES: Final = 32
# Bounds on parameters read from the file, so a damaged or hostile file cannot make one login take minutes or
# gigabytes (scrypt needs about 128 * r * n bytes).
_MAX_SCRYPT_MEMORY: Final = 256 * 1024 * 1024
_MAX_SCRYPT_P: Final = 16


class UserError(HallqError, ValueError):
    """A refused change to the users file. ``code`` says which: ``bad_name``, ``bad_role``, ``short_password``,
    ``long_password``, ``exists``, ``unknown_user``; the message says it to a person."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class User:
    """Someone logged in (or who may): their name and role. A ``manager`` may do everything a ``viewer`` may."""

    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """One scrypt hash with the parameters that made it."""

    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    @classmethod
    def make(cls, password: str, *, salt: bytes | None = None) -> PasswordHash:
        """Hash ``password`` with today's parameters and a fresh random 16-byte salt (or ``salt``, for tests)."""
        salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
        return cls(SCRYPT_N, SCRYPT_R, SCRYPT_P, salt, _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))

    def matches(self, password: str) -> bool:
        """Whether ``password`` gives this hash (compared in constant time)."""
        if len(password) > PASSWORD_MAX_CHARS:
            return False
        candidate = _scrypt(password, self.salt, self.n, self.r, self.p, length=len(self.digest))
        return hmac.compare_digest(candidate, self.digest)

    def to_json(self) -> dict[str, Any]:
        return {"scheme": "scrypt", "n": self.n, "r": self.r, "p": self.p,
                "salt": base64.b64encode(self.salt).decode("ascii"),
                "hash": base64.b64encode(self.digest).decode("ascii")}


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, *, length: int = HASH_BYTES) -> bytes:
    secret = unicodedata.normalize("NFC", password).encode("utf-8")
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, dklen=length,
                          maxmem=128 * r * (n + p + 2) + 1024 * 1024)


# Verifying an unknown name spends the same work against this, so timing does not tell names apart.
_DUMMY: Final = PasswordHash(SCRYPT_N, SCRYPT_R, SCRYPT_P, b"\0" * SALT_BYTES, b"\0" * HASH_BYTES)


@dataclass(frozen=True, slots=True)
class _Account:
    role: Role
    password: PasswordHash


def check_name(name: str) -> None:
    """Raise ``UserError('bad_name')`` unless ``name`` is 1-32 of a-z 0-9 . _ -."""
    if not NAME_RE.fullmatch(name):
        raise UserError("bad_name", f"{name!r} is not a valid user name (1-32 of a-z 0-9 . _ -)")


def check_password(password: str) -> None:
    """Raise ``UserError`` unless ``password`` has ``PASSWORD_MIN_CHARS`` to ``PASSWORD_MAX_CHARS`` characters."""
    if len(password) < PASSWORD_MIN_CHARS:
        raise UserError("short_password", f"a password needs at least {PASSWORD_MIN_CHARS} characters")
    if len(password) > PASSWORD_MAX_CHARS:
        raise UserError("long_password", f"a password may have at most {PASSWORD_MAX_CHARS} characters")


class Users:
    """The accounts in one users file. Changes (``add``, ``remove``) are written to the file at once.

    A running service sees changes made by ``hallq-manager users`` without a restart: ``verify`` and ``get``
    reread the file when it has changed on disk. If a reread finds the file damaged, nobody matches until it is
    fixed (the service fails closed) and ``reload_error`` says why.
    """

    def __init__(self, path: Path, accounts: dict[str, _Account], *, stamp: tuple[int, int, int] | None) -> None:
        self.path = path
        self._accounts = accounts
        self._stamp = stamp
        self.reload_error: ConfigError | None = None

    @classmethod
    def load(cls, path: Path) -> Users:
        """The users in ``path``; a missing file holds none. A file that cannot be read or parsed raises
        ``ConfigError`` naming the file and the key."""
        path = Path(path)
        stamp = _stamp(path)
        if stamp is None:
            return cls(path, {}, stamp=None)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(str(path), "", f"cannot read the users file: {_reason(exc)}") from exc
        return cls(path, _parse(str(path), text), stamp=stamp)

    def list(self) -> builtins.list[User]:
        """Every account, by name."""
        self._refresh()
        return [User(name, account.role) for name, account in sorted(self._accounts.items())]

    def get(self, name: str) -> User | None:
        """The account called ``name``, or None."""
        self._refresh()
        account = self._accounts.get(name)
        return None if account is None else User(name, account.role)

    def password_stamp(self, name: str) -> bytes | None:
        """What changes whenever ``name``'s password does (its salt); None for an unknown name. Sessions keep it,
        so a new password ends the sessions opened with the old one."""
        self._refresh()
        account = self._accounts.get(name)
        return None if account is None else account.password.salt

    def verify(self, name: str, password: str) -> User | None:
        """The user if ``password`` is ``name``'s, else None. Takes about as long for a name that does not exist
        (the scrypt work is the same). CPU-bound (tens of milliseconds): run it off the event loop."""
        self._refresh()
        account = self._accounts.get(name)
        if account is None:
            _DUMMY.matches(password)
            return None
        if not account.password.matches(password):
            return None
        return User(name, account.role)

    def add(self, name: str, password: str, role: Role, *, replace: bool = False) -> User:
        """Create account ``name`` (or, with ``replace``, give an existing one this password and role), write the
        file, and return the user. Raises ``UserError`` for a bad name, role or password, or an existing name."""
        check_name(name)
        if role not in ROLES:
            raise UserError("bad_role", f"{role!r} is not a role (viewer or manager)")
        check_password(password)
        self._refresh(strict=True)
        if name in self._accounts and not replace:
            raise UserError("exists", f"user {name!r} already exists")
        accounts = dict(self._accounts)
        accounts[name] = _Account(role, PasswordHash.make(password))
        self._write(accounts)
        return User(name, role)

    def remove(self, name: str) -> None:
        """Delete account ``name`` and write the file; ``UserError('unknown_user')`` if there is none."""
        self._refresh(strict=True)
        if name not in self._accounts:
            raise UserError("unknown_user", f"there is no user {name!r}")
        accounts = {other: account for other, account in self._accounts.items() if other != name}
        self._write(accounts)

    def _refresh(self, *, strict: bool = False) -> None:
        stamp = _stamp(self.path)
        if stamp != self._stamp:
            try:
                fresh = Users.load(self.path)
            except ConfigError as exc:
                self._accounts, self._stamp, self.reload_error = {}, stamp, exc
            else:
                self._accounts, self._stamp, self.reload_error = fresh._accounts, fresh._stamp, None
        if strict and self.reload_error is not None:
            raise self.reload_error

    def _write(self, accounts: dict[str, _Account]) -> None:
        document = {"version": FILE_VERSION,
                    "users": {name: {"role": account.role, "password": account.password.to_json()}
                              for name, account in sorted(accounts.items())}}
        text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # O_CREAT's mode is only used for a new file, and the umask trims it
            if os.geteuid() == 0:
                # Written by root (sudo hallq-manager users add): the file belongs to whoever owns its folder (the
                # service's user, hallq), or the service could not read the accounts it was given.
                folder = self.path.parent.stat()
                os.fchown(fd, folder.st_uid, folder.st_gid)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_directory(self.path.parent)
        self._accounts, self._stamp, self.reload_error = accounts, _stamp(self.path), None


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    except OSError:
        return (-1, -1, -1)  # unreadable: ``load`` says why
    return (status.st_ino, status.st_mtime_ns, status.st_size)


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _parse(where: str, text: str) -> dict[str, _Account]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(where, "", f"not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    root = _object(where, "", document, {"version", "users"})
    if root.get("version") != FILE_VERSION:
        raise ConfigError(where, "version", f"must be {FILE_VERSION}")
    users = _object(where, "users", root.get("users"), None)
    accounts: dict[str, _Account] = {}
    for name, entry in users.items():
        key = f"users.{name}"
        if not NAME_RE.fullmatch(name):
            raise ConfigError(where, key, "not a valid user name (1-32 of a-z 0-9 . _ -)")
        fields = _object(where, key, entry, {"role", "password"})
        role = fields.get("role")
        if role not in ROLES:
            raise ConfigError(where, f"{key}.role", "must be viewer or manager")
        accounts[name] = _Account(cast(Role, role), _parse_hash(where, f"{key}.password", fields.get("password")))
    return accounts


def _parse_hash(where: str, key: str, value: object) -> PasswordHash:
    fields = _object(where, key, value, {"scheme", "n", "r", "p", "salt", "hash"})
    if fields.get("scheme") != "scrypt":
        raise ConfigError(where, f"{key}.scheme", "must be scrypt")
    n, r, p = (fields.get(k) for k in ("n", "r", "p"))
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (n, r, p)):
        raise ConfigError(where, key, "n, r and p must be positive integers")
    n, r, p = cast(int, n), cast(int, r), cast(int, p)
    if n < 2 or n & (n - 1) or 128 * r * n > _MAX_SCRYPT_MEMORY or p > _MAX_SCRYPT_P:
        raise ConfigError(where, key, "scrypt parameters out of range (n a power of 2, at most 256 MiB, p ≤ 16)")
    try:
        salt = base64.b64decode(str(fields.get("salt")), validate=True)
        digest = base64.b64decode(str(fields.get("hash")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(where, key, "salt and hash must be base64") from exc
    if len(salt) < 8 or len(digest) < 16:
        raise ConfigError(where, key, "salt or hash too short")
    return PasswordHash(n, r, p, salt, digest)


def _object(where: str, key: str, value: object, allowed: set[str] | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(where, key, "must be a JSON object")
    if allowed is not None:
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ConfigError(where, f"{key}.{unknown[0]}" if key else unknown[0], "unknown key")
        missing = sorted(allowed - set(value))
        if missing:
            raise ConfigError(where, f"{key}.{missing[0]}" if key else missing[0], "missing")
    return cast(dict[str, Any], value)
