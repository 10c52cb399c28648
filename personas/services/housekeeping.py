"""Periodic work: expire unanswered double opt-ins, sweep expired one-time codes."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from ..models import ConsentState, ContactConsent, Persona, PersonaStatus
from . import consent as consent_rules
from .changes import Actor, Changeset, ConsentAction, ConsentOp, apply_many
from .otp import sweep_expired

_CHANNELS = ("text", "email")


def expire_double_opt_ins(now: dt.datetime | None = None) -> int:
    """Double opt-in requests (text and email) unanswered for PERSONAS_DOI_EXPIRY_DAYS go
    back to "never asked".

    Read from the addresses' records, whoever holds them now (an active, archived or merged
    persona, or nobody): each holder changes through the mutation path (audited), and a record
    nobody holds is reset on its own. Returns how many personas changed.
    """
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=settings.PERSONAS_DOI_EXPIRY_DAYS)
    stale = ContactConsent.objects.filter(state=ConsentState.PENDING, updated_at__lt=cutoff)
    keys = set(stale.values_list("channel", "digest"))
    if not keys:
        return 0
    holders = (
        Persona.objects.filter(Q(text_consent="pending") | Q(email_consent="pending"))
        .exclude(status=PersonaStatus.ERASED)
        .only("id", "phone", "email", "text_consent", "email_consent")
    )
    actor = Actor.system("Double opt-in expiry")
    items = []
    for persona in holders.iterator(chunk_size=2000):
        for channel in _CHANNELS:
            address = consent_rules.address_of(channel, phone=persona.phone, email=persona.email)
            if (
                address
                and persona.consent(channel) == ConsentState.PENDING
                and (channel, consent_rules.address_digest(channel, address)) in keys
            ):
                changeset = Changeset(
                    consents=[ConsentOp(channel, ConsentAction.EXPIRE)],
                    action="double opt-in expired",
                    note=f"No answer within {settings.PERSONAS_DOI_EXPIRY_DAYS} days",
                )
                items.append((persona.pk, changeset, actor))
    changed = sum(1 for o in apply_many(items) if o.changed) if items else 0
    # Addresses nobody holds any more: the record alone.
    ContactConsent.objects.filter(state=ConsentState.PENDING, updated_at__lt=cutoff).update(
        state=ConsentState.NEVER, updated_at=now
    )
    return changed


def run(now: dt.datetime | None = None) -> dict[str, int]:
    return {"expired_double_opt_ins": expire_double_opt_ins(now), "codes_swept": sweep_expired()}
