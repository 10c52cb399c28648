"""Periodic work: expire unanswered double opt-ins, sweep expired one-time codes."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from ..models import ConsentChange, Persona
from .changes import Actor, Changeset, ConsentAction, ConsentOp, apply_many


def expire_double_opt_ins(now: dt.datetime | None = None) -> int:
    """Pending text double opt-ins older than the setting go back to "never asked"."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=settings.PERSONAS_DOI_EXPIRY_DAYS)
    stale = (
        ConsentChange.objects.filter(
            channel="text", after="pending", persona__text_consent="pending"
        )
        .values("persona_id")
        .annotate(last=Max("created_at"))
        .filter(last__lt=cutoff)
        .values_list("persona_id", flat=True)
    )
    ids = list(Persona.objects.filter(pk__in=stale).values_list("pk", flat=True)[:5000])
    actor = Actor.system("Double opt-in expiry")
    changeset = Changeset(
        consents=[ConsentOp("text", ConsentAction.EXPIRE)],
        action="double opt-in expired",
        note=f"No YES within {settings.PERSONAS_DOI_EXPIRY_DAYS} days",
    )
    outcomes = apply_many([(pid, changeset, actor) for pid in ids])
    return sum(1 for o in outcomes if o.changed)


def run(now: dt.datetime | None = None) -> dict[str, int]:
    from .otp import sweep_expired

    return {"expired_double_opt_ins": expire_double_opt_ins(now), "codes_swept": sweep_expired()}
