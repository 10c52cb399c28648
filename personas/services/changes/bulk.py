"""Writing many changes at once (imports, flows, housekeeping): ``apply_many`` and
``create_many`` plan each persona with the same planners as ``apply`` and ``create`` and
write the rows in batches (``bulkdb``: executemany or COPY)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from ...models import AuditEvent, ConsentChange, Persona, PointsEntry
from .. import consent as consent_rules
from ..bulkdb import insert_tuples, json_text, reserve_ids, update_objects
from ..phone_index import index_phones
from .plan import (
    STORE_LABELS,
    NotFast,
    RowPlan,
    fast_create_eligible,
    fresh_values,
    plan_changes,
    plan_row,
)
from .types import Actor, BulkOutcome, ChangeError, ChangeNotice, Changeset, CreateOutcome, Plan
from .write import (
    CHANGE_HOOKS,
    index_plan_phones,
    integrity_to_duplicate,
    notify,
    notify_plans,
    queue_messages,
    write_records,
)


def apply_many(
    items: Sequence[tuple[int, Changeset, Actor]],
    *,
    locked: dict[int, Persona] | None = None,
) -> list[BulkOutcome]:
    """The bulk form of ``apply``: same rules, same audit trail, batched writes.

    Every persona is locked and planned with ``plan_changes``; a refused changeset is reported
    in its outcome and does not stop the others. Writes are one UPDATE batch per changed field
    set plus one INSERT batch per related table.

    ``locked``: personas the caller already loaded with ``select_for_update`` inside its own
    open transaction (the flow engine locks a round's personas once); they are planned in
    place (their attributes change in memory as they would on a fresh copy) and only the
    others are locked here.
    """
    if not items:
        return []
    now = timezone.now()
    outcomes: list[BulkOutcome] = []
    token = STORE_LABELS.set({})
    try:
        with consent_rules.batch():
            return _apply_many(items, now, outcomes, locked)
    finally:
        STORE_LABELS.reset(token)


def _apply_many(
    items: Sequence[tuple[int, Changeset, Actor]],
    now: dt.datetime,
    outcomes: list[BulkOutcome],
    locked: dict[int, Persona] | None = None,
) -> list[BulkOutcome]:
    if locked is not None and not transaction.get_connection().in_atomic_block:
        raise RuntimeError("apply_many(locked=…) needs the caller's open transaction.")
    with transaction.atomic():
        personas: dict[int, Persona] = dict(locked or {})
        missing = [pid for pid in dict.fromkeys(pid for pid, _, _ in items) if pid not in personas]
        if missing:
            # Ordered by id: two bulk writers lock shared personas in the same order.
            personas.update((p.pk, p) for p in _lock_personas(missing))
        consent_rules.preload(
            phones=[p.phone for p in personas.values()],
            emails=[p.email for p in personas.values()],
        )
        plans: list[Plan] = []
        plan_actors: list[Actor] = []
        plan_changesets: list[Changeset] = []
        dirty: set[str] = set()
        changed_personas: dict[int, Persona] = {}
        for pid, changeset, actor in items:
            persona = personas.get(pid)
            if persona is None:
                outcomes.append(BulkOutcome(pid, False, ChangeError("Persona not found.")))
                continue
            # Field values live in the instance's __dict__ (attnames); planning replaces
            # values, never mutates them in place, except that attributes is copied anyway.
            snapshot = persona.__dict__.copy()
            snapshot["attributes"] = dict(persona.attributes or {})
            try:
                plan = plan_changes(persona, changeset, actor, now=now)
            except ChangeError as exc:
                persona.__dict__.update(snapshot)
                outcomes.append(BulkOutcome(pid, False, exc))
                continue
            outcomes.append(
                BulkOutcome(
                    pid,
                    plan.changed,
                    None,
                    plan.attribute_ops,
                    bool(plan.deferred_messages),
                    dict(plan.changes),
                )
            )
            if plan.changed:
                persona.version += 1
                dirty |= plan.dirty_fields
                plans.append(plan)
                plan_actors.append(actor)
                plan_changesets.append(changeset)
                changed_personas[pid] = persona
        if changed_personas:
            for persona in changed_personas.values():
                persona.updated_at = now
            update_objects(
                list(changed_personas.values()), sorted(dirty | {"version", "updated_at"})
            )
            _write_bulk_audit(plans, plan_actors, plan_changesets, now)
            queue_messages(plans)
            notify_plans(plans, plan_actors, created=False)
    return outcomes


def _lock_personas(ids: Sequence[int]) -> Iterable[Persona]:
    """``select_for_update`` of these personas in id order. On PostgreSQL one array
    parameter (``id = ANY(%s)``): a thousand ``IN`` placeholders cost psycopg more to prepare
    than the server to run."""
    if connection.vendor != "postgresql":
        return Persona.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    table = connection.ops.quote_name(Persona._meta.db_table)
    return Persona.objects.raw(
        f"SELECT * FROM {table} WHERE id = ANY(%s) ORDER BY id FOR UPDATE",  # noqa: S608
        [list(ids)],
    )


_AUDIT_COLUMNS = (
    "persona_id",
    "action",
    "actor_kind",
    "actor_user_id",
    "actor_label",
    "actor_ref",
    "changes",
    "note",
    "created_at",
)


def _audit_row(
    persona_id: int, action: str, actor: Actor, changes: dict, note: str, when: Any
) -> tuple:
    """One audit event in ``_AUDIT_COLUMNS`` order, as ``audit_event`` would save it."""
    return (
        persona_id,
        action,
        actor.kind,
        actor.user.pk if actor.user is not None else None,
        actor.label[:200],
        json_text(actor.ref),
        json_text(changes),
        note[:300],
        when,
    )


_CONSENT_COLUMNS = (
    "persona_id",
    "channel",
    "before",
    "after",
    "hard",
    "actor_kind",
    "actor_label",
    "actor_user_id",
    "address",
    "evidence",
    "created_at",
)


_POINTS_COLUMNS = (
    "persona_id",
    "kind",
    "points",
    "reason",
    "purchase_id",
    "actor_user_id",
    "actor_label",
    "created_at",
)


def _db_time(now: dt.datetime) -> Any:
    """``now`` as the bulk writers send it: SQLite's text form, PostgreSQL's own type."""
    return connection.ops.adapt_datetimefield_value(now) if connection.vendor == "sqlite" else now


def _history_rows(
    persona_id: int,
    actor: Actor,
    consents: Iterable[tuple[str, str, str, bool, str, str]],
    points: Iterable[Any],
    when: Any,
    out: tuple[list[tuple], list[tuple]],
) -> None:
    """One persona's consent history and ledger rows, in ``_CONSENT_COLUMNS`` and
    ``_POINTS_COLUMNS`` order, appended to ``out`` (consent rows, points rows): the one row
    builder of every bulk writer. ``consents``: (channel, before, after, hard, address
    digest, evidence); ``points``: anything with kind, points, reason and purchase_id."""
    user_id = actor.user.pk if actor.user is not None else None
    label = actor.label[:200]
    consent_rows, points_rows = out
    for channel, before, after, hard, digest, evidence in consents:
        consent_rows.append(
            (
                persona_id,
                channel,
                before,
                after,
                hard,
                actor.kind,
                label,
                user_id,
                digest,
                evidence[:200],
                when,
            )
        )
    for op in points:
        points_rows.append(
            (persona_id, op.kind, op.points, op.reason[:200], op.purchase_id, user_id, label, when)
        )


def _write_history(audit_rows: list[tuple], out: tuple[list[tuple], list[tuple]]) -> None:
    insert_tuples(AuditEvent._meta.db_table, _AUDIT_COLUMNS, audit_rows)
    insert_tuples(ConsentChange._meta.db_table, _CONSENT_COLUMNS, out[0])
    insert_tuples(PointsEntry._meta.db_table, _POINTS_COLUMNS, out[1])


def _write_bulk_audit(
    plans: Sequence[Plan],
    actors: Sequence[Actor],
    changesets: Sequence[Changeset],
    now: dt.datetime,
    *,
    created: bool = False,
) -> None:
    """The audit, consent and ledger rows of planned changes (``apply_many``) or creations
    (``created``: the model path of ``create_many``): the same values ``audit_event`` and
    ``write_related`` give, written as plain tuples (executemany / COPY)."""
    when = _db_time(now)
    audit_rows: list[tuple] = []
    out: tuple[list[tuple], list[tuple]] = ([], [])
    for plan, actor, changeset in zip(plans, actors, changesets, strict=True):
        pk = plan.persona.pk
        action = "created" if created else changeset.action
        audit_rows.append(_audit_row(pk, action, actor, plan.changes, changeset.note, when))
        consents = (
            (c.channel, c.before, c.after, c.hard, c.address, c.evidence)
            for c in plan.consent_changes
        )
        _history_rows(pk, actor, consents, plan.points_entries, when, out)
    index_plan_phones(plans, created=created)
    write_records(plans, now)
    _write_history(audit_rows, out)


def create_many(
    items: Sequence[tuple[Changeset, Actor]], *, entry_source: str
) -> list[CreateOutcome]:
    """The bulk form of ``create``: same planning and audit trail, batched inserts.

    A refused changeset is reported in its outcome and does not stop the others. Changesets a
    bulk caller has prechecked (blocklist, duplicates, store ids) and that need no message sent
    now are planned on plain values and written as tuples (``_create_rows``): the same
    validation, the same audit event, consent history and ledger rows as ``plan_changes``
    gives (tests compare the two). Anything else, and any batch whose insert hits a
    uniqueness conflict (another writer got there first), takes the model path below, one
    insert per persona in its own savepoint, so only the conflicting rows fail.
    Outcomes carry ``persona_id``; ``persona`` is only set on the model path.
    """
    now = timezone.now()
    outcomes: list[CreateOutcome | None] = [None] * len(items)
    token = STORE_LABELS.set({})
    records = consent_rules.batch()
    records.__enter__()
    try:
        consent_rules.preload(
            phones=[c.fields.get("phone") for c, _ in items],
            emails=[c.fields.get("email") for c, _ in items],
        )
        fast: list[tuple[int, RowPlan]] = []
        slow: list[int] = []
        defaults = fresh_values(entry_source)
        for index, (changeset, actor) in enumerate(items):
            if not fast_create_eligible(changeset):
                slow.append(index)
                continue
            try:
                row = plan_row(changeset, actor, defaults, now)
            except ChangeError as exc:
                outcomes[index] = CreateOutcome(None, exc)
            except NotFast:
                slow.append(index)
            else:
                fast.append((index, row))
        with transaction.atomic():
            if fast and not _create_rows(fast, entry_source, now):
                slow = sorted(slow + [index for index, _ in fast])
            if slow:
                _create_models([(i, *items[i]) for i in slow], entry_source, now, outcomes)
        for index, row in fast:
            if outcomes[index] is None:
                outcomes[index] = CreateOutcome(None, None, row.deferred, row.values["id"])
    finally:
        records.__exit__()
        STORE_LABELS.reset(token)
    return outcomes  # type: ignore[return-value]


def _create_models(
    items: Sequence[tuple[int, Changeset, Actor]],
    entry_source: str,
    now: dt.datetime,
    outcomes: list[CreateOutcome | None],
) -> None:
    """The model path of ``create_many`` (runs inside its transaction)."""
    ready: list[tuple[int, Plan, Actor, Changeset]] = []
    for index, changeset, actor in items:
        persona = Persona(entry_source=entry_source, created_at=now, updated_at=now)
        try:
            plan = plan_changes(persona, changeset, actor, now=now)
        except ChangeError as exc:
            outcomes[index] = CreateOutcome(None, exc)
            continue
        outcomes[index] = CreateOutcome(persona, None, bool(plan.deferred_messages))
        ready.append((index, plan, actor, changeset))
    if not ready:
        return
    written = ready
    try:
        with transaction.atomic():
            Persona.objects.bulk_create([plan.persona for _, plan, _, _ in ready])
    except IntegrityError:
        written = []
        for index, plan, actor, changeset in ready:
            plan.persona.pk = None
            try:
                with transaction.atomic():
                    plan.persona.save(force_insert=True)
            except IntegrityError as exc:
                outcomes[index] = CreateOutcome(None, integrity_to_duplicate(plan.persona, exc))
                continue
            written.append((index, plan, actor, changeset))
    for index, plan, _, _ in written:
        outcomes[index].persona_id = plan.persona.pk  # type: ignore[union-attr]
    plans = [plan for _, plan, _, _ in written]
    actors = [actor for _, _, actor, _ in written]
    _write_bulk_audit(plans, actors, [c for _, _, _, c in written], now, created=True)
    queue_messages(plans)
    notify_plans(plans, [actor for _, _, actor, _ in written], created=True)


def _create_rows(rows: Sequence[tuple[int, RowPlan]], entry_source: str, now: dt.datetime) -> bool:
    """Insert planned rows and their audit, consent and ledger rows as tuples.

    Returns False, having written nothing, when the persona insert conflicts with a row
    another writer added (the caller then takes the model path).
    """
    sqlite = connection.vendor == "sqlite"
    ids = reserve_ids(Persona._meta.db_table, len(rows))
    when = _db_time(now)
    fields = Persona._meta.concrete_fields
    columns = [f.column for f in fields]
    dates = {f.attname for f in fields if isinstance(f, models.DateField)}
    persona_rows = []
    for (_, row), pk in zip(rows, ids, strict=True):
        values = row.values
        values["id"] = pk
        values["created_at"] = values["updated_at"] = now
        out = []
        for f in fields:
            value = values[f.attname]
            if f.attname == "attributes":
                value = json_text(value)
            elif sqlite and value is not None and f.attname in dates:
                value = when if value is now else value.isoformat()
            out.append(value)
        persona_rows.append(out)
    try:
        with transaction.atomic():
            insert_tuples(Persona._meta.db_table, columns, persona_rows)
    except IntegrityError:
        return False
    audit_rows: list[tuple] = []
    history: tuple[list[tuple], list[tuple]] = ([], [])
    for (_, row), pk in zip(rows, ids, strict=True):
        audit_rows.append(_audit_row(pk, "created", row.actor, row.changes, row.note, when))
        _history_rows(pk, row.actor, row.consents, row.points, when, history)
    index_phones(
        ((pk, row.values["phone"]) for (_, row), pk in zip(rows, ids, strict=True)), replace=False
    )
    consent_rules.write_records(
        [w for _, row in rows for w in row.address_writes], holders=ids, now=now
    )
    _write_history(audit_rows, history)
    if CHANGE_HOOKS:  # the notices are only built for someone to hear them
        notify(
            [
                ChangeNotice(
                    persona_id=row.values["id"],
                    created=True,
                    changes=row.changes,
                    actor_kind=row.actor.kind,
                    entry_source=entry_source,
                    signup_form_id=row.values["signup_form_id"],
                    import_job_id=row.values["import_job_id"],
                )
                for _, row in rows
            ]
        )
    return True
