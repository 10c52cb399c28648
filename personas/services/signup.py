"""A customer signs up on a public signup form.

Nobody proved anything on a public form, so (``services.identity``) a submission never adds,
replaces or links an identifier on an existing customer and never changes their profile:

* no identifier of the submission is held by anyone: a new persona, as asked;
* some are held by existing customers: each held address may only ask for its own consent,
  which that address then confirms itself (a YES from the number, a link to the address);
  the identifiers nobody holds make a separate persona, flagged for staff as a possible
  duplicate of each customer whose identifier was named.

The page answers the same in every case, so it tells nobody whether a customer exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..models import ADDRESS_CHANNELS, EntrySource, FavoriteStoreSource, Persona, SignupForm
from ..models.persona import is_visible
from .changes import Actor, ChangeError, Changeset, ConsentAction, ConsentOp, apply, create
from .identity import customer_for, flag_possible_duplicate


@dataclass
class SignupResult:
    persona: Persona | None
    created: bool


def submit(form: SignupForm, data: dict[str, Any]) -> SignupResult:
    """``data``: cleaned values (names, email, phone, birthday, store_id, email_opt_in,
    text_opt_in). Returns the persona created, if any."""
    actor = Actor.customer(f"signup form “{form.name}”", confirm_email=form.email_double_opt_in)
    evidence = f"Signup form “{form.name}” (#{form.pk})"
    fields = {
        k: data[k]
        for k in ("first_name", "last_name", "email", "phone", "birthday")
        if data.get(k) not in (None, "")
    }
    wanted = {"email": bool(data.get("email_opt_in")), "text": bool(data.get("text_opt_in"))}
    holders: dict[str, Persona] = {}
    for kind in ("phone", "email"):
        if fields.get(kind):
            holder = customer_for(**{kind: fields[kind]}, include_hidden=True)
            if holder is not None:
                holders[kind] = holder
    for kind, holder in holders.items():
        # The address asks for its own consent; it confirms it itself. Nothing else changes.
        ops = [
            ConsentOp(channel, ConsentAction.OPT_IN)
            for channel, on in wanted.items()
            if on
            and ADDRESS_CHANNELS[channel] == kind
            and getattr(holder, kind) == fields[kind]
            and holder.consent(channel) not in ("opted_in", "pending")
            and is_visible(holder)
        ]
        if ops:
            try:
                apply(
                    holder,
                    Changeset(
                        consents=ops,
                        action="signed up again",
                        note=f"Signed up on “{form.name}”",
                        evidence=evidence,
                    ),
                    actor,
                )
            except ChangeError:
                pass  # e.g. the customer opted out themselves: only they can undo it
        fields.pop(kind)
    if holders and not (fields.get("phone") or fields.get("email")):
        return SignupResult(None, False)
    consents = [
        ConsentOp(channel, ConsentAction.OPT_IN)
        for channel, on in wanted.items()
        if on and fields.get(ADDRESS_CHANNELS[channel])
    ]
    store_id = data.get("store_id") or form.store_id
    changeset = Changeset(
        fields={**fields, "signup_form_id": form.pk, "loyalty_enrolled": form.enrolls_loyalty},
        consents=consents,
        favorite_store=(store_id, FavoriteStoreSource.SIGNUP_FORM) if store_id else None,
        note=f"Signed up on “{form.name}”",
        evidence=evidence,
    )
    persona = create(changeset, actor, entry_source=EntrySource.SIGNUP_FORM).persona
    for kind, holder in holders.items():
        label = "phone number" if kind == "phone" else "email"
        flag_possible_duplicate(
            persona,
            holder,
            reason=f"Signed up with this customer's {label} without proving it",
        )
    return SignupResult(persona, True)
