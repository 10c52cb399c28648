"""A customer signs up on a public signup form: create, or update the existing persona."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from ..models import EntrySource, FavoriteStoreSource, Persona, PersonaStatus, SignupForm
from .changes import Actor, Changeset, ConsentAction, ConsentOp, apply, create


@dataclass
class SignupResult:
    persona: Persona | None
    created: bool


def submit(form: SignupForm, data: dict[str, Any]) -> SignupResult:
    """``data``: cleaned values (names, email, phone, birthday, store_id, email_opt_in,
    text_opt_in). An existing customer (same phone or email) is updated: empty fields filled,
    consents only raised, the store set with signup-form precedence."""
    actor = Actor.customer(f"signup form “{form.name}”", confirm_email=form.email_double_opt_in)
    fields = {
        k: data[k]
        for k in ("first_name", "last_name", "email", "phone", "birthday")
        if data.get(k) not in (None, "")
    }
    consents = []
    if data.get("email_opt_in") and fields.get("email"):
        consents.append(ConsentOp("email", ConsentAction.OPT_IN))
    if data.get("text_opt_in") and fields.get("phone"):
        # Nobody proved the phone on a public form: the consent rule makes it a double opt-in.
        consents.append(ConsentOp("text", ConsentAction.OPT_IN))
    store_id = data.get("store_id") or form.store_id
    q = Q(pk__in=[])
    if fields.get("phone"):
        q |= Q(phone=fields["phone"])
    if fields.get("email"):
        q |= Q(email=fields["email"])
    existing = (
        Persona.objects.filter(q, status=PersonaStatus.ACTIVE).order_by("id").first()
        if fields.get("phone") or fields.get("email")
        else None
    )
    if existing is None:
        changeset = Changeset(
            fields={**fields, "signup_form_id": form.pk, "loyalty_enrolled": form.enrolls_loyalty},
            consents=consents,
            favorite_store=(store_id, FavoriteStoreSource.SIGNUP_FORM) if store_id else None,
            note=f"Signed up on “{form.name}”",
            evidence=f"Signup form “{form.name}” (#{form.pk})",
        )
        result = create(changeset, actor, entry_source=EntrySource.SIGNUP_FORM)
        return SignupResult(result.persona, True)
    fill = {k: v for k, v in fields.items() if getattr(existing, k) in (None, "")}
    if fill.get("email") or fill.get("phone"):
        # Another active persona may hold the other identifier: leave it for staff to merge.
        for key in ("email", "phone"):
            if (
                fill.get(key)
                and Persona.objects.filter(status=PersonaStatus.ACTIVE, **{key: fill[key]})
                .exclude(pk=existing.pk)
                .exists()
            ):
                fill.pop(key)
    # Consents are only ever raised: an unticked box never opts anyone out.
    raised = [op for op in consents if existing.consent(op.channel) not in ("opted_in", "pending")]
    if form.enrolls_loyalty and not existing.loyalty_enrolled:
        fill["loyalty_enrolled"] = True
    changeset = Changeset(
        fields=fill,
        consents=raised,
        favorite_store=(store_id, FavoriteStoreSource.SIGNUP_FORM) if store_id else None,
        action="signed up again",
        note=f"Signed up on “{form.name}”",
        evidence=f"Signup form “{form.name}” (#{form.pk})",
    )
    result = apply(existing, changeset, actor)
    return SignupResult(result.persona, False)
