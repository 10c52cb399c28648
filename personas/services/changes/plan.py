"""Planning: a changeset applied to an in-memory persona (``plan_changes``) or to the plain
values of a new one (``plan_row``, the bulk import's fast path), describing the difference.
Writes nothing; the writers in ``write`` and ``bulk`` persist a plan."""

from __future__ import annotations

import datetime as dt
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from ...models import (
    ADDRESS_CHANNELS,
    Channel,
    ConsentChange,
    OutboundMessage,
    Persona,
    PersonaStatus,
    PointsEntry,
    Store,
)
from ...normalize import name_key
from .. import consent as consent_rules
from ..consent import AddressWrite, ConsentAction
from .rules import (
    address_write,
    apply_attribute_ops,
    consent_step,
    status_change_allowed,
    store_may_replace,
)
from .types import (
    Actor,
    BlockedIdentifierError,
    ChangeError,
    Changeset,
    Cleaned,
    ConsentOp,
    DuplicatePersonaError,
    Plan,
    PointsOp,
    StaleEditError,
)
from .validate import validate

MISSING = object()


def _json(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _set_field(plan: Plan, name: str, value: Any, key: str | None = None) -> None:
    persona = plan.persona
    before = getattr(persona, name)
    if before == value:
        return
    setattr(persona, name, value)
    plan.dirty_fields.add(name)
    plan.changes[key or name] = {"before": _json(before), "after": _json(value)}


def _plan_attributes(
    before_attrs: dict[str, Any], clean: Cleaned, changes: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """add → set → remove over ``before_attrs``; records each changed key in ``changes``."""
    after_attrs, outcomes = apply_attribute_ops(before_attrs, clean.add, clean.set, clean.remove)
    touched = {o["key"] for o in outcomes}
    for key in sorted(touched):
        b = before_attrs.get(key, MISSING)
        a = after_attrs.get(key, MISSING)
        if b is MISSING and a is MISSING:
            continue  # e.g. created then removed inside one node: nothing changed
        if b is not MISSING and a is not MISSING and a == b and type(a) is type(b):
            continue
        changes[f"attr:{key}"] = {
            "before": None if b is MISSING else b,
            "after": None if a is MISSING else a,
            "op": "created" if b is MISSING else ("removed" if a is MISSING else "replaced"),
            "ops": [f"{o['op']}:{o['result']}" for o in outcomes if o["key"] == key],
        }
    return after_attrs, outcomes


def _consent_change(
    plan: Plan,
    channel: str,
    before: str,
    after: str,
    hard: bool,
    actor: Actor,
    evidence: str,
    now: dt.datetime,
) -> None:
    """Record one consent change of the plan's persona (and of its address's record)."""
    persona = plan.persona
    setattr(persona, f"{channel}_consent", after)
    plan.dirty_fields.add(f"{channel}_consent")
    address = consent_rules.address_of(channel, phone=persona.phone, email=persona.email)
    digest = consent_rules.address_digest(channel, address) if address else ""
    plan.consent_changes.append(
        ConsentChange(
            channel=channel,
            before=before,
            after=after,
            hard=hard,
            actor_kind=actor.kind,
            actor_label=actor.label[:200],
            actor_user=actor.user,
            address=digest,
            evidence=evidence[:200],
            created_at=now,
        )
    )


def _derive_address_consents(plan: Plan, actor: Actor, now: dt.datetime) -> None:
    """A persona that holds a new address (or becomes active again) shows that address's own
    record: consent never travels from one phone number or email address to another."""
    persona = plan.persona
    for d in consent_rules.derive_from_addresses(
        phone=persona.phone,
        email=persona.email,
        current={c: persona.consent(c) for c in ADDRESS_CHANNELS},
    ):
        plan.changes[f"consent:{d.channel}"] = {
            "before": d.before,
            "after": d.after,
            "address": d.why,
        }
        _consent_change(plan, d.channel, d.before, d.after, False, actor, d.why, now)


def _plan_consent(plan: Plan, op: ConsentOp, actor: Actor, now: dt.datetime, evidence: str) -> None:
    persona = plan.persona
    field_name = f"{op.channel}_consent"
    before = getattr(persona, field_name)
    address = consent_rules.address_of(op.channel, phone=persona.phone, email=persona.email)
    step, record = consent_step(op, before, actor, address)
    if step.error:
        raise ChangeError({step.error[0]: [step.error[1]]})
    template = consent_rules.DOUBLE_OPT_IN_TEMPLATES.get(op.channel, "")
    if step.resend:
        if persona.pk:
            _refuse_fast_resend(persona, now, op.channel, template)
            plan.messages.append((op.channel, template))
            plan.changes[f"consent:{op.channel}"] = {
                "before": before,
                "after": before,
                "resent": True,
            }
        return
    if step.double_opt_in:
        plan.messages.append((op.channel, template))
    write = address_write(op, step, before, record, address, actor, evidence)
    if write is not None:
        plan.address_writes.append(write)
    if step.after == before:
        return
    entry = {"before": before, "after": step.after}
    if step.hard:
        entry["hard"] = True
    plan.changes[f"consent:{op.channel}"] = entry
    _consent_change(plan, op.channel, before, step.after, step.hard, actor, evidence, now)


def _refuse_fast_resend(persona: Persona, now: dt.datetime, channel: str, template: str) -> None:
    wait = settings.PERSONAS_DOI_RESEND_MINUTES
    recent = OutboundMessage.objects.filter(
        persona=persona,
        template=template,
        created_at__gte=now - dt.timedelta(minutes=wait),
    ).exists()
    if recent:
        what = "text" if channel == Channel.TEXT else "email"
        raise ChangeError(
            {
                f"{channel}_consent": [
                    f"A double opt-in {what} was sent less than {wait} minutes ago. "
                    "Give the customer time to reply before sending another."
                ]
            }
        )


def _plan_status(plan: Plan, status: str, reason: str, now: dt.datetime) -> None:
    persona = plan.persona
    current = persona.status
    if status == current:
        return
    if not status_change_allowed(current, status):
        raise ChangeError({"status": [f"A {current} persona cannot become {status}."]})
    if status == PersonaStatus.ACTIVE:
        _refuse_duplicates(persona, exclude_self=True, unarchive=True)
    _set_field(plan, "status", status)
    if status == PersonaStatus.ARCHIVED:
        _set_field(plan, "archived_reason", reason[:200])
        _set_field(plan, "archived_at", now)
    elif status == PersonaStatus.ACTIVE:
        _set_field(plan, "archived_reason", "")
        _set_field(plan, "archived_at", None)


def _refuse_duplicates(persona: Persona, *, exclude_self: bool, unarchive: bool = False) -> None:
    for name in ("phone", "email"):
        value = getattr(persona, name)
        if not value:
            continue
        qs = Persona.objects.filter(status=PersonaStatus.ACTIVE, **{name: value})
        if name == "phone":
            qs = qs.filter(phone_ext=persona.phone_ext)
        if exclude_self and persona.pk:
            qs = qs.exclude(pk=persona.pk)
        existing = qs.only("id", "first_name", "last_name", "email", "phone").first()
        if existing is not None:
            error = DuplicatePersonaError(name, existing)
            if unarchive:
                label = "phone number" if name == "phone" else "email"
                error.error_dict = {
                    name: [
                        ValidationError(
                            f"An active persona already has this {label}: merge the two "
                            "personas instead of unarchiving."
                        )
                    ]
                }
            raise error


def plan_changes(
    persona: Persona, changeset: Changeset, actor: Actor, *, now: dt.datetime | None = None
) -> Plan:
    """Apply a changeset to an in-memory persona and describe the difference.

    Shared by ``apply``, ``create`` and ``apply_many`` so every path has the same semantics.
    """
    now = now or timezone.now()
    creating = persona.pk is None
    clean = validate(changeset, creating=creating)
    plan = Plan(persona, warnings=clean.warnings)

    if not creating and changeset.expected:
        stale = [k for k, v in changeset.expected.items() if _current(persona, k) != v]
        if stale:
            raise StaleEditError(stale)

    if persona.status in (PersonaStatus.ERASED,) and not creating:
        raise ChangeError("This persona's data was deleted; it cannot be changed.")
    if (
        persona.status == PersonaStatus.MERGED
        and not creating
        and changeset.status is None
        and actor.kind not in ("customer", "system")
    ):
        # Only merge/unmerge (a status change) touch a merged-away profile; a customer's own
        # reply (STOP, YES) and the system's expiry still reach its number's consent.
        raise ChangeError(
            f"This persona was merged into persona #{persona.merged_into_id}: "
            "change the surviving profile instead (or undo the merge first)."
        )

    for name, value in clean.fields.items():
        _set_field(plan, name, value)
    if "first_name" in plan.dirty_fields:
        persona.first_key = name_key(persona.first_name)
        plan.dirty_fields.add("first_key")
    if "last_name" in plan.dirty_fields:
        persona.last_key = name_key(persona.last_name)
        plan.dirty_fields.add("last_key")
    if "loyalty_enrolled" in plan.dirty_fields:
        persona.loyalty_enrolled_at = now if persona.loyalty_enrolled else None
        plan.dirty_fields.add("loyalty_enrolled_at")

    if clean.add or clean.set or clean.remove:
        before_attrs = dict(persona.attributes or {})
        after_attrs, outcomes = _plan_attributes(before_attrs, clean, plan.changes)
        plan.attribute_ops = outcomes
        if after_attrs != before_attrs:
            persona.attributes = after_attrs
            plan.dirty_fields.add("attributes")

    if changeset.favorite_store is not None:
        store_id, source = changeset.favorite_store
        if store_may_replace(persona.favorite_store_id, persona.favorite_store_source, source):
            before = persona.favorite_store_id
            if before != store_id or persona.favorite_store_source != source:
                persona.favorite_store_id = store_id
                persona.favorite_store_source = source if store_id else ""
                plan.dirty_fields.update({"favorite_store", "favorite_store_source"})
                if before != store_id:
                    plan.changes["favorite_store"] = {
                        "before": _store_label(before),
                        "after": _store_label(store_id),
                        "source": source,
                    }

    if changeset.status is not None:
        _plan_status(plan, changeset.status[0], changeset.status[1], now)
        if persona.status == PersonaStatus.MERGED and changeset.merged_into:
            if persona.merged_into_id != changeset.merged_into:
                plan.changes["merged_into"] = {
                    "before": persona.merged_into_id,
                    "after": changeset.merged_into,
                }
                persona.merged_into_id = changeset.merged_into
                plan.dirty_fields.add("merged_into")
        elif persona.status != PersonaStatus.MERGED and persona.merged_into_id:
            plan.changes["merged_into"] = {"before": persona.merged_into_id, "after": None}
            persona.merged_into_id = None
            plan.dirty_fields.add("merged_into")

    if (
        creating
        or {"phone", "email"} & plan.dirty_fields
        or ("status" in plan.dirty_fields and persona.status == PersonaStatus.ACTIVE)
    ):
        _derive_address_consents(plan, actor, now)
    evidence = changeset.evidence or actor.label
    for op in changeset.consents:
        _plan_consent(plan, op, actor, now, evidence)

    if changeset.points:
        if persona.status != PersonaStatus.ACTIVE and any(
            op.kind == PointsEntry.Kind.EARN for op in changeset.points
        ):
            raise ChangeError({"points": ["An archived persona earns no points."]})
        before = persona.points_balance
        for op in changeset.points:
            persona.points_balance += op.points
            plan.points_entries.append(
                PointsEntry(
                    kind=op.kind,
                    points=op.points,
                    reason=op.reason[:200],
                    purchase_id=op.purchase_id,
                    actor_user=actor.user,
                    actor_label=actor.label[:200],
                    created_at=now,
                )
            )
        if persona.points_balance != before:
            plan.dirty_fields.add("points_balance")
            plan.changes["points_balance"] = {"before": before, "after": persona.points_balance}

    if (creating or {"phone", "email"} & plan.dirty_fields) and not changeset.prechecked:
        from ..privacy import is_blocked  # cycle: privacy erases through this package

        if persona.status != PersonaStatus.ERASED and is_blocked(
            phone=persona.phone if (creating or "phone" in plan.dirty_fields) else None,
            email=persona.email if (creating or "email" in plan.dirty_fields) else None,
        ):
            raise BlockedIdentifierError()
    if changeset.prechecked:
        pass
    elif creating:
        _refuse_duplicates(persona, exclude_self=False)
    elif {
        "phone",
        "phone_ext",
        "email",
    } & plan.dirty_fields and persona.status == PersonaStatus.ACTIVE:
        _refuse_duplicates(persona, exclude_self=True)
    if not changeset.send_messages:
        plan.deferred_messages = plan.messages
        plan.messages = []
    return plan


def _current(persona: Persona, key: str) -> Any:
    if key.startswith("attr:"):
        return (persona.attributes or {}).get(key[5:])
    if key.startswith("consent:"):
        return persona.consent(key[8:])
    return _json(getattr(persona, key, None))


STORE_LABELS: ContextVar[dict[int, str] | None] = ContextVar("store_labels", default=None)


def _store_label(store_id: int | None) -> str | None:
    if store_id is None:
        return None
    cache = STORE_LABELS.get()
    if cache is not None and store_id in cache:
        return cache[store_id]
    name = Store.objects.filter(pk=store_id).values_list("name", flat=True).first()
    label = name or f"Store #{store_id}"
    if cache is not None:
        cache[store_id] = label
    return label


class NotFast(Exception):
    pass


_FAST_CONSENT_ACTIONS = (
    ConsentAction.OPT_IN,
    ConsentAction.OPT_OUT,
    ConsentAction.REQUEST_DOUBLE_OPT_IN,
)


def fast_create_eligible(changeset: Changeset) -> bool:
    return (
        changeset.prechecked
        and not changeset.remove
        and changeset.status is None
        and not changeset.merged_into
        and not changeset.expected
        and all(op.action in _FAST_CONSENT_ACTIONS for op in changeset.consents)
    )


@dataclass
class RowPlan:
    values: dict[str, Any]
    changes: dict[str, dict[str, Any]]
    # channel, before, after, hard, address digest, evidence
    consents: list[tuple[str, str, str, bool, str, str]]
    points: list[PointsOp]
    actor: Actor
    note: str
    deferred: bool
    address_writes: list[AddressWrite] = field(default_factory=list)


def fresh_values(entry_source: str) -> dict[str, Any]:
    persona = Persona(entry_source=entry_source)
    return {f.attname: getattr(persona, f.attname) for f in Persona._meta.concrete_fields}


def plan_row(
    changeset: Changeset, actor: Actor, defaults: dict[str, Any], now: dt.datetime
) -> RowPlan:
    clean = validate(changeset, creating=True)
    values = dict(defaults)
    changes: dict[str, dict[str, Any]] = {}
    for name, value in clean.fields.items():
        before = values[name]
        if before == value:
            continue
        values[name] = value
        changes[name] = {"before": _json(before), "after": _json(value)}
    values["first_key"] = name_key(values["first_name"])
    values["last_key"] = name_key(values["last_name"])
    if values["loyalty_enrolled"]:
        values["loyalty_enrolled_at"] = now
    attributes: dict[str, Any] = {}
    if clean.add or clean.set:
        attributes, _ = _plan_attributes({}, clean, changes)
    values["attributes"] = attributes
    if changeset.favorite_store is not None:
        store_id, source = changeset.favorite_store
        values["favorite_store_id"] = store_id
        values["favorite_store_source"] = source if store_id else ""
        if store_id is not None:
            changes["favorite_store"] = {
                "before": None,
                "after": _store_label(store_id),
                "source": source,
            }
    consents: list[tuple[str, str, str, bool, str, str]] = []
    writes: list[AddressWrite] = []
    messages = False
    for d in consent_rules.derive_from_addresses(
        phone=values["phone"],
        email=values["email"],
        current={c: values[f"{c}_consent"] for c in ADDRESS_CHANNELS},
    ):
        values[f"{d.channel}_consent"] = d.after
        changes[f"consent:{d.channel}"] = {"before": d.before, "after": d.after, "address": d.why}
        consents.append((d.channel, d.before, d.after, False, d.digest, d.why))
    evidence = (changeset.evidence or actor.label)[:200]
    for op in changeset.consents:
        field_name = f"{op.channel}_consent"
        before = values[field_name]
        address = consent_rules.address_of(op.channel, phone=values["phone"], email=values["email"])
        step, record = consent_step(op, before, actor, address)
        if step.error:
            raise NotFast  # refused: the model path says why
        if step.resend:
            continue
        messages = messages or step.double_opt_in
        write = address_write(op, step, before, record, address, actor, evidence)
        if write is not None:
            writes.append(write)
        if step.after == before:
            continue
        values[field_name] = step.after
        changes[f"consent:{op.channel}"] = {"before": before, "after": step.after}
        digest = consent_rules.address_digest(op.channel, address) if address else ""
        consents.append((op.channel, before, step.after, step.hard, digest, evidence))
    if messages and changeset.send_messages:
        raise NotFast  # a text to queue now: the model path queues it
    if changeset.points:
        balance = sum(op.points for op in changeset.points)
        values["points_balance"] = balance
        if balance != 0:
            changes["points_balance"] = {"before": 0, "after": balance}
    return RowPlan(
        values, changes, consents, changeset.points, actor, changeset.note, messages, writes
    )


def plan_create(changeset: Changeset, actor: Actor, *, entry_source: str) -> dict[str, Any]:
    """What creating a persona from ``changeset`` would record (a dry run: nothing written).

    Raises ChangeError exactly as ``create_many`` would report it.
    """
    now = timezone.now()
    token = STORE_LABELS.set({})
    try:
        if fast_create_eligible(changeset):
            try:
                return plan_row(changeset, actor, fresh_values(entry_source), now).changes
            except NotFast:
                pass
        persona = Persona(entry_source=entry_source, created_at=now, updated_at=now)
        return plan_changes(persona, changeset, actor, now=now).changes
    finally:
        STORE_LABELS.reset(token)
