"""Outbound messages to customers: recorded, sent from a background task, consent-checked."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from ..models import ADDRESS_CHANNELS, ConsentState, OutboundMessage, Persona
from ..models.persona import is_visible
from ..services import consent as consent_rules

TEMPLATES = {
    "double_opt_in": (
        "{brand}: reply YES to get texts about offers and your rewards. "
        "Msg & data rates may apply. Reply STOP to opt out."
    ),
    "email_double_opt_in": (
        "You asked to get emails about offers and your rewards from {brand}.\n\n"
        "Confirm here: {link}\n\n"
        "If you did not ask, ignore this email: you will get no marketing email from us."
    ),
}
SUBJECTS = {"email_double_opt_in": "{brand}: confirm your email"}


@lru_cache(maxsize=4)
def _backend_class(path: str) -> Any:
    return import_string(path)


def get_sms_backend() -> Any:
    return _backend_class(settings.SMS_BACKEND)()


def render(template: str, **context: str) -> str:
    return TEMPLATES[template].format(brand=settings.PERSONAS_BRAND_NAME, **context)


def queue(persona: Persona, *, channel: str, template: str, transactional: bool) -> OutboundMessage:
    """Record a message and send it from a background task once the transaction commits."""
    from ..tasks import send_outbound_message  # cycle: tasks deliver through this module

    to = persona.phone if channel == "text" else (persona.email or "")
    context = {}
    if template == "email_double_opt_in":
        from ..services.email_confirm import (
            confirmation_link,  # cycle: email_confirm → changes → messaging
        )

        context["link"] = confirmation_link(persona)
    message = OutboundMessage.objects.create(
        persona=persona,
        channel=channel,
        template=template,
        to=to or "",
        body=render(template, **context),
        transactional=transactional,
    )
    transaction.on_commit(lambda: send_outbound_message.enqueue(message.pk))
    return message


def quiet_until(persona: Persona, now: dt.datetime) -> dt.datetime | None:
    """When a marketing text may go out, if ``now`` is inside quiet hours in the store's zone."""
    hours = settings.PERSONAS_QUIET_HOURS
    if not hours:
        return None
    start, end = hours
    store = persona.favorite_store
    zone = ZoneInfo(store.time_zone if store else settings.PERSONAS_DEFAULT_TIME_ZONE)
    local = now.astimezone(zone)
    if end <= local.hour < start:
        return None
    wake = local.replace(hour=end, minute=0, second=0, microsecond=0)
    if local.hour >= start:
        wake += dt.timedelta(days=1)
    return wake


def queue_text(persona: Persona, *, channel: str, body: str) -> OutboundMessage:
    """A marketing message with its own body (flows): consent is checked again at delivery."""
    from ..tasks import send_outbound_message  # cycle: tasks deliver through this module

    to = persona.phone if channel == "text" else (persona.email or "")
    message = OutboundMessage.objects.create(
        persona=persona,
        channel=channel,
        template="flow",
        to=to or "",
        body=body[:1600],
        transactional=False,
    )
    transaction.on_commit(lambda: send_outbound_message.enqueue(message.pk))
    return message


def consent_allows(message: OutboundMessage, persona: Persona) -> bool:
    """Checked when the message is sent, not when it was queued.

    Marketing needs the opt-in of the address it goes to (text, voice, email: the address's
    record, whoever holds it now; push and browser: the persona). A double opt-in request goes
    out only while that address's request is still pending (not after a STOP or a YES). Other
    transactional messages (one-time codes) go out as they are.
    """
    channel = message.channel
    if channel in ADDRESS_CHANNELS:
        # ``to`` was copied from the persona's normalised phone or email when queued.
        state = consent_rules.state_for_sending(channel, message.to)
    else:
        state = persona.consent(channel)
    if message.template in ("double_opt_in", "email_double_opt_in"):
        return state == ConsentState.PENDING
    if message.transactional:
        return True
    return state == ConsentState.OPTED_IN


def deliver(message_id: int) -> str:
    """Send one queued message once. Safe to retry: only a QUEUED message is ever sent."""
    with transaction.atomic():
        message = (
            OutboundMessage.objects.select_for_update(of=("self",))
            .select_related("persona", "persona__favorite_store")
            .filter(pk=message_id, status=OutboundMessage.Status.QUEUED)
            .first()
        )
        if message is None:
            return "skipped"
        persona = message.persona
        allowed = persona is not None and message.to and is_visible(persona)
        if allowed:
            allowed = consent_allows(message, persona)
        if allowed and message.channel == "text" and not message.transactional:
            wake = quiet_until(persona, timezone.now())
            if wake is not None:
                from ..tasks import (
                    send_outbound_message,  # cycle: tasks deliver through this module
                )

                transaction.on_commit(
                    lambda: send_outbound_message.using(run_after=wake).enqueue(message.pk)
                )
                return "deferred"
        if not allowed:
            message.status = OutboundMessage.Status.SUPPRESSED
            message.save(update_fields=["status"])
            return message.status
        # Claim the message before talking to the provider so a retry never sends it twice.
        message.status = OutboundMessage.Status.SENT
        message.sent_at = timezone.now()
        message.save(update_fields=["status", "sent_at"])
    try:
        if message.channel == "text":
            provider_id = get_sms_backend().send(to=message.to, body=message.body)
        else:
            subject = SUBJECTS.get(message.template, "{brand}: please confirm").format(
                brand=settings.PERSONAS_BRAND_NAME
            )
            send_mail(subject, message.body, None, [message.to])
            provider_id = ""
    except Exception as exc:  # provider errors are recorded, never raised into the worker
        OutboundMessage.objects.filter(pk=message.pk).update(
            status=OutboundMessage.Status.FAILED, error=type(exc).__name__[:300]
        )
        return OutboundMessage.Status.FAILED
    OutboundMessage.objects.filter(pk=message.pk).update(provider_id=provider_id or "")
    return OutboundMessage.Status.SENT
