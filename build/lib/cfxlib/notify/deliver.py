"""Deliver what waits in the outbox, and put new notifications into it.

:func:`notify` turns one event (an alert, an investor update) into one outbox message per
recipient and channel; :func:`flush` delivers pending messages, each exactly once (see
:mod:`cfxlib.notify.outbox` for the one remaining window).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cfxlib.core.home import Home
from cfxlib.core.settings import Settings, read_secret
from cfxlib.notify import webhooks
from cfxlib.notify.mail import ChannelDown, Mailer, PermanentError, TransientError
from cfxlib.notify.outbox import EmailContent, Message, Outbox, utcnow


def outbox_for(home: Home) -> Outbox:
    return Outbox(home.outbox)


def alert_recipients(settings: Settings) -> list[str]:
    """Alert emails go to ``alerts.recipients``, by default the investor recipients."""
    if settings.alerts.recipients is not None:
        return list(settings.alerts.recipients)
    return list(settings.investor.recipients)


def notify(
    outbox: Outbox,
    key: str,
    type: str,
    data: dict[str, Any],
    email: EmailContent | None,
    recipients: list[str],
    webhook_urls: list[str],
    now: datetime | None = None,
) -> int:
    """Enqueue one message per email recipient and per webhook URL; returns how many were new.

    ``key`` identifies the event: the message keys are ``KEY/email/ADDRESS`` and
    ``KEY/webhook/URL``, so enqueuing the same event again adds nothing.
    """
    now = now or utcnow()
    added = 0
    if email is not None:
        for address in dict.fromkeys(recipients):
            added += outbox.enqueue(
                Message(
                    key=f"{key}/email/{address}",
                    channel="email",
                    to=address,
                    type=type,
                    created_at=now,
                    email=email,
                    data=data,
                )
            )
    for url in dict.fromkeys(webhook_urls):
        added += outbox.enqueue(
            Message(key=f"{key}/webhook/{url}", channel="webhook", to=url, type=type, created_at=now, data=data)
        )
    return added


@dataclass
class FlushReport:
    sent: list[str] = field(default_factory=list)
    waiting: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    busy: bool = False
    """Another flush held the lock; nothing was done."""

    @property
    def ok(self) -> bool:
        return not self.waiting and not self.failed and not self.busy


def flush(home: Home, settings: Settings, due_only: bool = False, now: datetime | None = None) -> FlushReport:
    """Deliver pending messages, oldest first.

    ``due_only`` skips messages whose backoff has not elapsed (the scheduler's periodic flush); an
    operator's ``cfx notify flush`` tries everything now.
    """
    outbox = outbox_for(home)
    report = FlushReport()
    if not (outbox.root / "pending").exists():
        return report
    secret = read_secret(settings, "webhooks")
    if secret is not None:
        webhooks.check_secret(secret)
    mailer = Mailer(settings.smtp, read_secret(settings, "smtp"))
    poster = webhooks.Poster(secret, settings.webhooks.timeout_s)
    down: dict[str, str] = {}
    with outbox.flushing() as got:
        if not got:
            report.busy = True
            return report
        try:
            for entry in outbox.entries(("pending",)):
                message = entry.message
                moment = now or utcnow()
                if due_only and message.next_attempt_at and message.next_attempt_at > moment:
                    report.waiting.append(
                        (message.key, f"next attempt at {message.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC")
                    )
                    continue
                route = "email" if message.channel == "email" else f"webhook {message.to}"
                try:
                    if route in down:
                        raise TransientError(down[route])
                    if message.channel == "email":
                        if not settings.smtp.host:
                            raise TransientError("email is not configured: set CFX_SMTP__HOST (and CFX_SMTP__PORT)")
                        mailer.send(message, outbox)
                    else:
                        poster.send(message)
                except ChannelDown as exc:
                    down[route] = str(exc)
                    outbox.mark_retry(
                        entry, str(exc), moment, settings.notify.retry_base_s, settings.notify.retry_max_s
                    )
                    report.waiting.append((message.key, str(exc)))
                except TransientError as exc:
                    if message.attempts + 1 >= settings.notify.max_attempts:
                        outbox.mark_failed(entry, f"gave up after {message.attempts + 1} attempts: {exc}", moment)
                        report.failed.append((message.key, str(exc)))
                    else:
                        outbox.mark_retry(
                            entry, str(exc), moment, settings.notify.retry_base_s, settings.notify.retry_max_s
                        )
                        report.waiting.append((message.key, str(exc)))
                except PermanentError as exc:
                    outbox.mark_failed(entry, str(exc), moment)
                    report.failed.append((message.key, str(exc)))
                else:
                    outbox.mark_sent(entry, now or utcnow())
                    report.sent.append(message.key)
        finally:
            mailer.close()
            poster.close()
    return report
