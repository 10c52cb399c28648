"""Texts customers send us: YES confirms a double opt-in, STOP opts out at once, START asks
for a new double opt-in, HELP gets the help text. Idempotent on the provider's message id."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction

from ..models import InboundMessage, Persona, PersonaStatus
from ..normalize import try_phone
from .changes import Actor, ChangeError, Changeset, ConsentAction, ConsentOp, apply

CONFIRM = {"YES", "Y"}
STOP = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
START = {"START", "UNSTOP"}
HELP = {"HELP", "INFO"}


@dataclass
class InboundResult:
    outcome: str
    reply: str
    duplicate: bool = False


def keyword_of(body: str) -> str:
    return "".join((body or "").split()).upper()[:16]


def _replies() -> dict[str, str]:
    brand = settings.PERSONAS_BRAND_NAME
    return {
        InboundMessage.Outcome.CONFIRMED: f"{brand}: you're subscribed to texts. Reply STOP to "
        "opt out, HELP for help.",
        InboundMessage.Outcome.OPTED_OUT: f"{brand}: you're unsubscribed and will get no more "
        "texts. Reply START to subscribe again.",
        InboundMessage.Outcome.RESUBSCRIBE: "",  # the double opt-in text itself is the answer
        InboundMessage.Outcome.HELP: f"{brand}: marketing texts about offers and rewards. "
        f"Reply STOP to opt out. Help: {settings.PERSONAS_SUPPORT_CONTACT}. Msg & data rates "
        "may apply.",
        InboundMessage.Outcome.IGNORED: "",
        InboundMessage.Outcome.UNKNOWN: "",
    }


def _persona_for(phone: str | None) -> Persona | None:
    if not phone:
        return None
    return Persona.objects.filter(phone=phone, status=PersonaStatus.ACTIVE).order_by("-id").first()


def handle(*, message_sid: str, from_: str, body: str) -> InboundResult:
    """Store the reply once and apply its keyword through the one mutation path."""
    sid = (message_sid or "").strip()[:64]
    if not sid:
        raise ValueError("A MessageSid is required.")
    existing = InboundMessage.objects.filter(message_sid=sid).first()
    if existing is not None:
        return InboundResult(existing.outcome, "", duplicate=True)
    body = (body or "").replace("\x00", "")  # databases refuse NUL; it carries no meaning
    keyword = keyword_of(body)
    phone = try_phone(from_ or "")
    try:
        with transaction.atomic():
            persona = _persona_for(phone)
            outcome = _apply(persona, keyword)
            InboundMessage.objects.create(
                message_sid=sid,
                persona=persona,
                from_number=phone if persona else "",
                body=(body or "")[:320] if persona else "",
                keyword=keyword if keyword in CONFIRM | STOP | START | HELP else "",
                outcome=outcome,
            )
    except IntegrityError:  # the same webhook delivered twice at once: the first one won
        existing = InboundMessage.objects.get(message_sid=sid)
        return InboundResult(existing.outcome, "", duplicate=True)
    return InboundResult(outcome, _replies()[outcome])


def _apply(persona: Persona | None, keyword: str) -> str:
    Outcome = InboundMessage.Outcome
    if keyword in HELP:
        return Outcome.HELP
    if persona is None:
        return Outcome.UNKNOWN
    actor = Actor.customer("SMS reply")
    if keyword in STOP:
        # Honoured whatever else is pending, even for a persona hidden by privacy rules.
        apply(
            persona,
            Changeset(
                consents=[ConsentOp("text", ConsentAction.FORCE_OPT_OUT)],
                action="replied STOP",
                note=f"Texted {keyword}",
            ),
            actor,
        )
        return Outcome.OPTED_OUT
    if persona.hidden:
        return Outcome.IGNORED
    if keyword in CONFIRM:
        if persona.text_consent != "pending":
            return Outcome.IGNORED
        apply(
            persona,
            Changeset(
                consents=[ConsentOp("text", ConsentAction.CONFIRM)],
                action="replied YES",
                note=f"Texted {keyword}",
            ),
            actor,
        )
        return Outcome.CONFIRMED
    if keyword in START:
        if persona.text_consent in ("opted_in", "pending"):
            return Outcome.IGNORED
        try:
            apply(
                persona,
                Changeset(
                    consents=[ConsentOp("text", ConsentAction.REQUEST_DOUBLE_OPT_IN)],
                    action="replied START",
                    note=f"Texted {keyword}",
                ),
                actor,
            )
        except ChangeError:
            return Outcome.IGNORED
        return Outcome.RESUBSCRIBE
    return Outcome.IGNORED
