"""Confirming an email opt-in by a link sent to the address (email double opt-in).

The link carries a signed token (``django.core.signing``) naming the persona and the HMAC of
the address it was sent to: it confirms only while that persona still holds that address and
its request is pending, and only within ``PERSONAS_DOI_EXPIRY_DAYS``. Opening the link shows a
button; the confirmation is a POST (mail scanners that follow links confirm nothing).
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse

from ..models import ConsentState, Persona, PersonaStatus
from . import consent as consent_rules
from .changes import Actor, Changeset, ConsentAction, ConsentOp, apply

_SALT = "personas.email-double-opt-in"


def confirmation_link(persona: Persona) -> str:
    """The absolute confirmation address for the persona's current email."""
    token = signing.dumps(
        {"p": persona.pk, "d": consent_rules.address_digest("email", persona.email or "")},
        salt=_SALT,
        compress=True,
    )
    base = settings.PERSONAS_PUBLIC_BASE_URL.rstrip("/") or "http://127.0.0.1:8000"
    return f"{base}{reverse('customers:email_confirm', args=[token])}"


def pending_for(token: str) -> Persona | None:
    """The persona whose pending email opt-in this token confirms, or None (expired, used,
    tampered with, or the address changed since)."""
    max_age = settings.PERSONAS_DOI_EXPIRY_DAYS * 86400
    try:
        data = signing.loads(token, salt=_SALT, max_age=max_age)
    except signing.BadSignature:
        return None
    persona = (
        Persona.objects.visible()
        .filter(pk=data.get("p"), status=PersonaStatus.ACTIVE)
        .exclude(email=None)
        .first()
    )
    if persona is None or consent_rules.address_digest("email", persona.email) != data.get("d"):
        return None
    if persona.email_consent != ConsentState.PENDING:
        return None
    return persona


def confirm(token: str) -> Persona | None:
    """Confirm the email opt-in the token names (the customer proved the address by opening
    the link). Returns the persona, or None when there is nothing to confirm."""
    persona = pending_for(token)
    if persona is None:
        return None
    apply(
        persona,
        Changeset(
            consents=[ConsentOp("email", ConsentAction.CONFIRM)],
            action="confirmed email",
            evidence="Confirmation link sent to the address",
        ),
        Actor.customer("email link", proven=("email",)),
    )
    persona.refresh_from_db()
    return persona
