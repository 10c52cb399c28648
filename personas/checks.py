"""System checks: personas.E001 runs with ``manage.py check --deploy``; personas.E002 runs with
every check (``check``, ``migrate``, ``runserver``), so a production start fails on it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

from .messaging.backends import TwilioBackend, backend_class, can_verify_inbound

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


PER_PROCESS_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}


@register(Tags.caches)
def check_production_cache_is_shared(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """personas.E002: in production the rate limits (one-time codes, signup forms) count in the
    default cache; a per-process cache gives every gunicorn worker and server its own counters.

    Registered without ``deploy=True`` on purpose: ``migrate`` (the release step) and ``check``
    refuse to run, not only ``check --deploy``."""
    if not getattr(settings, "PRODUCTION", False):
        return []
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend not in PER_PROCESS_CACHES:
        return []
    return [
        Error(
            f"The default cache ({backend}) is kept per process: rate limits and one-time-code "
            "limits would be per process, so every web worker and server would allow its own "
            "quota of codes and requests.",
            hint="Set REDIS_URL to a Redis server every web process shares.",
            id="personas.E002",
        )
    ]
