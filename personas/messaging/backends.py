"""SMS backends, chosen by the SMS_BACKEND setting like Django's EMAIL_BACKEND."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings

logger = logging.getLogger("personas.sms")


class ConsoleBackend:
    """Prints the text (with the number masked) instead of sending it."""

    def send(self, *, to: str, body: str) -> str:
        masked = f"…{to[-2:]}" if to else "?"
        print(f"[sms to {masked}] {body}")  # noqa: T201
        return f"console-{uuid.uuid4().hex[:12]}"


class LocmemBackend:
    """Keeps sent texts in ``LocmemBackend.outbox`` (tests)."""

    outbox: list[dict[str, str]] = []

    def send(self, *, to: str, body: str) -> str:
        sid = f"locmem-{uuid.uuid4().hex[:12]}"
        LocmemBackend.outbox.append({"to": to, "body": body, "sid": sid})
        return sid


class TwilioBackend:
    """Sends through Twilio's Messages API (account SID, token and sender from settings)."""

    def __init__(self) -> None:
        from twilio.rest import Client

        self.client = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN)

    def send(self, *, to: str, body: str) -> str:
        message = self.client.messages.create(to=to, from_=settings.TWILIO_FROM_NUMBER, body=body)
        return message.sid
