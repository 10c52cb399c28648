"""Who a customer is, from identifiers: one place for matching and for the proof rule.

* ``customer_for`` finds the active persona a phone or email belongs to, following merges:
  an identifier of a merged-away persona resolves to its survivor (chains followed), so
  imports, signup, wallet, data controls and flows land on the profile staff kept.
* Public surfaces (signup forms, wallet, data controls, any customer-facing API) never
  attach an identifier to an existing persona, and never show or change anything of it,
  unless the customer proved an identifier already on it with a one-time code. An unproven
  submission that names an existing customer's identifier becomes a separate persona (with
  only the identifiers nobody holds), flagged for staff as a possible duplicate.
"""

from __future__ import annotations

from django.db.models import Q

from ..models import Persona, PersonaStatus, PossibleDuplicate
from ..models.persona import is_visible
from ..normalize import identifier_digest


def customer_for(
    *, phone: str | None = None, email: str | None = None, include_hidden: bool = False
) -> Persona | None:
    """The active persona holding ``phone`` or ``email`` (normalised), else the active
    survivor of a merged persona holding one; None when there is none."""
    from .merge import follow_chain  # cycle: merge asks identity who holds an identifier

    q = Q(pk__in=[])
    if phone:
        q |= Q(phone=phone)
    if email:
        q |= Q(email=email)
    if not (phone or email):
        return None
    base = Persona.objects.filter(q)
    if not include_hidden:
        base = base.visible()
    active = base.filter(status=PersonaStatus.ACTIVE).order_by("id").first()
    if active is not None:
        return active
    for merged in base.filter(status=PersonaStatus.MERGED).order_by("-id")[:5]:
        survivor = follow_chain(merged)
        if survivor.status == PersonaStatus.ACTIVE and (include_hidden or is_visible(survivor)):
            return survivor
    return None


def flag_possible_duplicate(persona: Persona, other: Persona, *, reason: str) -> None:
    """Record a pair for staff's Possible duplicates (idempotent)."""
    low, high = sorted((persona, other), key=lambda p: p.pk)
    PossibleDuplicate.objects.get_or_create(persona=low, other=high, defaults={"reason": reason})


def proven_kinds(persona: Persona, proof: object) -> list[str]:
    """The identifier kinds a customer proved with a one-time code that ``persona`` still
    holds. ``proof``: ``[kind, digest]`` as a session keeps it (no readable value); a proof of
    an identifier the persona no longer holds proves nothing."""
    if not (isinstance(proof, list) and len(proof) == 2 and proof[0] in ("phone", "email")):
        return []
    value = getattr(persona, proof[0])
    return [proof[0]] if value and identifier_digest(proof[0], value) == proof[1] else []
