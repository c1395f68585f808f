"""Email over SMTP: MIME messages with plain-text and HTML parts, inline images and attachments.

One :class:`Mailer` connection is reused for every message of a flush. STARTTLS and login are
used when configured; the password never appears in messages or errors.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime

from cfxlib.notify.outbox import Message, Outbox


class TransientError(Exception):
    """The channel could not take the message now (server down, 4xx): try again later."""


class PermanentError(Exception):
    """The channel refused the message for good (bad address, 5xx): do not retry."""


class ChannelDown(TransientError):
    """The server cannot be reached at all: skip the channel's other messages in this flush."""


def build(message: Message, sender: str, outbox: Outbox) -> EmailMessage:
    """The MIME message: text, then HTML with inline images (``cid:``), then attachments."""
    content = message.email
    if content is None:
        raise PermanentError("email message without content")
    mail = EmailMessage()
    mail["Subject"] = content.subject
    mail["From"] = sender
    mail["To"] = message.to
    mail["Date"] = format_datetime(message.created_at)
    # Stable on every attempt, so a receiver can drop the duplicate of the one crash window.
    mail["Message-ID"] = f"<{message.message_id}@cfx.chatterfix>"
    mail["X-Cfx-Notification"] = message.type
    mail.set_content(content.text)
    if content.html is not None:
        mail.add_alternative(content.html, subtype="html")
        html_part = mail.get_payload()[-1]
        for att in content.attachments:
            if att.cid:
                maintype, subtype = att.mime.split("/", 1)
                html_part.add_related(
                    outbox.blob(att.blob), maintype, subtype, cid=f"<{att.cid}>", filename=att.filename
                )
    for att in content.attachments:
        if not att.cid:
            maintype, subtype = att.mime.split("/", 1)
            mail.add_attachment(outbox.blob(att.blob), maintype=maintype, subtype=subtype, filename=att.filename)
    return mail


class Mailer:
    """An SMTP session opened on first use (``settings`` is the ``[smtp]`` section)."""

    def __init__(self, settings, password: str | None):
        self.settings = settings
        self.password = password
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        where = f"{s.host}:{s.port}"
        try:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
            smtp.ehlo()
            if s.starttls:
                context = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
                smtp.starttls(context=context)
                smtp.ehlo()
            if s.username:
                if not self.password:
                    raise TransientError(
                        f"SMTP login as {s.username} needs a password: set CFX_SMTP__PASSWORD or "
                        "$CFX_HOME/keys/smtp-password"
                    )
                smtp.login(s.username, self.password)
        except smtplib.SMTPAuthenticationError as exc:
            raise ChannelDown(f"SMTP server {where} refused the login of {s.username} ({exc.smtp_code})") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise ChannelDown(f"SMTP server {where}: {exc}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelDown(f"SMTP server {where} cannot be reached: {type(exc).__name__}: {exc}") from None
        return smtp

    def send(self, message: Message, outbox: Outbox) -> None:
        mail = build(message, self.settings.sender, outbox)
        if self._smtp is None:
            self._smtp = self._connect()
        try:
            refused = self._smtp.send_message(mail, from_addr=self.settings.sender, to_addrs=[message.to])
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            self.close()
            if 400 <= code < 500:
                raise TransientError(f"SMTP {code} for {message.to}: {text.decode(errors='replace')}") from None
            raise PermanentError(f"SMTP {code} refused {message.to}: {text.decode(errors='replace')}") from None
        except smtplib.SMTPResponseException as exc:
            self.close()
            text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
            if 400 <= exc.smtp_code < 500:
                raise TransientError(f"SMTP {exc.smtp_code}: {text}") from None
            raise PermanentError(f"SMTP {exc.smtp_code}: {text}") from None
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise ChannelDown(f"SMTP connection lost: {type(exc).__name__}: {exc}") from None
        if refused:
            raise PermanentError(f"SMTP refused {message.to}: {refused}")

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._smtp.quit()
            self._smtp = None
