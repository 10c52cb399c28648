"""Merge and unmerge: field rules, points conservation, exact round trips, chains, lookups."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import Sum
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from personas.models import AuditEvent, ContactConsent, MergeRecord, Persona, PointsEntry, Purchase
from personas.services import changes, merge
from personas.services.changes import Actor, AttributeOp, Changeset, PointsOp
from personas.services.merge import MergeError, snapshot
from tests.conftest import make_user
from tests.personas.factories import PersonaFactory, PurchaseFactory, StoreFactory

pytestmark = pytest.mark.django_db


def _actor():
    return Actor.staff(make_user("Manager"))


def _points(persona, n):
    changes.apply(
        persona, Changeset(points=[PointsOp(PointsEntry.Kind.ADJUST, n, "t")]), Actor.system()
    )


def _total_points() -> int:
    return Persona.objects.aggregate(s=Sum("points_balance"))["s"] or 0


def _state(p: Persona) -> dict:
    p.refresh_from_db()
    return {
        **snapshot(p),
        "merged_into": p.merged_into_id,
        "purchases": sorted(p.purchases.values_list("pk", flat=True)),
        "ledger_sum": p.points_entries.aggregate(s=Sum("points"))["s"] or 0,
    }


def test_field_rules_blanks_filled_chosen_values_attributes_union_consents():
    a = PersonaFactory(
        first_name="Ann",
        last_name="",
        email="ann@example.com",
        phone=None,
        attributes={"vip": "yes", "size": "8"},
        email_consent="opted_in",
        text_consent="never",
        voice_consent="opted_in",
    )
    b = PersonaFactory(
        first_name="Anne",
        last_name="Lee",
        email="anne@example.com",
        phone="+12025550101",
        attributes={"size": "9", "pet": "cat"},
        email_consent="opted_out",
        text_consent="opted_in",
        voice_consent="never",
        birthday=dt.date(1990, 1, 2),
    )
    record = merge.merge(a.pk, b.pk, actor=_actor(), choices={"first_name": "merged"})
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.first_name, a.last_name, a.email, a.phone) == (
        "Anne",
        "Lee",
        "ann@example.com",
        "+12025550101",
    )
    assert a.birthday == dt.date(1990, 1, 2)
    assert a.attributes == {"vip": "yes", "size": "8", "pet": "cat"}  # survivor wins "size"
    # Consent belongs to the address: A keeps its own email and its record (B's opt-out was
    # given by B's address, which A does not take); A takes B's phone and with it that
    # phone's records (text opted in; voice never asked: A's voice consent had no number).
    assert a.email_consent == "opted_in"
    assert a.text_consent == "opted_in" and a.voice_consent == "never"
    assert b.status == "merged" and b.merged_into == a and b.phone == "+12025550101"
    assert record.sources["first_name"] == "merged" and record.sources["email"] == "survivor"
    assert AuditEvent.objects.filter(persona=a, action="merged").exists()


def test_points_purchases_and_history_follow_the_survivor_and_come_back():
    a, b = PersonaFactory(), PersonaFactory()
    _points(a, 100)
    _points(b, 250)
    purchase = PurchaseFactory(persona=b)
    total = _total_points()
    record = merge.merge(a.pk, b.pk, actor=_actor())
    a.refresh_from_db()
    assert a.points_balance == 350 and _total_points() == total
    assert Purchase.objects.get(pk=purchase.pk).persona == a
    assert AuditEvent.objects.filter(persona=a, pk__in=record.moved["audit"]).count() == len(
        record.moved["audit"]
    )
    merge.unmerge(record.pk, actor=_actor())
    assert _total_points() == total
    assert Persona.objects.get(pk=b.pk).points_balance == 250
    assert Purchase.objects.get(pk=purchase.pk).persona_id == b.pk


def test_merged_away_persona_disappears_from_search_and_merge_lookup_lands_on_survivor(client):
    survivor = PersonaFactory(first_name="Sur", phone="+12025550111")
    middle = PersonaFactory(first_name="Mid", phone="+12025550122", email="mid@example.com")
    first = PersonaFactory(first_name="Old", phone="+12025550133")
    merge.merge(middle.pk, first.pk, actor=_actor())
    merge.merge(survivor.pk, middle.pk, actor=_actor())
    client.force_login(make_user("Staff"))
    page = client.get(reverse("personas:list"), {"q": "Old"}).content.decode()
    assert f"/personas/{first.pk}/" not in page
    for typed in (
        "merge:(202) 555-0133",
        "merge:202.555.0133",
        "merge:+1 202 555 0133",
        "merge:2025550133",
        "MERGE: 12025550133",
    ):
        response = client.get(reverse("personas:list"), {"q": typed}, follow=True)
        assert response.redirect_chain[-1][0] == reverse("personas:detail", args=[survivor.pk])
        assert "was merged into" in response.content.decode(), typed
    response = client.get(reverse("personas:list"), {"q": "merge:MID@example.com"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("personas:detail", args=[survivor.pk])
    response = client.get(reverse("personas:list"), {"q": "merge:(202) 555-0199"}, follow=True)
    assert "No merged persona has that phone number or email" in response.content.decode()
    # Typed into the search box (htmx, as you type): found → the browser goes to the survivor;
    # not found (yet) → a note in the results, and no navigation while the user is typing.
    htmx = {"HTTP_HX_REQUEST": "true"}
    found = client.post(reverse("personas:list"), {"q": "merge:(202) 555-0133"}, **htmx)
    assert found["HX-Redirect"] == reverse("personas:detail", args=[survivor.pk])
    typing = client.post(reverse("personas:list"), {"q": "merge:(202) 555-01"}, **htmx)
    assert typing.status_code == 200 and "HX-Redirect" not in typing
    assert typing.content.decode().lstrip().startswith('<div id="results"')
    assert "No merged persona has that phone number or email" in typing.content.decode()


def test_unmerge_refuses_when_the_phone_now_belongs_to_another_persona():
    a = PersonaFactory(phone="+12025550101")
    b = PersonaFactory(phone="+12025550102")
    record = merge.merge(a.pk, b.pk, actor=_actor())
    PersonaFactory(phone="+12025550102")  # a new active persona took the number
    with pytest.raises(MergeError, match="belongs to another active persona"):
        merge.unmerge(record.pk, actor=_actor())
    assert Persona.objects.get(pk=b.pk).status == "merged"


def test_unmerging_a_link_in_a_chain():
    a, b, c = PersonaFactory(), PersonaFactory(), PersonaFactory()
    first = merge.merge(b.pk, c.pk, actor=_actor())  # C into B
    second = merge.merge(a.pk, b.pk, actor=_actor())  # B into A
    with pytest.raises(MergeError, match="Undo that later merge first"):
        merge.unmerge(first.pk, actor=_actor())
    merge.unmerge(second.pk, actor=_actor())
    merge.unmerge(first.pk, actor=_actor())
    assert {p.status for p in Persona.objects.all()} == {"active"}
    with pytest.raises(MergeError, match="already undone"):
        merge.unmerge(first.pk, actor=_actor())


def test_cannot_merge_into_itself_or_a_merged_persona():
    a, b = PersonaFactory(), PersonaFactory()
    with pytest.raises(MergeError):
        merge.merge(a.pk, a.pk, actor=_actor())
    merge.merge(a.pk, b.pk, actor=_actor())
    with pytest.raises(MergeError, match="already merged"):
        merge.merge(a.pk, b.pk, actor=_actor())
    with pytest.raises(MergeError, match="only an active persona"):
        merge.merge(b.pk, a.pk, actor=_actor())


# Merge → unmerge round-trips to the identical state (property over random personas).

_text = st.text(alphabet="abcdefgh", min_size=0, max_size=6)
_consent = st.sampled_from(["never", "opted_in", "opted_out", "pending"])
_attrs = st.dictionaries(st.sampled_from(["a", "b", "c", "vip"]), _text, max_size=3)


@st.composite
def _persona_kwargs(draw, n):
    email = draw(st.one_of(st.none(), st.just(f"p{n}@example.com")))
    phone = draw(st.one_of(st.none(), st.just(f"+120255501{n:02d}")))
    # Text and email consent belong to an address: a persona without one has none.
    return {
        "first_name": draw(_text),
        "last_name": draw(_text),
        "email": email,
        "phone": phone,
        "customer_id": draw(st.one_of(st.none(), st.just(f"C{n}"))),
        "birthday": draw(st.one_of(st.none(), st.dates(dt.date(1950, 1, 1), dt.date(2000, 1, 1)))),
        "attributes": draw(_attrs),
        "text_consent": draw(_consent) if phone else "never",
        "email_consent": draw(_consent) if email else "never",
        "push_consent": draw(_consent),
        "loyalty_enrolled": draw(st.booleans()),
    }


@hsettings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    a=_persona_kwargs(1),
    b=_persona_kwargs(2),
    points=st.tuples(st.integers(0, 500), st.integers(0, 500)),
    choose=st.booleans(),
    archived=st.booleans(),
)
def test_merge_then_unmerge_restores_both_exactly(a, b, points, choose, archived):
    Persona.objects.all().delete()
    ContactConsent.objects.all().delete()  # examples reuse the same addresses
    store = StoreFactory()
    pa = PersonaFactory(**a, favorite_store=store, favorite_store_source="staff")
    pb = PersonaFactory(**b, status="archived" if archived else "active")
    for persona, n in zip((pa, pb), points, strict=True):
        if n:
            _points(persona, n)
    if b["phone"]:
        PurchaseFactory(persona=pb)
    before = (_state(pa), _state(pb))
    total = _total_points()
    choices = {"first_name": "merged", "attr:a": "merged"} if choose else {}
    record = merge.merge(pa.pk, pb.pk, actor=_actor(), choices=choices)
    assert _total_points() == total
    merge.unmerge(record.pk, actor=_actor())
    assert _total_points() == total
    after = (_state(pa), _state(pb))
    for b_state, a_state in zip(before, after, strict=True):
        b_state.pop("archived_reason")
        a_state.pop("archived_reason")
    assert after == before
    MergeRecord.objects.all().delete()


def test_bulk_merge_command_uses_the_same_service(tmp_path, capsys):
    from django.core.management import call_command

    a, b, c = PersonaFactory(), PersonaFactory(), PersonaFactory()
    path = tmp_path / "pairs.csv"
    path.write_text(f"survivor,merged\n{a.pk},{b.pk}\n{a.pk},{a.pk}\n{c.pk},999999\n")
    call_command("merge_personas", str(path))
    out = capsys.readouterr().out
    assert "1 merged, 2 refused" in out
    assert Persona.objects.get(pk=b.pk).merged_into_id == a.pk


def test_merge_views_need_the_merge_capability(client):
    a, b = PersonaFactory(), PersonaFactory()
    client.force_login(make_user("Marketing"))
    url = reverse("personas:merge", args=[a.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"other": b.pk, "survivor": a.pk}).status_code == 403
    assert client.get(reverse("personas:duplicates")).status_code == 403
    client.force_login(make_user("Operator"))
    assert client.get(url).status_code == 200
    response = client.post(url, {"other": b.pk, "survivor": str(b.pk), "confirm": "1"})
    assert response.status_code in (200, 204, 302)
    assert Persona.objects.get(pk=a.pk).merged_into_id == b.pk


def test_duplicate_suggestions_and_not_a_duplicate_is_remembered(client):
    a = PersonaFactory(first_name="Jo", last_name="Park", birthday=dt.date(1980, 5, 5))
    b = PersonaFactory(first_name="Jo", last_name="Park", birthday=dt.date(1980, 5, 5))
    archived = PersonaFactory(phone="+12025550177", status="archived")
    PersonaFactory(phone="+12025550177")
    pairs = {(min(c.a.pk, c.b.pk), max(c.a.pk, c.b.pk)): c for c in merge.duplicate_candidates()}
    assert (a.pk, b.pk) in pairs and pairs[(a.pk, b.pk)].reason == "Same name and birthday"
    assert any(archived.pk in key for key in pairs)
    assert merge.duplicate_hint(a) == b
    client.force_login(make_user("Manager"))
    page = client.get(reverse("personas:duplicates")).content.decode()
    assert "Same name and birthday" in page
    # The merge slide-out offers the likely other profile before any search.
    merge_url = reverse("personas:merge", args=[a.pk])
    drawer = client.get(merge_url).content.decode()
    assert "Looks like the same customer" in drawer and f"?other={b.pk}" in drawer
    client.post(reverse("personas:not_duplicate"), {"a": a.pk, "b": b.pk})
    assert "Looks like the same customer" not in client.get(merge_url).content.decode()
    pairs = {(min(c.a.pk, c.b.pk), max(c.a.pk, c.b.pk)) for c in merge.duplicate_candidates()}
    assert (a.pk, b.pk) not in pairs
    assert merge.duplicate_hint(a) is None
    assert Persona.objects.filter(status="merged").count() == 0  # never merges by itself


def test_attribute_edits_after_a_merge_survive_an_unmerge():
    a = PersonaFactory(attributes={})
    b = PersonaFactory(attributes={"pet": "cat"})
    record = merge.merge(a.pk, b.pk, actor=_actor())
    changes.apply(a, Changeset(set=[AttributeOp("pet", "dog")]), Actor.system())
    merge.unmerge(record.pk, actor=_actor())
    a.refresh_from_db()
    assert a.attributes == {"pet": "dog"}  # edited since the merge: the edit stays
    assert Persona.objects.get(pk=b.pk).attributes == {"pet": "cat"}
