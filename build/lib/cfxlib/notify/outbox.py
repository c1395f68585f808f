"""A durable outbox: every notification is written (and fsynced) before anything is sent.

Layout under ``$CFX_HOME/outbox/``::

    pending/<h>.json   waiting to be delivered (h = SHA-256 of the idempotency key)
    sent/<h>.json      delivered (kept: the record that makes a re-run send nothing twice)
    failed/<h>.json    refused for good (bad address, 4xx from a webhook) or out of attempts
    blobs/<sha256>     attachment and inline-image bytes, content-addressed

Delivery semantics
------------------
* :meth:`Outbox.enqueue` is idempotent: a message whose key is pending, sent or failed is not
  added again, so re-running a command that enqueues never sends twice.
* A channel that is down leaves the message pending with its error and the next attempt time
  (exponential backoff); :meth:`Outbox.flush` delivers it later. Nothing is lost.
* After a channel accepts a message, the pending file is renamed into ``sent/`` (an atomic
  rename, then the directory is fsynced). **The one remaining window**: a crash after the mail
  server or webhook receiver accepted the message and before that rename is durable (a few
  milliseconds) leaves it pending, and it is delivered again. Both channels carry the same
  identity on every attempt (the email's ``Message-ID``, the webhook's ``webhook-id``) so the
  receiver can drop such a duplicate; Standard Webhooks receivers are expected to.
* One flush at a time per home (a lock file); enqueueing never waits for a flush.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cfxlib.core.outputs import fsync_dir, write_atomic

State = Literal["pending", "sent", "failed"]
STATES: tuple[State, ...] = ("pending", "sent", "failed")


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filename: str
    mime: str = Field(description="e.g. application/pdf")
    blob: str = Field(description="SHA-256 of the bytes under outbox/blobs/.")
    cid: str | None = Field(None, description="Content-ID when shown inline in the HTML part.")


class EmailContent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: str
    text: str
    html: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)


class Message(BaseModel):
    """One notification to one recipient over one channel."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(description="Idempotency key: the same key is never delivered twice.")
    channel: Literal["email", "webhook"]
    to: str = Field(description="Email address or webhook URL.")
    type: str = Field(description="What happened, e.g. alert.firing, alert.resolved, investor.update.")
    created_at: datetime
    email: EmailContent | None = None
    data: dict[str, Any] | None = Field(None, description="Webhook payload's data.")
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    sent_at: datetime | None = None
    failed_at: datetime | None = None

    @property
    def message_id(self) -> str:
        """Stable identity on every attempt (``Message-ID``, ``webhook-id``)."""
        return "msg_" + digest(self.key)[:32]


def digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Entry:
    state: State
    path: Path
    message: Message


class Outbox:
    """The outbox of one home (``root`` = ``$CFX_HOME/outbox``)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    # ------------------------------------------------------------------ layout
    def _dir(self, state: State) -> Path:
        return self.root / state

    def _file(self, state: State, key: str) -> Path:
        return self._dir(state) / f"{digest(key)[:40]}.json"

    def ensure(self) -> Outbox:
        for state in STATES:
            self._dir(state).mkdir(parents=True, exist_ok=True)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        return self

    @contextmanager
    def _lock(self, name: str, blocking: bool = True) -> Iterator[bool]:
        self.ensure()
        with open(self.root / f".{name}.lock", "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ blobs
    def put_blob(self, data: bytes) -> str:
        """Store bytes (an attachment) durably; returns their SHA-256."""
        sha = digest(data)
        path = self.root / "blobs" / sha
        if not path.exists():
            self.ensure()
            write_atomic(path, data)
            fsync_dir(path.parent)
        return sha

    def blob(self, sha: str) -> bytes:
        return (self.root / "blobs" / sha).read_bytes()

    # ------------------------------------------------------------------ messages
    def state_of(self, key: str) -> State | None:
        for state in STATES:  # the order messages move in: pending -> sent | failed
            if self._file(state, key).exists():
                return state
        return None

    def enqueue(self, message: Message) -> bool:
        """Write ``message`` durably unless its key is already known; True when it was added."""
        with self._lock("enqueue"):
            if self.state_of(message.key) is not None:
                return False
            path = self._file("pending", message.key)
            write_atomic(path, message.model_dump_json(indent=1).encode("utf-8"))
            fsync_dir(path.parent)
            return True

    def entries(self, states: tuple[State, ...] = STATES) -> list[Entry]:
        """Messages in the given states, oldest first."""
        out = []
        for state in states:
            folder = self._dir(state)
            if not folder.exists():
                continue
            for path in folder.glob("*.json"):
                try:
                    out.append(Entry(state, path, Message.model_validate_json(path.read_bytes())))
                except (OSError, ValueError):
                    continue  # moved by a concurrent flush, or a stray file
        return sorted(out, key=lambda e: (e.message.created_at, e.message.key))

    def _rewrite(self, path: Path, message: Message) -> None:
        write_atomic(path, message.model_dump_json(indent=1).encode("utf-8"))

    def mark_sent(self, entry: Entry, now: datetime) -> None:
        """The decisive bookkeeping after a channel accepted the message: rename, then fsync."""
        target = self._file("sent", entry.message.key)
        os.replace(entry.path, target)
        fsync_dir(target.parent)
        fsync_dir(entry.path.parent)
        entry.message.sent_at = now
        entry.message.attempts += 1
        entry.message.last_error = None
        self._rewrite(target, entry.message)
        entry.state, entry.path = "sent", target

    def mark_retry(self, entry: Entry, error: str, now: datetime, base_s: float, max_s: float) -> None:
        entry.message.attempts += 1
        entry.message.last_error = error
        delay = min(base_s * 2 ** (entry.message.attempts - 1), max_s)
        entry.message.next_attempt_at = now + timedelta(seconds=delay)
        self._rewrite(entry.path, entry.message)

    def mark_failed(self, entry: Entry, error: str, now: datetime) -> None:
        entry.message.attempts += 1
        entry.message.last_error = error
        entry.message.failed_at = now
        target = self._file("failed", entry.message.key)
        self._rewrite(entry.path, entry.message)
        os.replace(entry.path, target)
        fsync_dir(target.parent)
        entry.state, entry.path = "failed", target

    def retry(self, key_prefix: str) -> int:
        """Move failed messages whose key (or file name) starts with ``key_prefix`` back to pending."""
        moved = 0
        with self._lock("flush"):
            for entry in self.entries(("failed",)):
                if entry.message.key.startswith(key_prefix) or entry.path.stem.startswith(key_prefix):
                    entry.message.failed_at = None
                    entry.message.next_attempt_at = None
                    target = self._file("pending", entry.message.key)
                    self._rewrite(entry.path, entry.message)
                    os.replace(entry.path, target)
                    fsync_dir(target.parent)
                    moved += 1
        return moved

    @contextmanager
    def flushing(self) -> Iterator[bool]:
        """Hold the flush lock (False when another flush holds it)."""
        with self._lock("flush", blocking=False) as got:
            yield got

    def backlog(self, now: datetime | None = None) -> dict:
        """Pending count and the age of the oldest pending message, seconds (for health checks)."""
        pending = self.entries(("pending",))
        now = now or utcnow()
        oldest = min((e.message.created_at for e in pending), default=None)
        return {
            "pending": len(pending),
            "oldest_age_s": None if oldest is None else (now - oldest).total_seconds(),
            "failed": len(self.entries(("failed",))),
        }
