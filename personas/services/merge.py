"""Merge and unmerge personas, through the one mutation path, atomically.

Merge: the survivor takes the chosen standard traits (blanks filled from the other profile), the
union of custom attributes (its own value wins a conflict unless chosen otherwise), per channel
the consent rule below, the other's points through ledger entries, its purchases, audit trail
and consent history; the merged persona becomes status "merged", points to the survivor and
keeps its identifiers for ``merge:`` lookups. Everything the merge did is recorded so unmerge
can restore both personas exactly.

Consents: text, voice and email consent belong to the address (``services.consent``), so the
survivor shows the records of the phone and email it ends up holding: choosing the other
profile's phone brings that phone's record, and no consent moves onto a different address.
Push and browser (per device): an opt-out on either side stays an opt-out; otherwise a consent
the customer gave on either profile stays given (opted in > pending > never asked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from ..models import (
    ADDRESS_CHANNELS,
    AuditEvent,
    ConsentChange,
    MergeRecord,
    NotDuplicate,
    Persona,
    PersonaStatus,
    PointsEntry,
    PossibleDuplicate,
    Purchase,
)
from ..models.persona import is_visible, visible_q
from . import consent as consent_rules
from .changes import (
    Actor,
    AttributeOp,
    Changeset,
    ConsentAction,
    ConsentOp,
    PointsOp,
    apply,
)

TRAITS = ("first_name", "last_name", "email", "phone", "birthday", "customer_id")
CHANNELS = ("text", "email", "voice", "push", "browser")
_CONSENT_RANK = {"opted_out": 4, "opted_in": 3, "pending": 2, "never": 1}


class MergeError(ValidationError):
    pass


def snapshot(p: Persona) -> dict[str, Any]:
    return {
        **{
            t: (getattr(p, t).isoformat() if t == "birthday" and p.birthday else getattr(p, t))
            for t in TRAITS
        },
        "loyalty_enrolled": p.loyalty_enrolled,
        "attributes": dict(p.attributes or {}),
        "consents": {c: p.consent(c) for c in CHANNELS},
        "points_balance": p.points_balance,
        "favorite_store_id": p.favorite_store_id,
        "favorite_store_source": p.favorite_store_source,
        "status": p.status,
        "archived_reason": p.archived_reason,
    }


@dataclass
class Preview:
    survivor: Persona
    other: Persona
    rows: list[dict[str, Any]]
    attributes: list[dict[str, Any]]
    consents: list[dict[str, Any]]
    points: int


def _empty(value: Any) -> bool:
    return value in (None, "")


def resolve(
    survivor: Persona, other: Persona, choices: dict[str, str] | None = None
) -> dict[str, Any]:
    """The survivor's traits, attributes and consents after a merge (pure)."""
    choices = choices or {}
    s, o = snapshot(survivor), snapshot(other)
    fields, sources = {}, {}
    for t in TRAITS:
        pick = choices.get(t)
        if pick == "merged" and not _empty(o[t]):
            fields[t], sources[t] = o[t], "merged"
        elif _empty(s[t]) and not _empty(o[t]):
            fields[t], sources[t] = o[t], "merged"
        else:
            fields[t], sources[t] = s[t], "survivor"
    attrs = dict(o["attributes"])
    for key, value in s["attributes"].items():
        if choices.get(f"attr:{key}") == "merged" and key in attrs:
            sources[f"attr:{key}"] = "merged"
            continue
        attrs[key] = value
        sources[f"attr:{key}"] = "survivor"
    for key in o["attributes"]:
        sources.setdefault(f"attr:{key}", "merged")
    consents = {}
    for c in CHANNELS:
        if c in ADDRESS_CHANNELS:
            address = consent_rules.address_of(c, phone=fields["phone"], email=fields["email"])
            consents[c] = consent_rules.record_for(c, address).state
        else:
            consents[c] = max(s["consents"][c], o["consents"][c], key=lambda st: _CONSENT_RANK[st])
    return {
        "fields": fields,
        "attributes": attrs,
        "consents": consents,
        "loyalty_enrolled": s["loyalty_enrolled"] or o["loyalty_enrolled"],
        "sources": sources,
    }


def preview(survivor: Persona, other: Persona, choices: dict[str, str] | None = None) -> Preview:
    result = resolve(survivor, other, choices)
    s, o = snapshot(survivor), snapshot(other)
    rows = [
        {
            "field": t,
            "label": t.replace("_", " ").capitalize().replace("id", "ID"),
            "survivor": s[t],
            "other": o[t],
            "result": result["fields"][t],
            "conflict": not _empty(s[t]) and not _empty(o[t]) and s[t] != o[t],
            "source": result["sources"][t],
        }
        for t in TRAITS
    ]
    keys = sorted(set(s["attributes"]) | set(o["attributes"]))
    attributes = [
        {
            "key": k,
            "survivor": s["attributes"].get(k),
            "other": o["attributes"].get(k),
            "result": result["attributes"].get(k),
            "conflict": k in s["attributes"]
            and k in o["attributes"]
            and s["attributes"][k] != o["attributes"][k],
        }
        for k in keys
    ]
    consents = [
        {
            "channel": c,
            "survivor": s["consents"][c],
            "other": o["consents"][c],
            "result": result["consents"][c],
        }
        for c in CHANNELS
    ]
    return Preview(survivor, other, rows, attributes, consents, other.points_balance)


def _lock(*ids: int) -> dict[int, Persona]:
    return {p.pk: p for p in Persona.objects.select_for_update().filter(pk__in=ids).order_by("pk")}


def merge(
    survivor_id: int,
    merged_id: int,
    *,
    actor: Actor,
    choices: dict[str, str] | None = None,
) -> MergeRecord:
    if survivor_id == merged_id:
        raise MergeError("Choose two different personas to merge.")
    try:
        with transaction.atomic():
            return _merge(survivor_id, merged_id, actor, choices or {})
    except IntegrityError as exc:
        raise MergeError(
            "Another change to one of these personas got there first; nothing was merged. "
            "Reload and try again."
        ) from exc


def _merge(survivor_id: int, merged_id: int, actor: Actor, choices: dict[str, str]) -> MergeRecord:
    locked = _lock(survivor_id, merged_id)
    survivor, other = locked.get(survivor_id), locked.get(merged_id)
    if survivor is None or other is None or not is_visible(survivor) or not is_visible(other):
        raise MergeError("One of these personas no longer exists.")
    if survivor.status != PersonaStatus.ACTIVE:
        raise MergeError(
            f"{survivor.display_name} is {survivor.get_status_display().lower()}: only an active "
            "persona can be the surviving profile."
        )
    if other.status not in (PersonaStatus.ACTIVE, PersonaStatus.ARCHIVED):
        raise MergeError(
            f"{other.display_name} was already {other.get_status_display().lower()}; "
            "it cannot be merged again."
        )
    survivor_before, merged_before = snapshot(survivor), snapshot(other)
    result = resolve(survivor, other, choices)
    moved = {
        "purchases": list(Purchase.objects.filter(persona=other).values_list("pk", flat=True)),
        "audit": list(AuditEvent.objects.filter(persona=other).values_list("pk", flat=True)),
        "consent_changes": list(
            ConsentChange.objects.filter(persona=other).values_list("pk", flat=True)
        ),
    }
    points = other.points_balance
    # 1. The merged persona leaves "active" first, freeing its phone/email for the survivor.
    apply(
        other,
        Changeset(
            status=(PersonaStatus.MERGED, ""),
            merged_into=survivor.pk,
            points=[PointsOp(PointsEntry.Kind.MERGE, -points, f"Merged into #{survivor.pk}")]
            if points
            else [],
            action="merged away",
            note=f"Merged into persona #{survivor.pk}",
        ),
        actor,
    )
    # 2. The survivor takes the result.
    fields = {t: v for t, v in result["fields"].items() if v != survivor_before[t]}
    if result["loyalty_enrolled"] and not survivor.loyalty_enrolled:
        fields["loyalty_enrolled"] = True
    attrs = result["attributes"]
    changeset = Changeset(
        fields=fields,
        set=[
            AttributeOp(k, v)
            for k, v in attrs.items()
            if k not in survivor_before["attributes"] or survivor_before["attributes"][k] != v
        ],
        consents=[
            ConsentOp(c, ConsentAction.ADOPT, state)
            for c, state in result["consents"].items()
            if state != survivor_before["consents"][c] and c not in ADDRESS_CHANNELS
        ],
        points=[PointsOp(PointsEntry.Kind.MERGE, points, f"Merged from #{other.pk}")]
        if points
        else [],
        favorite_store=(other.favorite_store_id, other.favorite_store_source)
        if other.favorite_store_id and other.favorite_store_source
        else None,
        action="merged",
        note=f"Merged persona #{other.pk} into this one",
        prechecked=True,
    )
    apply(survivor, changeset, actor)
    Purchase.objects.filter(pk__in=moved["purchases"]).update(persona=survivor)
    AuditEvent.objects.filter(pk__in=moved["audit"]).update(persona=survivor)
    ConsentChange.objects.filter(pk__in=moved["consent_changes"]).update(persona=survivor)
    survivor.refresh_from_db()
    return MergeRecord.objects.create(
        survivor=survivor,
        merged=other,
        created_by=actor.user,
        survivor_before=survivor_before,
        survivor_after=snapshot(survivor),
        merged_before=merged_before,
        sources=result["sources"],
        moved=moved,
        points_moved=points,
    )


def unmerge(record_id: int, *, actor: Actor) -> MergeRecord:
    """Restore the merged persona exactly and take back the survivor's share of the merge."""
    with transaction.atomic():
        record = MergeRecord.objects.select_for_update().get(pk=record_id)
        if record.undone_at:
            raise MergeError("This merge was already undone.")
        locked = _lock(record.survivor_id, record.merged_id)
        survivor, merged = locked[record.survivor_id], locked[record.merged_id]
        if merged.status != PersonaStatus.MERGED or merged.merged_into_id != survivor.pk:
            raise MergeError("The merged persona has changed since; this merge cannot be undone.")
        if survivor.status == PersonaStatus.MERGED:
            raise MergeError(
                f"{survivor.display_name} was itself merged into another persona since. "
                "Undo that later merge first (from that persona's Activity), then this one."
            )
        if survivor.status != PersonaStatus.ACTIVE:
            raise MergeError("The surviving persona is no longer active; it cannot be unmerged.")
        before, after, mb = record.survivor_before, record.survivor_after, record.merged_before
        current = snapshot(survivor)
        # The survivor's share: revert what the merge changed, unless edited since.
        fields = {t: before[t] for t in TRAITS if before[t] != after[t] and current[t] == after[t]}
        if before["loyalty_enrolled"] != after["loyalty_enrolled"] and (
            current["loyalty_enrolled"] == after["loyalty_enrolled"]
        ):
            fields["loyalty_enrolled"] = before["loyalty_enrolled"]
        set_ops, remove = [], []
        for key, value in after["attributes"].items():
            if current["attributes"].get(key, object()) != value:
                continue  # edited since: keep the edit
            if key not in before["attributes"]:
                remove.append(key)
            elif before["attributes"][key] != value:
                set_ops.append(AttributeOp(key, before["attributes"][key]))
        consents = [
            ConsentOp(c, ConsentAction.ADOPT, before["consents"][c])
            for c in CHANNELS
            if c not in ADDRESS_CHANNELS
            and before["consents"][c] != after["consents"][c]
            and current["consents"][c] == after["consents"][c]
        ]
        # The merged persona's identifiers must be free again (apart from the survivor's copy).
        for key in ("phone", "email"):
            value = mb[key]
            if not value or mb["status"] != PersonaStatus.ACTIVE:
                continue
            clash = Persona.objects.filter(status=PersonaStatus.ACTIVE, **{key: value}).exclude(
                pk=survivor.pk
            )
            survivor_keeps = survivor.pk and (fields.get(key, current[key]) == value)
            if clash.exists() or survivor_keeps:
                label = "phone number" if key == "phone" else "email"
                raise MergeError(
                    f"Cannot unmerge: the merged persona's {label} now belongs to another active "
                    "persona. Change or archive that persona first."
                )
        points = record.points_moved
        apply(
            survivor,
            Changeset(
                fields=fields,
                set=set_ops,
                remove=remove,
                consents=consents,
                points=[PointsOp(PointsEntry.Kind.MERGE, -points, f"Unmerged #{merged.pk}")]
                if points
                else [],
                favorite_store=(before["favorite_store_id"], before["favorite_store_source"])
                if before["favorite_store_id"]
                and before["favorite_store_id"] != after["favorite_store_id"]
                and current["favorite_store_id"] == after["favorite_store_id"]
                else None,
                action="unmerged",
                note=f"Undid the merge of persona #{merged.pk}",
                prechecked=True,
            ),
            actor,
        )
        if (
            before["favorite_store_id"] != after["favorite_store_id"]
            and current["favorite_store_id"] == after["favorite_store_id"]
        ):
            Persona.objects.filter(pk=survivor.pk).update(
                favorite_store_id=before["favorite_store_id"],
                favorite_store_source=before["favorite_store_source"],
            )
        Purchase.objects.filter(pk__in=record.moved.get("purchases", [])).update(persona=merged)
        AuditEvent.objects.filter(pk__in=record.moved.get("audit", [])).update(persona=merged)
        ConsentChange.objects.filter(pk__in=record.moved.get("consent_changes", [])).update(
            persona=merged
        )
        restore_status = mb["status"]
        apply(
            merged,
            Changeset(
                status=(restore_status, mb.get("archived_reason", "")),
                points=[PointsOp(PointsEntry.Kind.MERGE, points, f"Unmerged from #{survivor.pk}")]
                if points
                else [],
                consents=[
                    ConsentOp(c, ConsentAction.ADOPT, mb["consents"][c])
                    for c in CHANNELS
                    if c not in ADDRESS_CHANNELS and merged.consent(c) != mb["consents"][c]
                ],
                action="unmerged",
                note=f"Restored from persona #{survivor.pk}",
                prechecked=True,
            ),
            actor,
        )
        record.undone_at = timezone.now()
        record.undone_by = actor.user
        record.save(update_fields=["undone_at", "undone_by"])
        return record


def follow_chain(persona: Persona, limit: int = 50) -> Persona:
    seen = {persona.pk}
    while persona.status == PersonaStatus.MERGED and persona.merged_into_id and limit:
        persona = Persona.objects.select_related("merged_into").get(pk=persona.merged_into_id)
        if persona.pk in seen:
            break
        seen.add(persona.pk)
        limit -= 1
    return persona


def not_duplicate(a: int, b: int, *, user: Any) -> None:
    """Staff say two personas are different customers. Only for profiles still in use."""
    usable = Persona.objects.visible().filter(
        pk__in=[a, b], status__in=[PersonaStatus.ACTIVE, PersonaStatus.ARCHIVED]
    )
    if a == b or usable.count() != 2:
        raise MergeError(
            "Only two active or archived personas can be marked as different customers; "
            "this one was merged away or its data deleted."
        )
    low, high = sorted((a, b))
    NotDuplicate.objects.get_or_create(low_id=low, high_id=high, defaults={"created_by": user})


@dataclass
class Candidate:
    a: Persona
    b: Persona
    score: int
    reason: str


def duplicate_candidates(limit: int = 100) -> list[Candidate]:
    """Pairs worth a look, ranked; never merges anything by itself."""
    visible = Persona.objects.visible().exclude(
        status__in=[PersonaStatus.ERASED, PersonaStatus.MERGED]
    )
    pairs: dict[tuple[int, int], Candidate] = {}

    def add(group: list[Persona], score: int, reason: str) -> None:
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                key = (min(a.pk, b.pk), max(a.pk, b.pk))
                if key not in pairs or pairs[key].score < score:
                    pairs[key] = Candidate(a, b, score, reason)

    for column, label in (("phone", "Same phone number"), ("email", "Same email")):
        values = (
            visible.exclude(**{f"{column}__isnull": True})
            .values(column)
            .annotate(n=Count("id"))
            .filter(n__gt=1)
            .values_list(column, flat=True)[:limit]
        )
        for value in values:
            add(list(visible.filter(**{column: value})[:5]), 100, label)
    same_name_birthday = (
        visible.exclude(first_key="")
        .exclude(birthday__isnull=True)
        .values("first_key", "last_key", "birthday")
        .annotate(n=Count("id"))
        .filter(n__gt=1)[:limit]
    )
    for row in same_name_birthday:
        add(
            list(visible.filter(**{k: row[k] for k in ("first_key", "last_key", "birthday")})[:5]),
            80,
            "Same name and birthday",
        )
    same_name = (
        visible.exclude(first_key="")
        .exclude(last_key="")
        .values("first_key", "last_key")
        .annotate(n=Count("id"))
        .filter(n__gt=1)[: limit * 2]
    )
    for row in same_name:
        group = list(visible.filter(first_key=row["first_key"], last_key=row["last_key"])[:6])
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                if a.email and b.email and _similar_email(a.email, b.email):
                    add([a, b], 60, "Same name, similar email")
    # Public submissions that named a customer's identifier without proving it.
    flagged = (
        PossibleDuplicate.objects.filter(visible_q("persona__"), visible_q("other__"))
        .select_related("persona", "other")
        .order_by("-id")[:limit]
    )
    for flag in flagged:
        pair = [flag.persona, flag.other]
        if all(p.status in (PersonaStatus.ACTIVE, PersonaStatus.ARCHIVED) for p in pair):
            add(pair, 90, flag.reason)
    # A persona holding an identifier of a merged-away persona: the same customer as the
    # survivor, most likely (imported or signed up again with the old phone or email).
    for column, label in (("phone", "phone number"), ("email", "email")):
        merged = list(
            Persona.objects.visible()
            .filter(status=PersonaStatus.MERGED)
            .exclude(**{f"{column}__isnull": True})
            .order_by("-id")[:limit]
        )
        holders: dict[str, list[Persona]] = {}
        values = {getattr(old, column) for old in merged}
        for other in visible.filter(**{f"{column}__in": values}):
            holders.setdefault(getattr(other, column), []).append(other)
        for old in merged:
            others = holders.get(getattr(old, column), [])
            if not others:
                continue
            survivor = follow_chain(old)
            if survivor.status != PersonaStatus.ACTIVE or not is_visible(survivor):
                continue
            for other in others[:5]:
                if other.pk != survivor.pk:
                    add([survivor, other], 95, f"Has the {label} of a persona merged into this one")
    dismissed = set(
        NotDuplicate.objects.filter(
            Q(low_id__in=[k[0] for k in pairs]) | Q(high_id__in=[k[1] for k in pairs])
        ).values_list("low_id", "high_id")
    )
    ranked = [c for k, c in pairs.items() if k not in dismissed]
    ranked.sort(key=lambda c: (-c.score, -max(c.a.pk, c.b.pk)))
    return ranked[:limit]


def _similar_email(a: str, b: str) -> bool:
    def local(e: str) -> str:
        name = e.split("@")[0].split("+")[0]
        return name.replace(".", "").replace("_", "").replace("-", "")

    return a != b and local(a) == local(b)


def duplicate_hint(persona: Persona) -> Persona | None:
    """Another visible persona that looks like the same customer (for the detail page)."""
    q = Q(pk__in=[])
    if persona.phone:
        q |= Q(phone=persona.phone)
    if persona.email:
        q |= Q(email=persona.email)
    if persona.first_key and persona.last_key and persona.birthday:
        q |= Q(first_key=persona.first_key, last_key=persona.last_key, birthday=persona.birthday)
    candidate = (
        Persona.objects.visible()
        .filter(q)
        .exclude(pk=persona.pk)
        .exclude(status__in=[PersonaStatus.ERASED, PersonaStatus.MERGED])
        .order_by("-id")
        .first()
    )
    if candidate is None:
        return None
    low, high = sorted((persona.pk, candidate.pk))
    if NotDuplicate.objects.filter(low_id=low, high_id=high).exists():
        return None
    return candidate


def merge_lookup(raw: str) -> tuple[Persona | None, Persona | None]:
    """``merge:<phone or email>`` → (the merged persona found, the surviving persona)."""
    from .privacy import parse_identifier  # cycle: privacy follows merge chains

    ident = parse_identifier(raw)
    found = (
        Persona.objects.visible()
        .filter(status=PersonaStatus.MERGED, **{ident.kind: ident.value})
        .order_by("-id")
        .first()
    )
    if found is None:
        return None, None
    survivor = follow_chain(found)
    if not is_visible(survivor) or survivor.status == PersonaStatus.ERASED:
        return None, None
    return found, survivor


def merge_pairs(pairs: list[tuple[int, int]], *, actor: Actor) -> list[tuple[int, int, str]]:
    """Bulk clean-up: merge each (survivor, merged) pair; one failure does not stop the rest."""
    out = []
    for survivor_id, merged_id in pairs:
        try:
            record = merge(survivor_id, merged_id, actor=actor)
        except (ValidationError, Persona.DoesNotExist) as exc:
            out.append((survivor_id, merged_id, " ".join(getattr(exc, "messages", [str(exc)]))))
        else:
            out.append((survivor_id, merged_id, f"merged (record #{record.pk})"))
    return out
