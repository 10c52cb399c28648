"""The one mutation path: ordering, consent rules, precedence, audit, validation."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personas.models import AuditEvent, ConsentChange, OutboundMessage, Persona, PointsEntry
from personas.services import changes
from personas.services.changes import (
    Actor,
    AttributeOp,
    Changeset,
    ConsentAction,
    ConsentOp,
    DuplicatePersonaError,
    PointsOp,
    StaleEditError,
)
from tests.personas.factories import PersonaFactory, StoreFactory

pytestmark = pytest.mark.django_db


def system() -> Actor:
    return Actor.system("test")


def test_seed_example_add_set_remove_ends_with_the_key_removed():
    persona = PersonaFactory(attributes={})
    result = changes.apply(
        persona,
        Changeset(
            remove=["vip"],
            set=[AttributeOp("vip", True)],
            add=[AttributeOp("vip", False)],
        ),
        system(),
    )
    persona.refresh_from_db()
    assert "vip" not in persona.attributes
    assert [o["result"] for o in result.attribute_ops] == ["created", "replaced", "removed"]


def test_set_beats_add_whatever_the_list_order():
    persona = PersonaFactory(attributes={})
    changes.apply(
        persona,
        Changeset(set=[AttributeOp("vip", True)], add=[AttributeOp("vip", False)]),
        system(),
    )
    persona.refresh_from_db()
    assert persona.attributes["vip"] is True


def test_add_keeps_an_existing_value():
    persona = PersonaFactory(attributes={"tier": "gold"})
    result = changes.apply(persona, Changeset(add=[AttributeOp("tier", "bronze")]), system())
    persona.refresh_from_db()
    assert persona.attributes["tier"] == "gold"
    assert result.changed is False
    assert result.attribute_ops == [{"op": "add", "key": "tier", "result": "kept"}]
    assert AuditEvent.objects.filter(persona=persona).count() == 0


def test_remove_of_an_absent_key_is_a_no_op():
    persona = PersonaFactory(attributes={"a": 1})
    result = changes.apply(persona, Changeset(remove=["missing"]), system())
    assert result.changed is False
    assert result.attribute_ops[0]["result"] == "absent"


KEYS = st.sampled_from(["vip", "tier", "temp_flag"])
VALUES = st.one_of(st.booleans(), st.integers(-5, 5), st.sampled_from(["a", "b"]))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.dictionaries(KEYS, VALUES),
    add=st.lists(st.tuples(KEYS, VALUES), max_size=4),
    set_=st.lists(st.tuples(KEYS, VALUES), max_size=4),
    remove=st.lists(KEYS, max_size=3),
    data=st.data(),
)
def test_order_inside_each_list_does_not_matter_beyond_last_set(start, add, set_, remove, data):
    """Outcome = add only where absent, then every set, then remove; list permutations of add
    and remove never matter, and for set only the last value per key counts."""
    shuffled_add = data.draw(st.permutations(add))
    shuffled_remove = data.draw(st.permutations(remove))
    a, _ = changes.apply_attribute_ops(start, add, set_, remove)
    b, _ = changes.apply_attribute_ops(start, shuffled_add, set_, shuffled_remove)
    first_add = {}
    for key, value in add:
        first_add.setdefault(key, value)
    expected = dict(start)
    for key, value in first_add.items():
        expected.setdefault(key, value)
    for key, value in set_:
        expected[key] = value
    for key in remove:
        expected.pop(key, None)
    assert a == expected
    for key in remove:
        assert key not in b
    for key, _value in set_:
        if key not in remove:
            assert b[key] == a[key]


def test_force_opt_out_overrides_opted_in_and_is_recorded_as_hard():
    persona = PersonaFactory(text_consent="opted_in")
    changes.apply(persona, Changeset(consents=[ConsentOp("text", "force_opt_out")]), system())
    persona.refresh_from_db()
    assert persona.text_consent == "opted_out"
    change = ConsentChange.objects.get(persona=persona)
    assert (change.before, change.after, change.hard) == ("opted_in", "opted_out", True)


@pytest.mark.parametrize(
    "actor",
    [Actor.import_row(1, 2), Actor.flow_step("f", 1, "s"), Actor.system()],
    ids=["import", "flow", "system"],
)
def test_push_opt_in_is_refused_for_everyone_but_the_customer(actor, staff_user):
    persona = PersonaFactory()
    for who in (actor, Actor.staff(staff_user)):
        with pytest.raises(ValidationError, match="Only the customer"):
            changes.apply(persona, Changeset(consents=[ConsentOp("push", "opt_in")]), who)
    persona.refresh_from_db()
    assert persona.push_consent == "never"
    changes.apply(persona, Changeset(consents=[ConsentOp("push", "opt_in")]), Actor.customer("app"))
    persona.refresh_from_db()
    assert persona.push_consent == "opted_in"


def test_staff_text_opt_in_becomes_pending_and_queues_a_confirmation(
    staff_user, django_capture_on_commit_callbacks
):
    persona = PersonaFactory(phone="+12025550123")
    with django_capture_on_commit_callbacks(execute=True):
        changes.apply(
            persona, Changeset(consents=[ConsentOp("text", "opt_in")]), Actor.staff(staff_user)
        )
    persona.refresh_from_db()
    assert persona.text_consent == "pending"
    message = OutboundMessage.objects.get(persona=persona)
    assert message.template == "double_opt_in"
    assert message.status == "sent"  # the immediate task backend ran the send task
    from personas.messaging.backends import LocmemBackend

    assert LocmemBackend.outbox[-1]["to"] == "+12025550123"
    assert "YES" in LocmemBackend.outbox[-1]["body"]
    changes.apply(
        persona, Changeset(consents=[ConsentOp("text", ConsentAction.CONFIRM)]), Actor.customer()
    )
    persona.refresh_from_db()
    assert persona.text_consent == "opted_in"


def test_lower_favorite_store_source_never_overrides_a_higher_one():
    wallet_store, import_store = StoreFactory(), StoreFactory()
    persona = PersonaFactory()
    changes.apply(persona, Changeset(favorite_store=(wallet_store.pk, "wallet")), Actor.customer())
    changes.apply(
        persona, Changeset(favorite_store=(import_store.pk, "import")), Actor.import_row(1, 1)
    )
    persona.refresh_from_db()
    assert persona.favorite_store_id == wallet_store.pk
    changes.apply(persona, Changeset(favorite_store=(import_store.pk, "signup_form")), system())
    persona.refresh_from_db()
    assert persona.favorite_store_id == wallet_store.pk
    changes.apply(persona, Changeset(favorite_store=(import_store.pk, "wallet")), Actor.customer())
    persona.refresh_from_db()
    assert persona.favorite_store_id == import_store.pk


def test_every_change_writes_exactly_one_audit_event_naming_its_actor(staff_user):
    persona = PersonaFactory(first_name="Ann", attributes={})
    changes.apply(
        persona,
        Changeset(
            fields={"first_name": "Anne", "email": "ANNE@Example.COM"},
            set=[AttributeOp("tier", "gold")],
            consents=[ConsentOp("email", "opt_in")],
        ),
        Actor.staff(staff_user),
    )
    events = list(AuditEvent.objects.filter(persona=persona))
    assert len(events) == 1
    event = events[0]
    assert event.actor_kind == "user" and event.actor_user == staff_user
    assert event.changes["first_name"] == {"before": "Ann", "after": "Anne"}
    assert event.changes["email"]["after"] == "anne@example.com"
    assert event.changes["attr:tier"]["op"] == "created"
    assert event.changes["consent:email"] == {"before": "never", "after": "opted_in"}


def test_invalid_changeset_changes_nothing():
    persona = PersonaFactory(first_name="Ann", attributes={})
    with pytest.raises(ValidationError):
        changes.apply(
            persona,
            Changeset(fields={"first_name": "Bea", "email": "not-an-email"}),
            system(),
        )
    persona.refresh_from_db()
    assert persona.first_name == "Ann"
    assert not AuditEvent.objects.filter(persona=persona).exists()


@pytest.mark.parametrize(
    "key", ["", "has space", "x" * 65, "1starts_with_digit", "<script>"], ids=repr
)
def test_bad_attribute_keys_are_refused(key):
    persona = PersonaFactory()
    with pytest.raises(ValidationError):
        changes.apply(persona, Changeset(set=[AttributeOp(key, "v")]), system())


def test_overlong_attribute_value_is_refused(settings):
    persona = PersonaFactory()
    with pytest.raises(ValidationError, match="longer than"):
        changes.apply(
            persona,
            Changeset(set=[AttributeOp("note", "x" * (settings.PERSONAS_ATTRIBUTE_VALUE_MAX + 1))]),
            system(),
        )


@pytest.mark.parametrize(
    "changeset, message",
    [
        (Changeset(set=[AttributeOp("note", "a\x00b")]), "NUL character"),
        (Changeset(set=[AttributeOp("note", "a\ud800b")]), "not valid text"),
        (Changeset(fields={"first_name": "Ana\udc00"}), "control characters"),
    ],
)
def test_text_no_database_can_store_is_refused_and_changes_nothing(changeset, message):
    """A NUL, or an unpaired surrogate (what "\\ud800" in JSON decodes to): PostgreSQL refuses
    both, so the one mutation path refuses them first, with a message, on every database."""
    persona = PersonaFactory(first_name="Ana", attributes={"note": "x"})
    events = AuditEvent.objects.count()
    with pytest.raises(ValidationError, match=message):
        changes.apply(persona, changeset, system())
    persona.refresh_from_db()
    assert persona.attributes == {"note": "x"} and persona.first_name == "Ana"
    assert AuditEvent.objects.count() == events


def test_phone_is_stored_as_e164_and_indexes_are_kept_in_step():
    result = changes.create(
        Changeset(fields={"first_name": "Zoë", "last_name": "Núñez", "phone": "(415) 555-0147"}),
        Actor.system(),
    )
    persona = Persona.objects.get(pk=result.persona.pk)
    assert persona.phone == "+14155550147"
    assert sorted(persona.phone_fragments.values_list("digits", flat=True), key=len) == [
        "0147",
        "50147",
        "550147",
        "5550147",
        "55550147",
        "155550147",
        "4155550147",
        "14155550147",
    ]
    assert (persona.first_key, persona.last_key) == ("zoe", "nunez")


def test_duplicate_active_phone_is_refused_with_the_existing_persona():
    existing = PersonaFactory(phone="+14155550147")
    with pytest.raises(DuplicatePersonaError) as info:
        changes.create(Changeset(fields={"phone": "+1 415 555 0147"}), Actor.system())
    assert info.value.existing == existing


def test_database_refuses_two_active_personas_with_one_email():
    from django.db import IntegrityError, transaction

    PersonaFactory(email="same@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        PersonaFactory(email="same@example.com")
    PersonaFactory(email="same@example.com", status="archived")  # archived ones may share


def test_stale_edit_of_the_same_attribute_is_refused():
    persona = PersonaFactory(attributes={"tier": "silver"})
    changes.apply(persona, Changeset(set=[AttributeOp("tier", "gold")]), system())
    with pytest.raises(StaleEditError):
        changes.apply(
            persona,
            Changeset(set=[AttributeOp("tier", "bronze")], expected={"attr:tier": "silver"}),
            system(),
        )
    persona.refresh_from_db()
    assert persona.attributes["tier"] == "gold"


def test_points_go_through_the_ledger_and_the_cached_balance():
    persona = PersonaFactory(points_balance=0)
    changes.apply(persona, Changeset(points=[PointsOp("adjust", 25, "goodwill")]), system())
    changes.apply(persona, Changeset(points=[PointsOp("redeem", -10, "reward")]), system())
    persona.refresh_from_db()
    assert persona.points_balance == 15
    assert sum(PointsEntry.objects.filter(persona=persona).values_list("points", flat=True)) == 15


def test_archived_persona_earns_no_points():
    persona = PersonaFactory(status="archived")
    with pytest.raises(ValidationError, match="earns no points"):
        changes.apply(persona, Changeset(points=[PointsOp("earn", 5)]), system())


def test_unarchive_is_refused_when_an_active_persona_holds_the_phone():
    archived = PersonaFactory(phone="+14155550111", status="archived")
    PersonaFactory(phone="+14155550111")
    with pytest.raises(DuplicatePersonaError, match="merge"):
        changes.apply(archived, Changeset(status=("active", "")), system())


def test_apply_many_has_the_same_semantics_and_one_event_per_changed_persona():
    a = PersonaFactory(attributes={"vip": True})
    b = PersonaFactory(attributes={})
    c = PersonaFactory(attributes={})
    cs = Changeset(add=[AttributeOp("vip", False)], set=[AttributeOp("step", "post purchase")])
    bad = Changeset(set=[AttributeOp("bad key", 1)])
    outcomes = changes.apply_many(
        [(a.pk, cs, Actor.flow_step("F", 1, "s")), (b.pk, cs, system()), (c.pk, bad, system())]
    )
    assert [o.changed for o in outcomes] == [True, True, False]
    assert outcomes[2].error is not None
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.attributes == {"vip": True, "step": "post purchase"}
    assert b.attributes == {"vip": False, "step": "post purchase"}
    assert AuditEvent.objects.filter(persona__in=[a, b]).count() == 2
    assert not AuditEvent.objects.filter(persona=c).exists()
    assert AuditEvent.objects.get(persona=a).actor_kind == "flow"


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Etc/GMT+12", "UTC"])
@pytest.mark.parametrize("utc_hour", [1, 13, 23])
def test_a_birthday_is_checked_against_today_in_the_active_time_zone(zone, utc_hour, monkeypatch):
    import datetime as dt
    import zoneinfo

    from django.utils import timezone

    instant = dt.datetime(2026, 3, 10, utc_hour, 30, tzinfo=dt.UTC)
    monkeypatch.setattr(timezone, "now", lambda: instant)
    with timezone.override(zoneinfo.ZoneInfo(zone)):
        today = instant.astimezone(zoneinfo.ZoneInfo(zone)).date()
        for offset in range(-3, 4):
            day = today + dt.timedelta(days=offset)
            if offset <= 0:
                assert changes.validate_field("birthday", day) == day
            else:
                with pytest.raises(ValidationError, match="real date in the past"):
                    changes.validate_field("birthday", day)
        assert changes.validate_field("birthday", "1990-05-17") == dt.date(1990, 5, 17)
    with pytest.raises(ValidationError, match="real date in the past"):
        changes.validate_field("birthday", "1899-12-31")


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(_json_values)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_bulk_json_text_reads_back_as_json_dumps_does(value):
    import json

    from personas.services.bulkdb import json_text

    assert json.loads(json_text(value)) == json.loads(json.dumps(value))
