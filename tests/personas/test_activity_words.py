"""The Activity tab in words (issue #24, example 4): human labels for every field and state,
times as people read them, no repeated actor kind, the messages sent, and a filter by kind."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command

from personas import messaging
from personas.models import AuditEvent, ConsentState, OutboundMessage, Persona
from personas.selectors import ACTIVITY_LIMIT, activity_kind, persona_activity
from personas.services import changes
from personas.services.changes import Actor, AttributeOp, Changeset
from personas.wording import actor_words, field_label, field_value
from tests.personas.factories import PersonaFactory, SignupFormFactory
from tests.personas.test_replies_page import activity_rows, activity_url, text

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("entry_source", "signup_form", "Signup form"),
        ("status", "archived", "Archived"),
        ("consent:text", ConsentState.OPTED_OUT, "Opted out"),
        ("consent:email", ConsentState.PENDING, "Pending"),
        ("signup_form_id", 1, "#1"),
        ("loyalty_enrolled", True, "Yes"),
        ("birthday", "1990-04-05", "Apr 5, 1990"),
        ("archived_at", "2026-11-30T15:04:00+00:00", "Nov 30, 2026, "),
        ("attr:vip", None, "absent"),
        ("email", None, "—"),
        ("phone", "+12025550142", "(202) 555-0142"),
    ],
)
def test_every_recorded_value_reads_as_words(key, value, words):
    assert field_value(key, value).startswith(words)
    assert "_" not in field_value(key, value)


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("signup_form_id", "Signup form"),
        ("favorite_store_source", "Favorite store set by"),
        ("consent:text", "SMS consent"),
        ("attr:shoe_size", "shoe_size"),
        ("first_name", "First name"),
    ],
)
def test_every_recorded_key_reads_as_words(key, label):
    assert field_label(key).lower() == label.lower() or field_label(key).endswith("consent")


def test_the_actor_is_not_named_twice():
    assert actor_words("Flow", "Flow “VIP lifecycle”") == "“VIP lifecycle”"
    assert actor_words("Customer", "Customer (SMS reply)") == "via SMS reply"
    assert actor_words("Customer", "Customer") == ""
    assert actor_words("Staff", "dana") == "dana"


def test_example_4_the_activity_tab_has_no_raw_values(staff_client):
    form = SignupFormFactory(name="Harbor tablet")
    persona = PersonaFactory(phone="+12025550161", signup_form=form, entry_source="signup_form")
    changes.apply(
        persona,
        Changeset(
            fields={"birthday": dt.date(1990, 4, 5)},
            add=[AttributeOp("vip", "false")],
            set=[AttributeOp("vip", "true")],
            action="edit",
        ),
        Actor.flow_step("VIP lifecycle", 1, "mark"),
    )
    body = staff_client.get(activity_url(persona)).content.decode()
    rows = " ".join(text(r) for r in activity_rows(body, "event"))
    assert "Birthday: — → Apr 5, 1990" in rows
    assert "vip: absent → true (added, then set)" in rows
    assert "Flow Flow" not in rows and "set:created" not in rows and "1990-04-05" not in rows


def test_example_4_messages_sent_appear_and_the_filter_narrows(staff_client):
    persona = PersonaFactory(phone="+12025550162", text_consent="pending")
    messaging.queue(persona, channel="text", template="double_opt_in", transactional=True)
    assert OutboundMessage.objects.filter(persona=persona).exists()
    changes.apply(persona, Changeset(set=[AttributeOp("tier", "gold")]), Actor.system("x"))
    body = staff_client.get(activity_url(persona)).content.decode()
    (sent,) = activity_rows(body, "message")
    assert "Text sent Double opt-in request" in text(sent)
    only = staff_client.get(activity_url(persona) + "?kind=messages").content.decode()
    assert activity_rows(only, "message") and not activity_rows(only, "event")
    traits = staff_client.get(activity_url(persona) + "?kind=traits").content.decode()
    assert not activity_rows(traits, "message") and activity_rows(traits, "event")
    assert 'aria-current="page">Traits' in traits
    nothing = staff_client.get(activity_url(persona) + "?kind=merges").content.decode()
    assert "Nothing of this kind yet" in nothing


def test_the_general_tab_sums_up_purchases_and_why_the_store_is_the_favorite(
    staff_client, django_assert_max_num_queries
):
    from decimal import Decimal

    from django.urls import reverse

    from tests.personas.factories import PurchaseFactory, StoreFactory

    harbor = StoreFactory(name="Harbor")
    persona = PersonaFactory(
        phone="+12025550163", favorite_store=harbor, favorite_store_source="staff"
    )
    PurchaseFactory(persona=persona, store=harbor, total=Decimal("1200.50"))
    PurchaseFactory(persona=persona, store=harbor, total=Decimal("99.50"))
    url = reverse("personas:detail", args=[persona.pk])
    body = " ".join(staff_client.get(url).content.decode().split())
    assert "Lifetime spend</dt><dd>$1,300.00" in body  # in dollars, as the Purchases tab
    assert "Visits</dt><dd>2 purchases" in body
    assert "at Harbor" in body and "set by staff" in body.lower()


@pytest.mark.parametrize(
    ("kind", "old"),
    [
        ("flows", {"action": "update", "actor_kind": "flow", "changes": {"attr:vip": {}}}),
        ("merges", {"action": "merged", "actor_kind": "user", "changes": {"status": {}}}),
        (
            "points",
            {"action": "update", "actor_kind": "user", "changes": {"points_balance": {}}},
        ),
    ],
)
def test_a_kind_filter_reaches_past_the_newest_entries_of_other_kinds(kind, old):
    """An entry of one kind older than ``ACTIVITY_LIMIT`` newer entries of others still
    shows when the Activity is narrowed to its kind (it used to filter the newest 200)."""
    persona = PersonaFactory()
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    change = {key: {"before": None, "after": 1} for key in old["changes"]}
    AuditEvent.objects.create(
        persona=persona,
        action=old["action"],
        actor_kind=old["actor_kind"],
        actor_label="Old entry",
        changes=change,
        created_at=start,
    )
    AuditEvent.objects.bulk_create(
        AuditEvent(
            persona=persona,
            action="update",
            actor_kind="user",
            actor_label="Staff",
            changes={"first_name": {"before": "A", "after": f"B{n}"}},
            created_at=start + dt.timedelta(minutes=n + 1),
        )
        for n in range(ACTIVITY_LIMIT + 5)
    )
    assert all(i.obj.actor_label != "Old entry" for i in persona_activity(persona))
    narrowed = persona_activity(persona, kind=kind)
    assert [i.obj.actor_label for i in narrowed] == ["Old entry"]
    assert all(activity_kind(i) == kind for i in narrowed)


def test_demo_personas_have_the_history_their_profiles_show():
    """Found trying the demo as a new user: a seeded persona showed "Opted out" and earned
    points, but its Activity said "Nothing of this kind yet" under Consent and Points."""
    call_command("seed_demo", personas=60, quiet_users=True, stdout=io.StringIO())
    asked = Persona.objects.exclude(email_consent="never").exclude(email=None).first()
    consent = persona_activity(asked, kind="consent")
    assert any(i.obj.channel == "email" and i.obj.after == asked.email_consent for i in consent)
    earned = Persona.objects.filter(points_balance__gt=0).first()
    points = persona_activity(earned, kind="points")
    assert points and points[0].obj.changes["points_balance"]["after"] == earned.points_balance


def test_field_labels_read_as_words_and_only_attribute_keys_as_keys(staff_client):
    persona = changes.create(Changeset(fields={"first_name": "Ada"}), Actor.system("x")).persona
    changes.apply(persona, Changeset(set=[AttributeOp("shoe_size", 9)]), Actor.system("x"))
    body = staff_client.get(activity_url(persona)).content.decode()
    assert "<li>First name:" in body
    assert '<li><span class="mono">shoe_size</span>:' in body


def test_a_recorded_signup_form_reads_as_its_name(staff_client):
    form = SignupFormFactory(name="Website footer")
    persona = changes.create(
        Changeset(fields={"first_name": "Ada", "signup_form_id": form.pk}),
        Actor.customer("signup form"),
        entry_source="signup_form",
    ).persona
    body = staff_client.get(activity_url(persona)).content.decode()
    assert "Signup form: <del>—</del> → <ins>“Website footer”</ins>" in body
