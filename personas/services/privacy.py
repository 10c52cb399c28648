"""Privacy: the blocklist (keyed hashes only), erasure, and account recovery.

* A blocklist entry is an HMAC of a normalised phone or email; nothing readable is stored.
* A persona any of whose identifiers is blocklisted carries ``hidden=True`` (kept in step here,
  set-based), so every staff query excludes it with one indexed condition — no per-row check.
* ``erase`` is the full opt-out + data deletion: through the one mutation path it hard-opts-out
  of every channel, removes the points (ledger entry), wipes the personal fields and attributes
  and marks the persona erased; then, in the same transaction, it scrubs personal values from
  the audit trail and every other table that held them, blocklists the identifiers and writes a
  PII-free ``ErasureRequest``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import (
    ADDRESS_CHANNELS,
    AuditEvent,
    BlocklistEntry,
    BlocklistRecovery,
    ConsentState,
    ErasureRequest,
    InboundMessage,
    OutboundMessage,
    Persona,
    PersonaStatus,
    PointsEntry,
    Purchase,
)
from ..normalize import identifier_digest, normalize_email, try_phone
from . import consent as consent_rules
from .bulkdb import select_in
from .changes import Actor, Changeset, ConsentAction, ConsentOp, PointsOp, apply
from .merge import follow_chain

ERASED = "[erased]"
# Audit keys whose values are not personal data (kept after an erasure).
_KEEP_AUDIT_KEYS = {"points_balance", "status", "favorite_store", "loyalty_enrolled", "version"}

# Other apps register what they must scrub: hook(persona_ids, personal_values).
# (personas imports neither imports nor flows; they register from their AppConfig.ready.)
ErasureHook = Callable[[list[int], list[str]], None]
ERASURE_HOOKS: list[ErasureHook] = []


def register_erasure_hook(hook: ErasureHook) -> None:
    if hook not in ERASURE_HOOKS:
        ERASURE_HOOKS.append(hook)


# ---------------------------------------------------------------------------------------------
# Hashing


def identifier_digests(*, phone: str | None = None, email: str | None = None) -> list[str]:
    """Digests of already-normalised identifiers (E.164 phone, lower-case email)."""
    out = []
    if phone:
        out.append(identifier_digest("phone", phone))
    if email:
        out.append(identifier_digest("email", email))
    return out


@dataclass(frozen=True)
class Identifier:
    kind: str
    value: str

    @property
    def digest(self) -> str:
        return identifier_digest(self.kind, self.value)


def parse_identifier(raw: str) -> Identifier:
    """A phone (any format) or an email typed by a person → its normalised form."""
    text = (raw or "").strip()
    if "@" in text:
        try:
            email = normalize_email(text)
        except ValidationError as exc:
            raise ValidationError("Enter a valid email address or phone number.") from exc
        if email:
            return Identifier("email", email)
    else:
        phone = try_phone(text)
        if phone:
            return Identifier("phone", phone)
    raise ValidationError("Enter a valid email address or phone number.")


def blocked_digests(digests: Iterable[str]) -> set[str]:
    """The subset of ``digests`` on the blocklist: one indexed query for a whole batch."""
    meta = BlocklistEntry._meta
    column = meta.get_field("digest").column
    return {row[0] for row in select_in(meta.db_table, [column], column, list(set(digests)))}


def is_blocked(*, phone: str | None = None, email: str | None = None) -> bool:
    digests = identifier_digests(phone=phone, email=email)
    return bool(digests) and BlocklistEntry.objects.filter(digest__in=digests).exists()


# ---------------------------------------------------------------------------------------------
# Blocklist


def _matching(identifiers: Iterable[Identifier]) -> Q:
    q = Q(pk__in=[])
    for ident in identifiers:
        q |= Q(**{ident.kind: ident.value})
    return q


def blocklist(identifiers: Iterable[Identifier], *, reason: str) -> list[str]:
    """Add identifiers to the blocklist and hide every persona that carries one of them."""
    identifiers = list(identifiers)
    digests = []
    with transaction.atomic():
        for ident in identifiers:
            BlocklistEntry.objects.get_or_create(
                digest=ident.digest, defaults={"kind": ident.kind, "reason": reason}
            )
            digests.append(ident.digest)
        if identifiers:
            Persona.objects.filter(_matching(identifiers)).update(hidden=True)
    return digests


def recover(raw_identifier: str, *, user, reason: str) -> BlocklistRecovery:
    """Account recovery: remove a blocklist entry found by its phone or email (hashed)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Give a reason for the recovery.")
    ident = parse_identifier(raw_identifier)
    with transaction.atomic():
        entry = BlocklistEntry.objects.select_for_update().filter(digest=ident.digest).first()
        if entry is None:
            raise ValidationError("That phone number or email is not on the blocklist.")
        entry.delete()
        # Unhide personas with this identifier unless their other identifier is still listed.
        unhidden = 0
        for persona in Persona.objects.filter(_matching([ident]), hidden=True).exclude(
            status=PersonaStatus.ERASED
        ):
            if not is_blocked(phone=persona.phone, email=persona.email):
                Persona.objects.filter(pk=persona.pk).update(hidden=False)
                unhidden += 1
        return BlocklistRecovery.objects.create(
            digest=ident.digest,
            kind=ident.kind,
            removed_by=user,
            reason=reason[:300],
            personas_unhidden=unhidden,
        )


def lookup_entry(raw_identifier: str) -> BlocklistEntry | None:
    return BlocklistEntry.objects.filter(digest=parse_identifier(raw_identifier).digest).first()


# ---------------------------------------------------------------------------------------------
# Erasure


def _erase_changeset(persona: Persona) -> Changeset:
    consents = [ConsentOp(c, ConsentAction.FORCE_OPT_OUT) for c, _ in persona.consents]
    points = []
    if persona.points_balance:
        points.append(PointsOp(PointsEntry.Kind.REMOVAL, -persona.points_balance, "Data deletion"))
    return Changeset(
        fields={
            "first_name": "",
            "last_name": "",
            "email": None,
            "phone": None,
            "birthday": None,
            "customer_id": None,
            "loyalty_enrolled": False,
        },
        remove=sorted((persona.attributes or {}).keys()),
        consents=consents,
        points=points,
        status=(PersonaStatus.ERASED, ""),
        action="erased",
        note="Full opt-out and data deletion",
    )


def _personal_values(personas: Iterable[Persona]) -> list[str]:
    values: set[str] = set()
    for p in personas:
        for v in (p.first_name, p.last_name, p.email, p.phone, p.customer_id):
            if v:
                values.add(str(v))
        if p.birthday:
            values.add(p.birthday.isoformat())
        for v in (p.attributes or {}).values():
            if isinstance(v, str) and len(v) >= 3:
                values.add(v)
    return sorted(values)


def _scrub_changes(changes: dict) -> dict:
    out = {}
    for key, entry in (changes or {}).items():
        if key in _KEEP_AUDIT_KEYS or key.startswith("consent:"):
            out[key] = entry
            continue
        scrubbed = dict(entry) if isinstance(entry, dict) else {}
        for part in ("before", "after"):
            if scrubbed.get(part) not in (None, ""):
                scrubbed[part] = ERASED
        out[key] = scrubbed
    return out


def _scrub_related(persona_ids: list[int], values: list[str]) -> None:
    for event in AuditEvent.objects.filter(persona_id__in=persona_ids).only("id", "changes"):
        AuditEvent.objects.filter(pk=event.pk).update(
            changes=_scrub_changes(event.changes), note=""
        )
    OutboundMessage.objects.filter(persona_id__in=persona_ids).update(to="", body=ERASED)
    InboundMessage.objects.filter(persona_id__in=persona_ids).update(from_number="", body="")
    Purchase.objects.filter(persona_id__in=persona_ids).update(persona=None)
    # Points entries and consent history stay: they hold no personal values.
    for hook in ERASURE_HOOKS:
        hook(persona_ids, values)


def _related_personas(persona: Persona, *, shared_identifiers: bool = True) -> list[Persona]:
    """The persona, every persona merged into it (any depth) and, for staff
    (``shared_identifiers``), any that shares an identifier with one of them."""
    found: dict[int, Persona] = {persona.pk: persona}
    frontier = [persona]
    while frontier:
        ids = [p.pk for p in frontier]
        q = Q(merged_into_id__in=ids)
        for p in frontier if shared_identifiers else ():
            if p.phone:
                q |= Q(phone=p.phone)
            if p.email:
                q |= Q(email=p.email)
        frontier = [
            p
            for p in Persona.objects.filter(q).exclude(status=PersonaStatus.ERASED)
            if p.pk not in found
        ]
        for p in frontier:
            found[p.pk] = p
    return list(found.values())


def _erase_locked(personas: list[Persona], actor: Actor) -> tuple[list[int], list[str], int]:
    values = _personal_values(personas)
    identifiers = []
    points_removed = 0
    suppress = []
    now = timezone.now()
    for p in personas:
        if p.phone:
            identifiers.append(Identifier("phone", p.phone))
        if p.email:
            identifiers.append(Identifier("email", p.email))
        for channel in ADDRESS_CHANNELS:
            address = consent_rules.address_of(channel, phone=p.phone, email=p.email)
            if address:
                # The opt-out outlives the data: whoever gets the address later starts opted
                # out until the customer opts in from it (the record keeps no readable address).
                suppress.append(
                    consent_rules.AddressWrite(
                        channel,
                        address,
                        ConsentState.OPTED_OUT,
                        True,
                        ConsentState.OPTED_OUT,
                        actor.kind,
                        actor.label,
                        "Full opt-out and data deletion",
                    )
                )
        points_removed += p.points_balance
    consent_rules.write_records(suppress, holders=[p.pk for p in personas], now=now)
    for p in personas:
        apply(p.pk, _erase_changeset(p), actor)
    ids = [p.pk for p in personas]
    Persona.objects.filter(pk__in=ids).update(archived_reason="", hidden=True)
    digests = blocklist(identifiers, reason=BlocklistEntry.Reason.ERASURE)
    _scrub_related(ids, values)
    return ids, sorted(set(digests)), points_removed


def erase(persona: Persona | int, *, actor: Actor, via: str, requested_by=None) -> ErasureRequest:
    """Full opt-out + data deletion of one customer, atomically."""
    persona_id = persona if isinstance(persona, int) else persona.pk
    with transaction.atomic():
        target = Persona.objects.select_for_update().get(pk=persona_id)
        if target.status == PersonaStatus.ERASED:
            raise ValidationError("This persona's data was already deleted.")
        personas = _related_personas(target)
        Persona.objects.select_for_update().filter(pk__in=[p.pk for p in personas]).order_by(
            "pk"
        ).exists()
        ids, digests, points = _erase_locked(personas, actor)
        return ErasureRequest.objects.create(
            via=via,
            requested_by=requested_by,
            persona_ids=ids,
            digests=digests,
            points_removed=points,
            matched=True,
        )


def erase_by_identifiers(identifiers: list[Identifier], *, via: str) -> ErasureRequest:
    """The customer's own request (identifiers proven by a one-time code).

    Whether or not we hold data for them, the identifiers are blocklisted and a record is kept,
    so the outcome never tells a caller whether the customer was known.
    """
    actor = Actor.customer("data-controls page")
    with transaction.atomic():
        targets = list(
            Persona.objects.select_for_update()
            .filter(_matching(identifiers))
            .exclude(status=PersonaStatus.ERASED)
            .order_by("pk")
        )
        personas: dict[int, Persona] = {}
        for t in targets:
            # A merged-away persona's identifier resolves to its survivor (staff made them
            # one customer). Then only what the proven identifiers hold and what staff merged
            # into it: never a persona reached through an identifier nobody proved.
            t = follow_chain(t) if t.status == PersonaStatus.MERGED else t
            for p in _related_personas(t, shared_identifiers=False):
                personas.setdefault(p.pk, p)
        ids, digests, points = _erase_locked(list(personas.values()), actor)
        digests = sorted(
            set(digests) | set(blocklist(identifiers, reason=BlocklistEntry.Reason.ERASURE))
        )
        return ErasureRequest.objects.create(
            via=via, persona_ids=ids, digests=digests, points_removed=points, matched=bool(ids)
        )
