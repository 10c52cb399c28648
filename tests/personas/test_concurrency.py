"""Lost updates: on PostgreSQL, concurrent edits of one persona from separate connections."""

from __future__ import annotations

import pytest
from django.db import connection

from personas.models import AuditEvent, Persona
from personas.services import changes
from personas.services.changes import Actor, AttributeOp, Changeset, StaleEditError
from tests.concurrency import raised, run_together
from tests.personas.factories import PersonaFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="row locks need PostgreSQL (run with DATABASE_URL)",
    ),
]


def test_two_concurrent_edits_of_different_attributes_both_survive():
    persona = PersonaFactory(attributes={})

    def edit(i):
        def go():
            changes.apply(
                persona.pk,
                Changeset(set=[AttributeOp(f"k{i}", i)], expected={f"attr:k{i}": None}),
                Actor.system(f"t{i}"),
            )

        return go

    errors = raised(run_together(*[edit(i) for i in range(20)]))
    assert errors == []
    persona = Persona.objects.get(pk=persona.pk)
    assert persona.attributes == {f"k{i}": i for i in range(20)}
    assert AuditEvent.objects.filter(persona=persona).count() == 20
    assert persona.version == 21


def test_a_stale_edit_of_the_same_attribute_is_refused():
    persona = PersonaFactory(attributes={"tier": "silver"})

    def edit(value):
        def go():
            changes.apply(
                persona.pk,
                Changeset(set=[AttributeOp("tier", value)], expected={"attr:tier": "silver"}),
                Actor.system(value),
            )

        return go

    errors = raised(run_together(edit("gold"), edit("bronze")))
    assert len(errors) == 1 and isinstance(errors[0], StaleEditError)
    persona = Persona.objects.get(pk=persona.pk)
    winner = persona.attributes["tier"]
    assert winner in {"gold", "bronze"}
    event = AuditEvent.objects.get(persona=persona)
    assert event.changes["attr:tier"]["after"] == winner
