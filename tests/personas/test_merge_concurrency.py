"""Two sessions merge the same persona at once: one wins, the other gets a clear error, and
nothing is half-done (runs on SQLite and PostgreSQL, each thread on its own connection)."""

from __future__ import annotations

import pytest
from django.db.models import Sum

from personas.models import MergeRecord, Persona, PointsEntry
from personas.services import changes, merge
from personas.services.changes import Actor, Changeset, PointsOp
from personas.services.merge import MergeError
from tests.concurrency import run_together
from tests.conftest import make_user
from tests.personas.factories import PersonaFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_merges_of_the_same_persona_one_wins():
    a, b, c = PersonaFactory(), PersonaFactory(), PersonaFactory()
    for p in (a, b, c):
        changes.apply(
            p, Changeset(points=[PointsOp(PointsEntry.Kind.ADJUST, 100, "t")]), Actor.system()
        )
    user = make_user("Manager")

    def merge_into(survivor):
        return lambda: merge.merge(survivor.pk, c.pk, actor=Actor.staff(user))

    results = run_together(merge_into(a), merge_into(b))
    wins = [r for r in results if isinstance(r, MergeRecord)]
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(wins) == 1 and len(errors) == 1, results
    assert isinstance(errors[0], MergeError)
    assert "already merged" in str(errors[0]) or "got there first" in str(errors[0])
    c.refresh_from_db()
    assert c.status == "merged" and c.merged_into_id == wins[0].survivor_id
    assert Persona.objects.aggregate(s=Sum("points_balance"))["s"] == 300
    loser = b if wins[0].survivor_id == a.pk else a
    loser.refresh_from_db()
    assert loser.points_balance == 100 and MergeRecord.objects.count() == 1
