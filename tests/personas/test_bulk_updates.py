"""apply_many on personas the caller already locked, its tuple-written audit rows, and the
bulk UPDATE helpers they rely on."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from personas.models import AuditEvent, ConsentChange, Persona
from personas.services import changes
from personas.services.bulkdb import update_objects, update_tuples
from personas.services.changes import (
    Actor,
    AttributeOp,
    Changeset,
    ConsentAction,
    ConsentOp,
)
from tests.personas.factories import PersonaFactory

pytestmark = pytest.mark.django_db

AUDIT_FIELDS = ("action", "actor_kind", "actor_label", "actor_ref", "changes", "note")


def _changeset() -> Changeset:
    return Changeset(
        fields={"first_name": "Ana"},
        add=[AttributeOp("vip", False)],
        set=[AttributeOp("step", "post purchase")],
        remove=["temp"],
        consents=[ConsentOp("voice", ConsentAction.FORCE_OPT_OUT)],
        action="flow: persona update",
        note="n",
    )


def test_apply_many_writes_the_same_audit_and_consent_rows_as_apply():
    one = PersonaFactory(attributes={"temp": 1}, voice_consent="opted_in", first_name="X")
    many = PersonaFactory(attributes={"temp": 1}, voice_consent="opted_in", first_name="X")
    actor = Actor.flow_step("F", 9, "s")
    changes.apply(one, _changeset(), actor)
    [outcome] = changes.apply_many([(many.pk, _changeset(), actor)])
    assert outcome.changed and outcome.error is None
    a = AuditEvent.objects.get(persona=one)
    b = AuditEvent.objects.get(persona=many)
    assert [getattr(a, f) for f in AUDIT_FIELDS] == [getattr(b, f) for f in AUDIT_FIELDS]
    assert b.created_at is not None and b.actor_user is None
    rows = [
        list(
            ConsentChange.objects.filter(persona=p).values_list(
                "channel", "before", "after", "hard", "actor_kind", "actor_label"
            )
        )
        for p in (one, many)
    ]
    assert rows[0] == rows[1] and len(rows[0]) == 1
    one.refresh_from_db()
    many.refresh_from_db()
    for name in ("first_name", "first_key", "attributes", "voice_consent", "version"):
        assert getattr(one, name) == getattr(many, name)


def test_apply_many_plans_on_personas_the_caller_locked_without_loading_them_again():
    personas = [PersonaFactory(attributes={}) for _ in range(3)]
    items = [
        (p.pk, Changeset(set=[AttributeOp("k", i)]), Actor.system()) for i, p in enumerate(personas)
    ]
    with transaction.atomic():
        locked = {
            p.pk: p
            for p in Persona.objects.select_for_update().filter(pk__in=[p.pk for p in personas])
        }
        with CaptureQueriesContext(connection) as ctx:
            outcomes = changes.apply_many(items, locked=locked)
    assert all(o.changed for o in outcomes)
    selects = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("SELECT")]
    assert not any("personas_persona" in sql for sql in selects)
    for i, p in enumerate(personas):
        # The caller's instances carry the change, as a fresh copy from the database does.
        assert locked[p.pk].attributes == {"k": i}
        p.refresh_from_db()
        assert p.attributes == {"k": i} and p.version == locked[p.pk].version


def test_a_refused_changeset_leaves_the_callers_persona_as_it_was():
    persona = PersonaFactory(attributes={"a": 1}, first_name="Ana")
    bad = Changeset(fields={"first_name": "Bea"}, set=[AttributeOp("bad key", 1)])
    with transaction.atomic():
        locked = {persona.pk: Persona.objects.select_for_update().get(pk=persona.pk)}
        copy = locked[persona.pk]
        [outcome] = changes.apply_many([(persona.pk, bad, Actor.system())], locked=locked)
        assert outcome.error is not None
        assert copy.first_name == "Ana" and copy.attributes == {"a": 1}
        good = Changeset(fields={"first_name": "Bea"}, set=[AttributeOp("b", 2)])
        [outcome] = changes.apply_many([(persona.pk, good, Actor.system())], locked=locked)
    persona.refresh_from_db()
    assert persona.first_name == "Bea" and persona.attributes == {"a": 1, "b": 2}
    assert AuditEvent.objects.filter(persona=persona).count() == 1


@pytest.mark.django_db(transaction=True)
def test_locked_personas_need_the_callers_transaction():
    persona = PersonaFactory()
    with pytest.raises(RuntimeError):
        changes.apply_many(
            [(persona.pk, Changeset(set=[AttributeOp("a", 1)]), Actor.system())],
            locked={persona.pk: persona},
        )


def test_update_objects_and_update_tuples_write_exactly_the_values_given():
    a, b, c = (PersonaFactory(attributes={"x": 1}) for _ in range(3))
    when = timezone.now().replace(microsecond=123456)
    with transaction.atomic():
        a.attributes, a.archived_at, a.archived_reason = {"y": "é'\"\\"}, when, "gone"
        b.attributes, b.archived_at, b.archived_reason = {}, None, ""
        update_objects([a, b], ["attributes", "archived_at", "archived_reason"])
        # A second batch in the same transaction, other rows and other columns.
        c.version = 7
        update_objects([c], ["version"])
        update_tuples(
            Persona._meta.db_table,
            [("first_name", "varchar(150)"), ("version", "integer")],
            [("Zed", 5, b.pk)],
        )
    rows = {p.pk: p for p in Persona.objects.filter(pk__in=[a.pk, b.pk, c.pk])}
    assert rows[a.pk].attributes == {"y": "é'\"\\"} and rows[a.pk].archived_at == when
    assert rows[a.pk].archived_reason == "gone"
    assert rows[b.pk].attributes == {} and rows[b.pk].archived_at is None
    assert rows[b.pk].first_name == "Zed" and rows[b.pk].version == 5
    assert rows[c.pk].version == 7 and rows[c.pk].attributes == {"x": 1}


def test_select_in_finds_exactly_the_rows_whose_key_is_listed_beyond_one_chunk():
    from personas.services.bulkdb import select_in

    table = Persona._meta.db_table
    personas = PersonaFactory.create_batch(3)
    personas[2].status = "archived"
    personas[2].save()
    wanted = [p.email for p in personas] + [f"nobody{i}@example.com" for i in range(12_000)]
    rows = select_in(table, ["id", "email"], "email", wanted)
    assert sorted(rows) == sorted((p.pk, p.email) for p in personas)
    active = select_in(table, ["id"], "email", wanted, where="status IN (%s)", params=["active"])
    assert sorted(active) == sorted((p.pk,) for p in personas[:2])
    assert select_in(table, ["id"], "email", []) == []


def test_apply_many_writes_the_same_ledger_rows_and_balance_as_apply():
    from personas.models import PointsEntry
    from personas.services.changes import PointsOp

    one = PersonaFactory(points_balance=0)
    many = PersonaFactory(points_balance=0)
    actor = Actor.import_row(4, 17)

    def points() -> Changeset:
        return Changeset(points=[PointsOp(PointsEntry.Kind.ADJUST, 35, "Imported balance")])

    changes.apply(one, points(), actor)
    [outcome] = changes.apply_many([(many.pk, points(), actor)])
    assert outcome.changed and outcome.error is None
    columns = ("kind", "points", "reason", "purchase_id", "actor_user_id", "actor_label")
    rows = [list(PointsEntry.objects.filter(persona=p).values_list(*columns)) for p in (one, many)]
    assert rows[0] == rows[1] == [("adjust", 35, "Imported balance", None, None, rows[0][0][5])]
    assert PointsEntry.objects.get(persona=many).created_at is not None
    one.refresh_from_db()
    many.refresh_from_db()
    assert one.points_balance == many.points_balance == 35
