"""The outbox's bookkeeping and the webhook signing rules (the channels themselves are tested
against real servers in tests/integration/test_investor.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from cfxlib.core.errors import UserError
from cfxlib.notify import webhooks
from cfxlib.notify.outbox import EmailContent, Message, Outbox

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def message(key: str = "investor-update/2026-W49/email/a@example.com") -> Message:
    return Message(
        key=key,
        channel="email",
        to="a@example.com",
        type="investor.update",
        created_at=NOW,
        email=EmailContent(subject="s", text="t"),
    )


def test_a_key_is_queued_once_whatever_its_state(tmp_path):
    box = Outbox(tmp_path / "outbox")
    assert box.enqueue(message()) is True
    assert box.enqueue(message()) is False
    [entry] = box.entries(("pending",))
    box.mark_sent(entry, NOW)
    assert box.enqueue(message()) is False, "a sent message must never be queued again"
    assert box.state_of(message().key) == "sent" and box.entries(("pending",)) == []
    other = message("investor-update/2026-W49/email/b@example.com")
    assert box.enqueue(other) is True
    [entry] = box.entries(("pending",))
    box.mark_failed(entry, "550 no such user", NOW)
    assert box.enqueue(other) is False and box.state_of(other.key) == "failed"
    assert box.retry("investor-update/2026-W49/email/b") == 1 and box.state_of(other.key) == "pending"


def test_retries_back_off_exponentially_up_to_a_cap(tmp_path):
    box = Outbox(tmp_path / "outbox")
    box.enqueue(message())
    [entry] = box.entries(("pending",))
    delays = []
    for _ in range(6):
        box.mark_retry(entry, "down", NOW, base_s=30, max_s=600)
        delays.append((entry.message.next_attempt_at - NOW).total_seconds())
    assert delays == [30, 60, 120, 240, 480, 600]
    stored = box.entries(("pending",))[0].message
    assert stored.attempts == 6 and stored.last_error == "down"
    assert box.backlog(NOW + timedelta(minutes=5)) == {"pending": 1, "oldest_age_s": 300.0, "failed": 0}


def test_webhook_signature_verifies_with_the_library_and_needs_an_aware_time():
    secret = webhooks.new_secret()
    msg = Message(
        key="alert/uptime/x/firing/webhook/http://h",
        channel="webhook",
        to="http://h",
        type="alert.firing",
        created_at=NOW,
        data={"rule": "uptime", "name": '<b>"O\'Neil"</b>'},
    )
    body = webhooks.body(msg)
    assert body == webhooks.body(msg)  # the same bytes on every attempt
    now = datetime.now(UTC)
    headers = webhooks.headers(msg, secret, now, body)
    assert headers["webhook-id"] == msg.message_id and headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert Webhook(secret).verify(body, headers)["data"]["name"] == '<b>"O\'Neil"</b>'
    with pytest.raises(ValueError, match="timezone-aware"):
        webhooks.headers(msg, secret, datetime.now(), body)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [("abc", "start with whsec_"), ("whsec_not base64!", "not valid base64"), ("whsec_c2hvcnQ=", "at least 24")],
)
def test_malformed_webhook_secrets_are_refused(secret, problem):
    with pytest.raises(UserError, match=problem):
        webhooks.check_secret(secret)
    assert webhooks.check_secret(webhooks.new_secret()).startswith("whsec_")
