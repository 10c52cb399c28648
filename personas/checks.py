"""System checks run by ``manage.py check --deploy``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

HINT = (
    "Use a backend that verifies inbound webhooks (SMS_BACKEND=personas.messaging.backends."
    "TwilioBackend with TWILIO_AUTH_TOKEN set), keep SMS_VERIFY_SIGNATURES on and "
    "SMS_INBOUND_ALLOW_UNVERIFIED_RISKY off."
)


@register(Tags.security, deploy=True)
def check_inbound_webhooks_are_verified(
    app_configs: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """personas.E001: /sms/inbound/ would act on posts nobody proved came from the provider,
    so anyone could confirm or cancel a customer's text consent."""
    from .messaging.backends import TwilioBackend, backend_class, can_verify_inbound

    backend = backend_class()
    problems = []
    if not settings.SMS_VERIFY_SIGNATURES:
        problems.append(
            "Inbound texts are not verified: SMS_VERIFY_SIGNATURES is off, so anyone can post "
            "to /sms/inbound/ and confirm or cancel a customer's text consent."
        )
    elif not can_verify_inbound(backend) and settings.SMS_INBOUND_ALLOW_UNVERIFIED_RISKY:
        problems.append(
            f"Inbound texts are not verified: the SMS backend {settings.SMS_BACKEND} cannot "
            "verify webhooks and SMS_INBOUND_ALLOW_UNVERIFIED_RISKY is on, so anyone can post "
            "to /sms/inbound/ and confirm or cancel a customer's text consent."
        )
    if issubclass(backend, TwilioBackend) and not settings.TWILIO_AUTH_TOKEN:
        problems.append(
            "Inbound texts cannot be verified: the Twilio backend is on but TWILIO_AUTH_TOKEN "
            "is empty, so Twilio's request signatures cannot be checked."
        )
    return [Error(message, hint=HINT, id="personas.E001") for message in problems]
