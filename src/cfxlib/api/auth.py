"""API tokens: created once (shown once), stored hashed under ``$CFX_HOME/tokens.json``.

Roles and what they may do:

- ``analyst``: everything;
- ``executive``: finance and customers, read only (and the customer-health feed);
- ``investor``: finance summary, forecast, retention and unit economics only;
- ``ingest``: ``POST /api/events`` only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cfxlib.core.errors import UserError

ROLES = ("analyst", "executive", "investor", "ingest")
PERMISSIONS = {
    "analyst": {"finance", "finance.public", "customers", "events", "feed"},
    "executive": {"finance", "finance.public", "customers", "feed"},
    "investor": {"finance.public"},
    "ingest": {"events"},
}
"""Scopes per role. ``finance.public`` = summary, forecast, retention, unit economics."""


class TokenError(UserError):
    pass


@dataclass
class TokenRecord:
    id: str
    name: str
    role: str
    sha256: str
    created_at: str
    expires_at: str | None = None
    revoked_at: str | None = None

    def active(self, now: datetime | None = None) -> bool:
        if self.revoked_at:
            return False
        if not self.expires_at:
            return True
        if now is None:
            return time.time() < self._expires_ts
        return datetime.fromisoformat(self.expires_at) > now

    @functools.cached_property
    def _expires_ts(self) -> float:
        return datetime.fromisoformat(self.expires_at).timestamp() if self.expires_at else float("inf")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


RECHECK_S = 0.002
"""How often (seconds) :meth:`TokenStore.lookup` looks at the token file for changes: a revoked
token is refused from 2 ms after ``cfx token revoke`` wrote the file, and a busy server makes
at most 500 ``stat`` calls a second instead of one per request."""


class TokenStore:
    """The token file; reloaded when it changes on disk (tokens created while serving work)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file = str(self.path)
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._checked = float("-inf")  # time.monotonic() of the last stat
        self._by_hash: dict[str, TokenRecord] = {}

    def _records(self) -> list[TokenRecord]:
        if not self.path.exists():
            return []
        return [TokenRecord(**r) for r in json.loads(self.path.read_text(encoding="utf-8"))]

    def _save(self, records: list[TokenRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(r) for r in records], indent=1), encoding="utf-8")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def create(self, role: str, name: str = "", expires_days: int | None = None) -> tuple[str, TokenRecord]:
        if role not in ROLES:
            raise TokenError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        if expires_days is not None and expires_days <= 0:
            raise TokenError("--expires must be a positive number of days")
        token = "cfx_" + secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        record = TokenRecord(
            id=secrets.token_hex(4),
            name=name or role,
            role=role,
            sha256=_hash(token),
            created_at=now.isoformat(timespec="seconds"),
            expires_at=(now + timedelta(days=expires_days)).isoformat(timespec="seconds") if expires_days else None,
        )
        with self._lock:
            self._save([*self._records(), record])
        return token, record

    def list(self) -> list[TokenRecord]:
        return self._records()

    def revoke(self, token_id: str) -> TokenRecord:
        with self._lock:
            records = self._records()
            for r in records:
                if r.id == token_id:
                    r.revoked_at = datetime.now(UTC).isoformat(timespec="seconds")
                    self._save(records)
                    return r
        raise TokenError(f"no token with id {token_id!r}; see `cfx token list`")

    def lookup(self, token: str | None) -> TokenRecord | None:
        """The active record for a presented token, or None (unknown, expired or revoked)."""
        if not token:
            return None
        now = time.monotonic()
        if now - self._checked >= RECHECK_S:
            try:
                stat = os.stat(self._file)
                stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            except FileNotFoundError:
                stamp = None
            if stamp != self._stamp:
                with self._lock:
                    self._by_hash = {r.sha256: r for r in self._records()} if stamp else {}
                    self._stamp = stamp
            self._checked = now
        record = self._by_hash.get(_hash(token))
        return record if record and record.active() else None


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header in raw ASGI headers, if any."""
    for name, value in headers:
        if name == b"authorization":
            text = value.decode("latin-1")
            if text[:7].lower() == "bearer ":
                return text[7:].strip()
    return None


class TokenGate:
    """ASGI middleware: every HTTP request to a path in ``access`` needs an active token whose
    role has the path's scope (``"any"``: any role). No token, or an unknown, expired or revoked
    one: 401; a role without the scope: 403. Checked before routing and body or query
    validation, so an anonymous caller learns nothing about the API but 401; and cheaply, as a
    plain check rather than a per-route dependency. The WebSocket route checks its own token
    (it may also come as ``?token=``)."""

    def __init__(self, app, tokens: TokenStore, access: tuple[tuple[str, str], ...]):
        self.app, self.tokens, self.access = app, tokens, access

    def scope_for(self, path: str) -> str | None:
        for prefix, scope in self.access:
            if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
                return scope
        return None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            need = self.scope_for(scope["path"])
            if need is not None:
                record = self.tokens.lookup(bearer_token(scope["headers"]))
                if record is None:
                    status, detail = 401, "missing, unknown, expired or revoked token"
                elif need != "any" and need not in PERMISSIONS[record.role]:
                    status, detail = 403, f"role {record.role!r} may not use this endpoint"
                else:
                    status = 0
                if status:
                    body = json.dumps({"detail": detail}).encode()
                    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                    if status == 401:
                        headers.append((b"www-authenticate", b"Bearer"))
                    await send({"type": "http.response.start", "status": status, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)
