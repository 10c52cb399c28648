"""Texts customers send us, read as people write them (``services.replies``).

* An opt-out (STOP, "Stop.", REVOKE, "stop please"…) opts the *number* out at once, whatever
  holds it: an active, archived or merged persona, or nobody (then the number's record alone
  keeps the opt-out, as an HMAC: a suppression entry). It is answered with a confirmation.
* YES (Yes!, yep, "yes please"…) confirms the number's pending double opt-in.
* START asks for a new double opt-in (or, for a number nobody holds, lifts its suppression).
* HELP / INFO get the help text.
* Any other reply to a pending request gets one "Reply YES to confirm or STOP to cancel".

Idempotent on the provider's message id. From a number no persona holds nothing is kept but
the number's consent record (no number, no text).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone

from ..models import ConsentState, InboundMessage, Persona, PersonaStatus
from ..models.persona import is_visible
from ..normalize import try_phone
from . import consent as consent_rules
from .changes import Actor, ChangeError, Changeset, ConsentAction, ConsentOp, apply
from .replies import Reply, parse_reply

# Other apps that act on a customer's text (flows started by a text): ``hook(persona_id,
# body)`` after the text is stored, for a text that is not a keyword, from an active persona
# staff may see. personas imports no other app: they register from their AppConfig.ready.
TEXT_HOOKS: list = []


def register_text_hook(hook) -> None:
    if hook not in TEXT_HOOKS:
        TEXT_HOOKS.append(hook)


@dataclass
class InboundResult:
    outcome: str
    reply: str
    duplicate: bool = False


def _replies() -> dict[str, str]:
    brand = settings.PERSONAS_BRAND_NAME
    return {
        InboundMessage.Outcome.CONFIRMED: f"{brand}: you're subscribed to texts. Reply STOP to "
        "opt out, HELP for help.",
        InboundMessage.Outcome.OPTED_OUT: f"{brand}: you're unsubscribed and will get no more "
        "texts. Reply START to subscribe again.",
        InboundMessage.Outcome.RESUBSCRIBE: "",  # the double opt-in text itself is the answer
        InboundMessage.Outcome.UNBLOCKED: f"{brand}: texts to this number are no longer "
        "blocked. Sign up in store or online to get our offers.",
        InboundMessage.Outcome.REMINDED: f"{brand}: Reply YES to confirm or STOP to cancel.",
        InboundMessage.Outcome.HELP: f"{brand}: marketing texts about offers and rewards. "
        f"Reply STOP to opt out. Help: {settings.PERSONAS_SUPPORT_CONTACT}. Msg & data rates "
        "may apply.",
        InboundMessage.Outcome.IGNORED: "",
        InboundMessage.Outcome.UNKNOWN: "",
    }


def holders_of(phone: str | None) -> list[Persona]:
    """Every persona holding ``phone`` (not erased): active first, then the newest."""
    if not phone:
        return []
    rank = Case(
        When(status=PersonaStatus.ACTIVE, then=Value(0)),
        When(status=PersonaStatus.ARCHIVED, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    return list(
        Persona.objects.filter(phone=phone)
        .exclude(status=PersonaStatus.ERASED)
        .order_by(rank, "-id")
    )


def handle(*, message_sid: str, from_: str, body: str) -> InboundResult:
    """Store the reply once and apply what it asks through the one mutation path."""
    sid = (message_sid or "").strip()[:64]
    if not sid:
        raise ValueError("A MessageSid is required.")
    existing = InboundMessage.objects.filter(message_sid=sid).first()
    if existing is not None:
        return InboundResult(existing.outcome, "", duplicate=True)
    body = (body or "").replace("\x00", "")  # databases refuse NUL; it carries no meaning
    reply = parse_reply(body)
    phone = try_phone(from_ or "")
    try:
        with transaction.atomic():
            holders = holders_of(phone)
            outcome = _apply(phone, holders, reply, sid)
            persona = holders[0] if holders else None
            InboundMessage.objects.create(
                message_sid=sid,
                persona=persona,
                from_number=phone if persona else "",
                body=body[:320] if persona else "",
                keyword=reply.keyword[:16],
                outcome=outcome,
            )
            if (
                TEXT_HOOKS
                and reply.intent == "other"
                and persona is not None
                and persona.status == PersonaStatus.ACTIVE
                and is_visible(persona)
            ):
                for hook in TEXT_HOOKS:
                    transaction.on_commit(
                        lambda hook=hook, pid=persona.pk, text=body[:320]: hook(pid, text)
                    )
    except IntegrityError:  # the same webhook delivered twice at once: the first one won
        existing = InboundMessage.objects.get(message_sid=sid)
        return InboundResult(existing.outcome, "", duplicate=True)
    return InboundResult(outcome, _replies()[outcome])


def _change(persona: Persona, action: str, reply: Reply, sid: str) -> None:
    verb = {"opt_out": "replied STOP", "confirm": "replied YES", "opt_in": "replied START"}
    apply(
        persona,
        Changeset(
            consents=[ConsentOp("text", action)],
            action=verb[reply.intent],
            note=f"Texted {reply.keyword}",
            evidence=f"Text reply {sid}",
        ),
        Actor.customer("SMS reply", proven=("phone",)),
    )


def _apply(phone: str | None, holders: list[Persona], reply: Reply, sid: str) -> str:
    Outcome = InboundMessage.Outcome
    if reply.intent == "help":
        return Outcome.HELP
    if phone is None:
        return Outcome.UNKNOWN
    record = consent_rules.record_for("text", phone)
    active = next((p for p in holders if p.status == PersonaStatus.ACTIVE), None)
    if reply.intent == "opt_out":
        # Honoured whatever holds the number, even a persona hidden by privacy rules.
        if holders:
            _change(holders[0], ConsentAction.FORCE_OPT_OUT, reply, sid)
        else:
            _suppress(phone, ConsentState.OPTED_OUT, ConsentState.OPTED_OUT, sid)
        return Outcome.OPTED_OUT
    if not holders:
        if reply.intent == "opt_in" and record.state == ConsentState.OPTED_OUT:
            _suppress(phone, ConsentState.NEVER, "", sid)
            return Outcome.UNBLOCKED
        return Outcome.UNKNOWN
    target = active or holders[0]
    if not is_visible(target):
        return Outcome.IGNORED
    if reply.intent == "confirm":
        if record.state != ConsentState.PENDING:
            return Outcome.IGNORED
        _change(target, ConsentAction.CONFIRM, reply, sid)
        return Outcome.CONFIRMED
    if reply.intent == "opt_in":
        if active is None or record.state in (ConsentState.OPTED_IN, ConsentState.PENDING):
            return Outcome.IGNORED
        try:
            _change(active, ConsentAction.REQUEST_DOUBLE_OPT_IN, reply, sid)
        except ChangeError:
            return Outcome.IGNORED
        return Outcome.RESUBSCRIBE
    if record.state == ConsentState.PENDING and consent_rules.mark_reminded(phone):
        return Outcome.REMINDED
    return Outcome.IGNORED


def _suppress(phone: str, state: str, choice: str, sid: str) -> None:
    """The number's record alone (nobody holds it): a suppression entry, or its lifting."""
    consent_rules.write_records(
        [
            consent_rules.AddressWrite(
                "text",
                phone,
                state,
                state == ConsentState.OPTED_OUT,
                choice,
                "customer",
                "Customer (SMS reply)",
                f"Text reply {sid}",
            )
        ],
        holders=[],
        now=timezone.now(),
    )
