"""Webhooks signed per the Standard Webhooks specification (``standardwebhooks`` package).

Each notification is a JSON POST ``{"type", "timestamp", "data"}`` with the headers
``webhook-id`` (stable on every attempt, so receivers can drop duplicates), ``webhook-timestamp``
(the attempt's time, Unix seconds) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256>``).
Transient failures (connection errors, timeouts, 429, 5xx) are retried with exponential backoff
within a flush; other 4xx answers refuse the message for good.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook

from cfxlib.core.errors import UserError
from cfxlib.notify.mail import ChannelDown, PermanentError, TransientError
from cfxlib.notify.outbox import Message

PREFIX = "whsec_"
MIN_SECRET_BYTES = 24


def new_secret() -> str:
    """A new signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def check_secret(secret: str) -> str:
    """The secret if it is well formed (the library decodes malformed ones leniently)."""
    if not secret.startswith(PREFIX):
        raise UserError("the webhook secret must start with whsec_ (make one with `cfx notify webhook-secret`)")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise UserError("the webhook secret after whsec_ is not valid base64") from None
    if len(key) < MIN_SECRET_BYTES:
        raise UserError(f"the webhook secret is {len(key)} bytes; use at least {MIN_SECRET_BYTES}")
    return secret


def body(message: Message) -> str:
    """The signed JSON text (compact, keys sorted: the same bytes on every attempt)."""
    payload = {
        "type": message.type,
        "timestamp": message.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": message.data or {},
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def headers(message: Message, secret: str, when: datetime, text: str) -> dict[str, str]:
    """Standard Webhooks headers. ``when`` must be timezone-aware (a naive time signs wrongly)."""
    if when.tzinfo is None:
        raise ValueError("sign with a timezone-aware time")
    when = when.astimezone(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": message.message_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(message.message_id, when, text),
        "user-agent": "cfx-webhooks",
    }


class Poster:
    """POSTs messages; ``retries`` attempts per message with delays ``backoff_s`` x 2^n."""

    def __init__(self, secret: str | None, timeout_s: float, retries: int = 3, backoff_s: float = 0.5):
        self.secret = secret
        self.client = httpx.Client(timeout=timeout_s, follow_redirects=False)
        self.retries = retries
        self.backoff_s = backoff_s

    def send(self, message: Message) -> None:
        if not self.secret:
            raise TransientError(
                "webhooks need a signing secret: set CFX_WEBHOOKS__SECRET or $CFX_HOME/keys/webhook-secret"
            )
        text = body(message)
        error = ""
        for attempt in range(self.retries):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self.client.post(
                    message.to,
                    content=text.encode("utf-8"),
                    headers=headers(message, self.secret, datetime.now(UTC), text),
                )
            except httpx.HTTPError as exc:
                error = f"{message.to} cannot be reached: {type(exc).__name__}"
                continue
            if response.is_success:
                return
            error = f"{message.to} answered {response.status_code}"
            if response.status_code != 429 and response.status_code < 500:
                raise PermanentError(error)
        if error.endswith("cannot be reached: ConnectError"):
            raise ChannelDown(error)
        raise TransientError(error)

    def close(self) -> None:
        self.client.close()
