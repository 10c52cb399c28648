"""SMS backends, chosen by the SMS_BACKEND setting like Django's EMAIL_BACKEND.

Each backend also says whether it can prove an inbound webhook came from its provider
(``inbound_verification``, empty when it cannot) and checks a request (``verify_inbound``).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.module_loading import import_string
from twilio.request_validator import RequestValidator
from twilio.rest import Client

logger = logging.getLogger("personas.sms")


class BaseBackend:
    """A backend that cannot verify inbound webhooks: every inbound post counts as unverified."""

    inbound_verification: str = ""

    @classmethod
    def verify_inbound(cls, request: HttpRequest) -> bool:
        return False


def backend_class(path: str | None = None) -> Any:
    """The SMS backend class named by ``path`` (default: the SMS_BACKEND setting)."""
    return import_string(path or settings.SMS_BACKEND)


def can_verify_inbound(backend: Any) -> bool:
    """Whether a backend class proves where inbound webhooks come from."""
    return bool(getattr(backend, "inbound_verification", ""))


def inbound_request_allowed(request: HttpRequest) -> bool:
    """Whether /sms/inbound/ may act on this request.

    With SMS_VERIFY_SIGNATURES off (the development and test default) every request is
    accepted. With it on (the production default), a backend that can verify decides; a
    backend that cannot refuses every request unless SMS_INBOUND_ALLOW_UNVERIFIED_RISKY is on.
    """
    if not settings.SMS_VERIFY_SIGNATURES:
        return True
    backend = backend_class()
    if can_verify_inbound(backend):
        return bool(backend.verify_inbound(request))
    return bool(settings.SMS_INBOUND_ALLOW_UNVERIFIED_RISKY)


class ConsoleBackend(BaseBackend):
    """Prints the text (with the number masked) instead of sending it."""

    def send(self, *, to: str, body: str) -> str:
        masked = f"…{to[-2:]}" if to else "?"
        print(f"[sms to {masked}] {body}")  # noqa: T201
        return f"console-{uuid.uuid4().hex[:12]}"


class LocmemBackend(BaseBackend):
    """Keeps sent texts in ``LocmemBackend.outbox`` (tests)."""

    outbox: list[dict[str, str]] = []

    def send(self, *, to: str, body: str) -> str:
        sid = f"locmem-{uuid.uuid4().hex[:12]}"
        LocmemBackend.outbox.append({"to": to, "body": body, "sid": sid})
        return sid


class TwilioBackend(BaseBackend):
    """Sends through Twilio's Messages API (account SID, token and sender from settings)."""

    inbound_verification = (
        "Twilio request signature (X-Twilio-Signature, HMAC-SHA1 with the auth token)"
    )

    @classmethod
    def verify_inbound(cls, request: HttpRequest) -> bool:
        """Check X-Twilio-Signature against the URL Twilio posted to (PERSONAS_PUBLIC_BASE_URL
        when the app sits behind a proxy) and the form fields, with TWILIO_AUTH_TOKEN."""
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature or not settings.TWILIO_AUTH_TOKEN:
            return False
        base = settings.PERSONAS_PUBLIC_BASE_URL.rstrip("/")
        url = f"{base}{request.get_full_path()}" if base else request.build_absolute_uri()
        validator = RequestValidator(settings.TWILIO_AUTH_TOKEN)
        return bool(validator.validate(url, request.POST.dict(), signature))

    def __init__(self) -> None:
        self.client = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN)

    def send(self, *, to: str, body: str) -> str:
        message = self.client.messages.create(to=to, from_=settings.TWILIO_FROM_NUMBER, body=body)
        return message.sid
