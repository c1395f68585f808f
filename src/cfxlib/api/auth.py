"""API tokens: created once (shown once), stored hashed under ``$CFX_HOME/tokens.json``.

Roles and what they may do:

- ``analyst``: everything;
- ``executive``: finance and customers, read only (and the customer-health feed);
- ``investor``: what the investor materials (PDF, email, data room) show: finance summary, MRR
  and its movements, forecast, retention, unit economics and operations;
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

from fastapi import HTTPException, WebSocketException
from starlette.requests import HTTPConnection
from starlette.routing import Match

from cfxlib.core.errors import UserError

ROLES = ("analyst", "executive", "investor", "ingest")
PERMISSIONS = {
    "analyst": {"finance", "finance.public", "customers", "customers.write", "events", "feed"},
    "executive": {"finance", "finance.public", "customers", "feed"},
    "investor": {"finance.public"},
    "ingest": {"events"},
}
"""Scopes per role. ``finance.public`` = what investors see (summary, MRR and movements,
forecast, retention, unit economics, ops); ``finance`` = every finance route;
``customers.write`` = changes to calls to action."""


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
        return self.lookup_hash(_hash(token))

    def lookup_hash(self, digest: str) -> TokenRecord | None:
        """The active record whose token hashes to ``digest`` (a session that keeps no token)."""
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
        record = self._by_hash.get(digest)
        return record if record and record.active() else None


def token_hash(token: str) -> str:
    """The SHA-256 a token is stored and looked up by (never the token itself)."""
    return _hash(token)


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header in raw ASGI headers, if any."""
    for name, value in headers:
        if name == b"authorization":
            text = value.decode("latin-1")
            if text[:7].lower() == "bearer ":
                return text[7:].strip()
    return None


PUBLIC = "public"
"""The scope of a route anyone may call without a token (``/healthz``, the API docs)."""
ANY_ROLE = "any"
"""The scope of a route any active token may call (``/metrics``)."""


def roles_for(scope: str | None) -> list[str]:
    """The roles a scope admits (none for an undeclared route: deny by default)."""
    if scope in (PUBLIC, ANY_ROLE):
        return list(ROLES)
    return [r for r in ROLES if scope in PERMISSIONS[r]]


class Scope:
    """A route's declared scope, as a FastAPI dependency: ``dependencies=[Depends(Scope("finance"))]``.

    It is the single declaration of who may call the route: :class:`TokenGate` reads it from the
    route before routing (the cheap first check), and the dependency checks it again when the
    route runs, so a route is never served on the strength of a table kept elsewhere."""

    def __init__(self, scope: str):
        if scope not in {PUBLIC, ANY_ROLE} | {s for perms in PERMISSIONS.values() for s in perms}:
            raise ValueError(f"unknown scope {scope!r}")
        self.scope = scope

    def __repr__(self) -> str:
        return f"Scope({self.scope!r})"

    async def __call__(self, connection: HTTPConnection) -> TokenRecord | None:
        if self.scope == PUBLIC:
            return None
        tokens: TokenStore = connection.app.state.tokens
        token = bearer_token(connection.scope["headers"]) or (
            connection.query_params.get("token") if connection.scope["type"] == "websocket" else None
        )
        status, detail, record = check(tokens, token, self.scope)
        if status and connection.scope["type"] == "websocket":
            raise WebSocketException(code=4401 if status == 401 else 4403, reason=detail)
        if status:
            raise HTTPException(status, detail, headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)
        return record


def check(tokens: TokenStore, token: str | None, scope: str | None) -> tuple[int, str, TokenRecord | None]:
    """``(0, "", record)`` when ``token`` may use a route of ``scope``; else ``(401|403, why, record)``.

    ``scope`` None is a route that declares none: refused to every role."""
    if scope == PUBLIC:
        return 0, "", None
    record = tokens.lookup(token)
    if record is None:
        return 401, "missing, unknown, expired or revoked token", None
    if scope is None:
        return 403, "this endpoint declares no access scope; it is refused to every role", record
    if scope != ANY_ROLE and scope not in PERMISSIONS[record.role]:
        return 403, f"role {record.role!r} may not use this endpoint", record
    return 0, "", record


def declared_scope(route) -> str | None:
    """The scope a route declares: a :class:`Scope` dependency, or ``cfx_scope`` set on routes
    FastAPI makes itself (the OpenAPI document, static files). None when it declares none."""
    for dep in getattr(route, "dependencies", None) or []:
        if isinstance(dep.dependency, Scope):
            return dep.dependency.scope
    return getattr(route, "cfx_scope", None)


class TokenGate:
    """ASGI middleware: deny by default, before routing. Each request is matched to its route and
    the route's declared scope (:func:`declared_scope`) decides: public passes; otherwise an active
    token whose role has the scope is needed (401 without one, 403 for a role without the scope or
    a route that declares no scope). A path no route serves needs an active token too (401), so an
    anonymous caller learns nothing about the API. Checked before body or query validation, and
    cheaply: the route of each method and path is looked up once and remembered. WebSocket
    handshakes are checked the same way (the token may also come as ``?token=``)."""

    CACHE_SIZE = 4096

    def __init__(self, app, tokens: TokenStore, routes):
        self.app, self.tokens, self.routes = app, tokens, routes
        self._cache: dict[tuple[str, str, str], tuple[bool, str | None]] = {}

    def route_scope(self, scope) -> tuple[bool, str | None]:
        """``(matched, declared scope)`` for an ASGI request scope."""
        key = (scope["type"], scope.get("method", ""), scope["path"])
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        partial = None
        found: tuple[bool, str | None] | None = None
        for route in self.routes():
            match, _ = route.matches(scope)
            if match == Match.FULL:
                found = (True, declared_scope(route))
                break
            if match == Match.PARTIAL and partial is None:
                partial = (True, declared_scope(route))
        found = found or partial or (False, None)
        if len(self._cache) < self.CACHE_SIZE:
            self._cache[key] = found
        return found

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        matched, need = self.route_scope(scope)
        token = bearer_token(scope["headers"])
        if token is None and scope["type"] == "websocket":
            token = _query_token(scope.get("query_string", b""))
        if not matched:
            status = 0 if self.tokens.lookup(token) is not None else 401
            detail = "missing, unknown, expired or revoked token"
        else:
            status, detail, _ = check(self.tokens, token, need)
        if not status:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await receive()  # websocket.connect
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 4401 if status == 401 else 4403})


def _query_token(query: bytes) -> str | None:
    from urllib.parse import parse_qs

    values = parse_qs(query.decode("latin-1")).get("token")
    return values[0] if values else None
