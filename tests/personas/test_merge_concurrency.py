"""Two sessions merge the same persona at once: one wins, the other gets a clear error, and
nothing is half-done (runs on SQLite and PostgreSQL, each thread on its own connection)."""

from __future__ import annotations

import threading

import pytest
from django.db import connections
from django.db.models import Sum

from personas.models import MergeRecord, Persona, PointsEntry
from personas.services import changes, merge
from personas.services.changes import Actor, Changeset, PointsOp
from personas.services.merge import MergeError
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
    barrier = threading.Barrier(2)
    results: list[object] = []

    def run(survivor):
        try:
            barrier.wait()
            results.append(merge.merge(survivor.pk, c.pk, actor=Actor.staff(user)))
        except Exception as exc:  # collected and asserted below
            results.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
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
