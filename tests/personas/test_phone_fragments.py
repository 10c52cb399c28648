"""Search by any 4 or more digits of a phone number (#24, example 3), on an index.

Every write path keeps the fragment rows in step with the phone: a single create or edit, the
bulk edit and both bulk creation paths, erasure. The search itself is a prefix range over the
fragment key, never ``LIKE '%…%'``.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personas import selectors
from personas.models import EntrySource, PhoneFragment
from personas.normalize import format_phone, phone_fragments
from personas.services import changes, privacy
from personas.services.changes import Actor, Changeset
from tests.personas.factories import PersonaFactory

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("Test")


def found(user, q: str) -> list[int]:
    return selectors.search_candidates(user=user, query=q).ids or []


def digits_of(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


@pytest.mark.parametrize(
    ("e164", "tails"),
    [
        ("+12025550123", ["12025550123", "2025550123", "025550123", "0123"]),
        ("+442079460958", ["442079460958", "0958"]),
        (None, []),
        ("", []),
        ("+1234", ["1234"]),
    ],
)
def test_fragments_are_every_tail_of_the_digits_at_least_four_long(e164, tails):
    out = phone_fragments(e164)
    assert set(tails) <= set(out)
    assert all(len(t) >= 4 for t in out)
    digits = digits_of(e164 or "")
    assert len(out) == max(0, len(digits) - 3)


@pytest.mark.parametrize(
    "typed",
    ["555-01", "5550", "2025", "(202) 555", "550123", "0123", "1202 555 0123", "+1 202"],
)
def test_example_3_a_fragment_typed_anywhere_in_the_number_finds_it(staff_user, typed):
    p = PersonaFactory(phone="+12025550123")
    PersonaFactory(phone="+13125559876")  # shares none of those digits in that order
    assert p.pk in found(staff_user, typed)


def test_fewer_than_four_digits_are_not_a_fragment_search(staff_user):
    p = PersonaFactory(phone="+12025550123")
    assert p.pk not in found(staff_user, "550")


def test_a_fragment_search_is_an_index_range_not_a_like_scan(staff_user):
    PersonaFactory(phone="+12025550123")
    with CaptureQueriesContext(connection) as captured:
        found(staff_user, "555-01")
    sqls = [q["sql"] for q in captured.captured_queries if "phonefragment" in q["sql"].lower()]
    assert sqls, "the search reads the fragment rows"
    for sql in sqls:
        assert "LIKE" not in sql.upper(), sql
        assert '"digits" >=' in sql and '"digits" <' in sql, sql


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plan")
def test_postgresql_plans_a_fragment_search_on_the_fragment_key(staff_user):
    PersonaFactory(phone="+12025550123")
    base = selectors.active_personas(staff_user)
    qs = base.filter(phone_fragments__digits__gte="55501", phone_fragments__digits__lt="55502")
    plan = qs.order_by().values_list("id", flat=True)[:500].explain()
    assert "personas_phonefragment_pkey" in plan, plan


def test_a_changed_number_is_found_by_its_new_digits_and_not_its_old(staff_user):
    p = changes.create(Changeset(fields={"phone": "+12025550123"}), ACTOR).persona
    changes.apply(p.pk, Changeset(fields={"phone": "+13125559876"}), ACTOR)
    assert p.pk in found(staff_user, "5559876")
    assert p.pk not in found(staff_user, "5550123")
    changes.apply(p.pk, Changeset(fields={"phone": None}), ACTOR)
    assert not PhoneFragment.objects.filter(persona=p).exists()


def test_bulk_edits_and_both_bulk_creations_keep_the_fragments(staff_user):
    made = changes.create_many(
        [(Changeset(fields={"phone": f"+1312555{n:04d}"}), ACTOR) for n in range(3)],
        entry_source=EntrySource.IMPORT,
    )
    ids = [m.persona_id for m in made]
    assert all(ids)
    # A changeset the fast path declines (a message to send) takes the model path.
    slow = changes.create_many(
        [(Changeset(fields={"phone": "+13125550999", "loyalty_enrolled": True}), ACTOR)],
        entry_source=EntrySource.IMPORT,
    )
    assert slow[0].persona_id in found(staff_user, "0999")
    for n, pid in enumerate(ids):
        assert pid in found(staff_user, f"555{n:04d}")
    changes.apply_many([(ids[0], Changeset(fields={"phone": "+16175550000"}), ACTOR)])
    assert ids[0] in found(staff_user, "6175")
    assert ids[0] not in found(staff_user, "3125550000")


def test_erasure_removes_the_fragments(staff_user):
    p = changes.create(Changeset(fields={"phone": "+12025550123"}), ACTOR).persona
    privacy.erase(p.pk, actor=ACTOR, via="staff")
    assert not PhoneFragment.objects.filter(persona_id=p.pk).exists()


def test_fragments_never_show_a_blocklisted_or_archived_persona(staff_user):
    hidden = PersonaFactory(phone="+12025550123", hidden=True)
    archived = PersonaFactory(phone="+12025550124", status="archived")
    assert found(staff_user, "2025550") == []
    assert hidden.pk and archived.pk


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    subscriber=st.integers(min_value=0, max_value=9999),
    exchange=st.sampled_from(["555", "867", "234", "700"]),
    area=st.sampled_from(["202", "312", "415", "617", "718"]),
    cut=st.data(),
    style=st.sampled_from(["digits", "dashed", "spaced", "formatted"]),
)
def test_property_any_four_or_more_consecutive_digits_find_the_number(
    staff_user, subscriber, exchange, area, cut, style
):
    e164 = f"+1{area}{exchange}{subscriber:04d}"
    PhoneFragment.objects.all().delete()
    p = PersonaFactory(phone=e164)
    digits = digits_of(e164)
    start = cut.draw(st.integers(min_value=0, max_value=len(digits) - 4))
    end = cut.draw(st.integers(min_value=start + 4, max_value=len(digits)))
    fragment = digits[start:end]
    typed = {
        "digits": fragment,
        "dashed": "-".join(fragment[i : i + 3] for i in range(0, len(fragment), 3)),
        "spaced": " ".join(fragment),
        "formatted": format_phone(e164) if end - start == len(digits) else fragment,
    }[style]
    assert p.pk in found(staff_user, typed)
    # …and digits the number does not hold never find it.
    other = "9" * len(fragment) if fragment != "9" * len(fragment) else "8" * len(fragment)
    if other not in digits:
        assert p.pk not in found(staff_user, other)
    p.delete()


@pytest.mark.parametrize(
    ("typed", "email"),
    [
        ("dana@", "dana@example.com"),
        ("dana@ex", "dana@example.com"),
        ("dana.smith@", "dana.smith@example.com"),
        ("DANA.SMITH@EX", "dana.smith@example.com"),
        ("dana.smith@example.c", "dana.smith@example.com"),
    ],
)
def test_example_3_an_email_is_found_by_its_beginning_on_its_index(staff_user, typed, email):
    wanted = PersonaFactory(email=email)
    other = PersonaFactory(email="danaher@example.com")
    with CaptureQueriesContext(connection) as captured:
        ids = found(staff_user, typed)
    assert wanted.pk in ids and other.pk not in ids
    sqls = [q["sql"] for q in captured.captured_queries if '"email" >=' in q["sql"]]
    assert sqls and all("LIKE" not in sql.upper() for sql in sqls)
