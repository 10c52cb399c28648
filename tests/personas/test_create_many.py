"""``create_many``'s tuple path records exactly what the model path records.

Imports create personas through ``_plan_row``/``_create_rows`` (plain values, batched
tuples); everything else goes through ``plan_changes`` and model saves. Both must give the
same persona, audit event, consent history and points ledger for the same changeset.
"""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from personas.models import AuditEvent, ConsentChange, OutboundMessage, Persona, PointsEntry
from personas.services import changes
from personas.services.changes import (
    Actor,
    AttributeOp,
    Changeset,
    ConsentAction,
    ConsentOp,
    PointsOp,
)
from tests.personas.factories import StoreFactory

pytestmark = pytest.mark.django_db

SKIP = {"id", "public_id", "created_at", "updated_at", "loyalty_enrolled_at"}


def _snapshot(ids: list[int | None]) -> list:
    out = []
    for pk in ids:
        if pk is None:
            out.append(None)
            continue
        persona = Persona.objects.get(pk=pk)
        values = {
            f.attname: getattr(persona, f.attname)
            for f in Persona._meta.concrete_fields
            if f.attname not in SKIP
        }
        values["loyalty_enrolled_at"] = persona.loyalty_enrolled_at is not None
        audit = list(
            AuditEvent.objects.filter(persona_id=pk).values_list(
                "action", "actor_kind", "actor_label", "actor_ref", "changes", "note"
            )
        )
        consents = list(
            ConsentChange.objects.filter(persona_id=pk)
            .order_by("channel")
            .values_list("channel", "before", "after", "hard", "actor_kind", "actor_label")
        )
        points = list(
            PointsEntry.objects.filter(persona_id=pk)
            .order_by("id")
            .values_list("kind", "points", "reason", "actor_label")
        )
        messages = OutboundMessage.objects.filter(persona_id=pk).count()
        out.append((values, audit, consents, points, messages))
    return out


def _run(items: list[tuple[Changeset, Actor]], *, prechecked: bool) -> tuple[list, list, list]:
    for changeset, _ in items:
        changeset.prechecked = prechecked
    with transaction.atomic():
        outcomes = changes.create_many(items, entry_source="import")
        ids = [o.persona_id for o in outcomes]
        errors = [o.error.messages if o.error else None for o in outcomes]
        deferred = [o.deferred_messages for o in outcomes]
        snap = _snapshot(ids)
        transaction.set_rollback(True)
    return snap, errors + deferred, outcomes


def _both(make) -> list:
    """Run both paths; return the prechecked run's outcomes (``persona`` is None on the
    tuple path, a model instance on the model path)."""
    *fast, outcomes = _run(make(), prechecked=True)
    *slow, slow_outcomes = _run(make(), prechecked=False)
    assert fast == slow
    assert all(o.persona is not None for o in slow_outcomes if o.error is None)
    return outcomes


def test_a_full_row_is_recorded_the_same_way_on_both_paths():
    store = StoreFactory()

    def make():
        actor = Actor.import_row(7, 2)
        return [
            (
                Changeset(
                    fields={
                        "first_name": "  Zoë ",
                        "last_name": "O'Neil",
                        "email": "Zoe@Example.COM",
                        "phone": "(415) 555-0134",
                        "birthday": "1990-02-03",
                        "customer_id": "C-1",
                        "loyalty_enrolled": True,
                    },
                    add=[AttributeOp("tier", "gold"), AttributeOp("vip", False)],
                    set=[AttributeOp("vip", True)],
                    consents=[
                        ConsentOp("email", ConsentAction.OPT_IN),
                        ConsentOp("text", ConsentAction.OPT_IN),
                        ConsentOp("voice", ConsentAction.OPT_OUT),
                    ],
                    favorite_store=(store.pk, "import"),
                    points=[PointsOp("adjust", 120, "Imported balance")],
                    note="imported",
                    send_messages=False,
                ),
                actor,
            ),
            (Changeset(fields={"email": "not an email"}), actor),
            (Changeset(fields={"first_name": "Only"}, set=[AttributeOp("bad key", 1)]), actor),
        ]

    outcomes = _both(make)
    assert outcomes[0].persona is None and outcomes[0].persona_id  # the tuple path ran
    assert outcomes[0].deferred_messages  # text double opt-in pending, sent later


@override_settings(PERSONAS_TEXT_DOUBLE_OPT_IN=False)
def test_text_opt_in_without_double_opt_in_setting():
    def make():
        return [
            (
                Changeset(
                    fields={"phone": "+14155550199"},
                    consents=[ConsentOp("text", ConsentAction.OPT_IN)],
                ),
                Actor.import_row(1, 1),
            )
        ]

    outcomes = _both(make)
    assert outcomes[0].persona is None and outcomes[0].persona_id


def test_a_text_to_send_now_takes_the_model_path_with_the_same_record():
    def make():
        return [
            (
                Changeset(
                    fields={"phone": "415 555 0100"},
                    consents=[ConsentOp("text", ConsentAction.OPT_IN)],
                ),
                Actor.import_row(1, 1),
            )
        ]

    outcomes = _both(make)
    assert outcomes[0].persona is not None  # queued its double opt-in text on the model path


names = st.text(alphabet="abÉ '-", max_size=8)
consent_ops = st.lists(
    st.builds(
        ConsentOp,
        channel=st.sampled_from(["text", "email", "voice", "browser", "push"]),
        action=st.sampled_from(
            [ConsentAction.OPT_IN, ConsentAction.OPT_OUT, ConsentAction.REQUEST_DOUBLE_OPT_IN]
        ),
    ),
    max_size=3,
)
attr_ops = st.lists(
    st.builds(
        AttributeOp,
        key=st.sampled_from(["vip", "tier", "Bad Key", "x"]),
        value=st.one_of(st.booleans(), st.integers(-5, 5), st.text(max_size=4)),
    ),
    max_size=3,
)


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    first=names,
    phone=st.sampled_from(["", "415 555 0100", "+14155550101", "12", "+44 20 7946 0958"]),
    email=st.sampled_from(["", "a@example.com", "B.c@Example.org", "bad@", "x@y"]),
    birthday=st.sampled_from(["", "1990-01-31", "31/01/1990", "2999-01-01", "1990-02-30"]),
    loyalty=st.booleans(),
    add=attr_ops,
    set_=attr_ops,
    consents=consent_ops,
    points=st.lists(st.integers(-50, 500), max_size=2),
    send=st.booleans(),
    actor_kind=st.sampled_from(["import", "customer"]),
)
def test_generated_rows_are_recorded_the_same_way(
    first, phone, email, birthday, loyalty, add, set_, consents, points, send, actor_kind
):
    def make():
        fields = {"first_name": first, "loyalty_enrolled": loyalty}
        if phone:
            fields["phone"] = phone
        if email:
            fields["email"] = email
        if birthday:
            fields["birthday"] = birthday
        actor = Actor.import_row(3, 9) if actor_kind == "import" else Actor.customer("form")
        return [
            (
                Changeset(
                    fields=dict(fields),
                    add=list(add),
                    set=list(set_),
                    consents=list(consents),
                    points=[PointsOp("adjust", p, "balance") for p in points],
                    send_messages=send,
                ),
                actor,
            )
        ]

    _both(make)
