"""Writing one change: ``create`` and ``apply`` persist a plan with its audit event,
consent history, ledger rows, address records and phone index in one transaction, queue the
messages it asks for, and tell the registered hooks once it commits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ... import messaging
from ...models import AuditEvent, ConsentChange, EntrySource, Persona, PersonaStatus, PointsEntry
from .. import consent as consent_rules
from ..phone_index import index_phones
from .plan import plan_changes
from .types import (
    Actor,
    ChangeError,
    ChangeNotice,
    ChangeResult,
    Changeset,
    DuplicatePersonaError,
    Plan,
)


def audit_event(plan: Plan, actor: Actor, action: str, note: str, now: dt.datetime) -> AuditEvent:
    return AuditEvent(
        persona=plan.persona,
        action=action,
        actor_kind=actor.kind,
        actor_user=actor.user,
        actor_label=actor.label[:200],
        actor_ref=actor.ref,
        changes=plan.changes,
        note=note[:300],
        created_at=now,
    )


ChangeHook = Any  # Callable[[list[ChangeNotice]], None]


CHANGE_HOOKS: list[ChangeHook] = []


def register_change_hook(hook: ChangeHook) -> None:
    """personas imports no other app: they register here (from their AppConfig.ready)."""
    if hook not in CHANGE_HOOKS:
        CHANGE_HOOKS.append(hook)


def notify(notices: list[ChangeNotice]) -> None:
    """Tell every registered hook about ``notices`` once the transaction commits."""
    if not CHANGE_HOOKS or not notices:
        return

    def run() -> None:
        for hook in CHANGE_HOOKS:
            hook(notices)

    transaction.on_commit(run)


def notify_plans(plans: Sequence[Plan], actors: Sequence[Actor], *, created: bool) -> None:
    if not CHANGE_HOOKS:
        return
    notify(
        [
            ChangeNotice(
                persona_id=plan.persona.pk,
                created=created,
                changes=plan.changes,
                actor_kind=actor.kind,
                entry_source=plan.persona.entry_source,
                signup_form_id=plan.persona.signup_form_id,
                import_job_id=plan.persona.import_job_id,
            )
            for plan, actor in zip(plans, actors, strict=True)
        ]
    )


def queue_messages(plans: Iterable[Plan]) -> None:
    for plan in plans:
        for channel, template in plan.messages:
            messaging.queue(plan.persona, channel=channel, template=template, transactional=True)


def write_records(plans: Sequence[Plan], now: dt.datetime) -> None:
    """The address records the plans changed, mirrored onto other holders of the addresses."""
    writes = [w for plan in plans for w in plan.address_writes]
    if writes:
        consent_rules.write_records(writes, holders=[p.persona.pk for p in plans], now=now)


def index_plan_phones(plans: Sequence[Plan], *, created: bool) -> None:
    """The fragment rows of every phone the plans set or changed (``phone_index``)."""
    index_phones(
        ((p.persona.pk, p.persona.phone) for p in plans if "phone" in p.dirty_fields),
        replace=not created,
    )


def write_related(plans: Sequence[Plan], events: list[AuditEvent], *, created: bool) -> None:
    """One change's audit event, consent history and ledger rows (their keys read back)."""
    index_plan_phones(plans, created=created)
    if events:
        write_records(plans, events[0].created_at)
    consent_rows, points_rows = [], []
    for plan in plans:
        for row in plan.consent_changes:
            row.persona = plan.persona
            consent_rows.append(row)
        for row in plan.points_entries:
            row.persona = plan.persona
            points_rows.append(row)
    AuditEvent.objects.bulk_create(events, batch_size=500)
    if consent_rows:
        ConsentChange.objects.bulk_create(consent_rows, batch_size=500)
    if points_rows:
        PointsEntry.objects.bulk_create(points_rows, batch_size=500)


def integrity_to_duplicate(persona: Persona, exc: IntegrityError) -> ChangeError:
    text = str(exc).lower()
    for name in ("phone", "email"):
        if name in text and getattr(persona, name):
            existing = (
                Persona.objects.filter(
                    status=PersonaStatus.ACTIVE, **{name: getattr(persona, name)}
                )
                .exclude(pk=persona.pk)
                .first()
            )
            if existing:
                return DuplicatePersonaError(name, existing)
    return ChangeError("This change conflicts with another persona; nothing was saved.")


def create(
    changeset: Changeset,
    actor: Actor,
    *,
    entry_source: str = EntrySource.MANUAL,
) -> ChangeResult:
    """Create a persona through the same rules as any change; writes a "created" audit event."""
    persona = Persona(entry_source=entry_source)
    now = timezone.now()
    try:
        with transaction.atomic():
            plan = plan_changes(persona, changeset, actor, now=now)
            persona.save()
            event = audit_event(plan, actor, "created", changeset.note, now)
            write_related([plan], [event], created=True)
            queue_messages([plan])
            notify_plans([plan], [actor], created=True)
    except IntegrityError as exc:
        raise integrity_to_duplicate(persona, exc) from exc
    return ChangeResult(persona, True, event, plan.attribute_ops, plan.warnings)


def apply(persona: Persona | int, changeset: Changeset, actor: Actor) -> ChangeResult:
    """Apply one changeset to one persona (locked for the duration), atomically."""
    persona_id = persona if isinstance(persona, int) else persona.pk
    now = timezone.now()
    try:
        with transaction.atomic():
            locked = Persona.objects.select_for_update().get(pk=persona_id)
            plan = plan_changes(locked, changeset, actor, now=now)
            if not plan.changed:
                write_records([plan], now)  # e.g. a customer's STOP on an opted-out number
                return ChangeResult(locked, False, None, plan.attribute_ops)
            locked.version += 1
            locked.save(update_fields=[*plan.dirty_fields, "version", "updated_at"])
            event = audit_event(plan, actor, changeset.action, changeset.note, now)
            write_related([plan], [event], created=False)
            queue_messages([plan])
            notify_plans([plan], [actor], created=False)
    except IntegrityError as exc:
        target = persona if isinstance(persona, Persona) else Persona(pk=persona_id)
        raise integrity_to_duplicate(target, exc) from exc
    if isinstance(persona, Persona):
        persona.refresh_from_db()
    return ChangeResult(locked, True, event, plan.attribute_ops, plan.warnings)
