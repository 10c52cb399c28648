"""The data migration that turns today's per-persona consents into per-address records
(personas 0009_consent_records_from_personas), forwards and backwards."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from personas.models import ContactConsent, OutboundMessage
from personas.services import changes
from personas.services.changes import Actor, ChangeError, Changeset, ConsentAction, ConsentOp
from personas.services.consent import address_digest
from tests.conftest import make_user

BEFORE = ("personas", "0007_merge")
AFTER = ("personas", "0009_consent_records_from_personas")
TABLE = "personas_contactconsent"

SHARED = "+12025550111"  # an active opted-in persona and an archived opted-out one
NEVER_ASKED = "+12025550122"
ERASED = "+12025550133"
ACTIVE_WINS = "+12025550144"  # an active pending persona and an archived opted-in one
LATEST_WINS = "+12025550155"  # two archived personas: the one updated last decides
EMAIL = "ann@example.com"
CONSENTS = ("text_consent", "voice_consent", "email_consent", "push_consent")


def _migrate(executor: MigrationExecutor, target: list[tuple[str, str]]) -> MigrationExecutor:
    executor.loader.build_graph()  # the previous migrate changed what is applied
    executor.migrate(target)
    return executor


def _personas(apps) -> dict[int, dict]:
    Persona = apps.get_model("personas", "Persona")
    return {row["id"]: row for row in Persona.objects.values("id", "status", *CONSENTS)}


@pytest.mark.django_db(transaction=True)
def test_consents_become_address_records_and_the_migration_reverses():
    executor = MigrationExecutor(connection)
    try:
        _migrate(executor, [BEFORE])
        _forwards_and_backwards(executor)
    finally:
        # Later tests get the latest schema whatever happened above.
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def _forwards_and_backwards(executor: MigrationExecutor) -> None:
    old = executor.loader.project_state([BEFORE]).apps
    Persona = old.get_model("personas", "Persona")
    ConsentChange = old.get_model("personas", "ConsentChange")
    now = timezone.now()

    def persona(**kw):
        return Persona.objects.create(first_name="P", **kw)

    opted_in = persona(phone=SHARED, text_consent="opted_in", voice_consent="opted_in")
    opted_out = persona(
        phone=SHARED, status="archived", text_consent="opted_out", voice_consent="never"
    )
    by_email = persona(email=EMAIL, email_consent="opted_in", push_consent="opted_in")
    persona(phone=NEVER_ASKED)  # a number nobody was ever asked about: no record
    erased = persona(phone=ERASED, status="erased", text_consent="opted_out")
    pending = persona(phone=ACTIVE_WINS, text_consent="pending")
    older = persona(phone=ACTIVE_WINS, status="archived", text_consent="opted_in")
    # The archived one was updated last: the active persona still decides.
    Persona.objects.filter(pk=pending.pk).update(updated_at=now - dt.timedelta(days=2))
    Persona.objects.filter(pk=older.pk).update(updated_at=now - dt.timedelta(days=1))
    stale = persona(phone=LATEST_WINS, status="archived", text_consent="opted_in")
    latest = persona(phone=LATEST_WINS, status="archived", text_consent="pending")
    Persona.objects.filter(pk=stale.pk).update(updated_at=now - dt.timedelta(days=3))
    Persona.objects.filter(pk=latest.pk).update(updated_at=now - dt.timedelta(days=1))

    def change(p, channel, before, after):
        return ConsentChange.objects.create(
            persona=p, channel=channel, before=before, after=after, actor_kind="user"
        ).pk

    history = {
        "shared_in": change(opted_in, "text", "never", "opted_in"),
        "shared_out": change(opted_out, "text", "opted_in", "opted_out"),
        "voice": change(opted_in, "voice", "never", "opted_in"),
        "email": change(by_email, "email", "never", "opted_in"),
        "text_without_phone": change(by_email, "text", "never", "opted_out"),
        "push": change(by_email, "push", "never", "opted_in"),
        "erased": change(erased, "text", "opted_in", "opted_out"),
    }
    before = _personas(old)

    # -- forwards -----------------------------------------------------------------------------
    _migrate(executor, [AFTER])
    new = executor.loader.project_state([AFTER]).apps
    ContactConsent = new.get_model("personas", "ContactConsent")
    records = {
        (r.channel, r.digest): (r.state, r.hard, r.customer_choice, r.reminded)
        for r in ContactConsent.objects.all()
    }
    text = lambda n: ("text", address_digest("text", n))  # noqa: E731
    voice = lambda n: ("voice", address_digest("voice", n))  # noqa: E731
    assert records == {
        text(SHARED): ("opted_out", False, "", False),  # the opt-out wins over the opt-in
        voice(SHARED): ("opted_in", False, "", False),  # "never asked" stores nothing
        ("email", address_digest("email", EMAIL)): ("opted_in", False, "", False),
        text(ACTIVE_WINS): ("pending", False, "", False),  # the active one, not the latest
        text(LATEST_WINS): ("pending", False, "", False),  # no active one: the latest
    }  # nothing for a number never asked, nor for an erased persona's number; and the keys
    # above are the application's own HMACs (address_digest), so the migration's match them.

    links = dict(new.get_model("personas", "ConsentChange").objects.values_list("pk", "address"))
    assert {name: links[pk] for name, pk in history.items()} == {
        "shared_in": text(SHARED)[1],
        "shared_out": text(SHARED)[1],
        "voice": voice(SHARED)[1],
        "email": address_digest("email", EMAIL),
        "text_without_phone": "",  # no phone: no address to link
        "push": "",  # push consent stays per persona
        "erased": "",
    }

    # Every persona now shows its address's record (opted out wins on both holders).
    after = _personas(new)
    expected = {pk: dict(row) for pk, row in before.items()}
    expected[opted_in.pk].update(text_consent="opted_out")
    expected[opted_out.pk].update(voice_consent="opted_in")
    expected[older.pk].update(text_consent="pending")
    expected[stale.pk].update(text_consent="pending")
    assert after == expected

    # -- backwards ----------------------------------------------------------------------------
    _migrate(executor, [BEFORE])
    assert TABLE not in connection.introspection.table_names()
    old = executor.loader.project_state([BEFORE]).apps
    ConsentChange = old.get_model("personas", "ConsentChange")
    assert set(ConsentChange.objects.values_list("pk", flat=True)) == set(history.values())
    # Reversing leaves the persona columns as they are. (The migration's docstring says they
    # "were never changed", but its forward step mirrors the records onto them: a round trip
    # keeps the mirrored values, e.g. the active opted-in persona stays opted out.)
    assert _personas(old) == after != before

    # And forwards again from there: the same records.
    _migrate(executor, [AFTER])
    ContactConsent = executor.loader.project_state([AFTER]).apps.get_model(
        "personas", "ContactConsent"
    )
    again = {
        (r.channel, r.digest): (r.state, r.hard, r.customer_choice, r.reminded)
        for r in ContactConsent.objects.all()
    }
    assert again == records


@pytest.mark.django_db(transaction=True)
def test_a_stop_texted_before_the_migration_can_still_only_be_undone_by_the_customer():
    """The records keep the customer's own latest choice from the history (0009 first wrote
    customer_choice="" everywhere: staff could then opt a number that had texted STOP back in,
    and a double opt-in text went to it)."""
    executor = MigrationExecutor(connection)
    try:
        _migrate(executor, [BEFORE])
        old = executor.loader.project_state([BEFORE]).apps
        p = old.get_model("personas", "Persona").objects.create(
            phone=SHARED, text_consent="opted_out"
        )
        ConsentChange = old.get_model("personas", "ConsentChange")
        for before, after, kind in [
            ("never", "opted_in", "customer"),  # an earlier YES
            ("opted_in", "opted_out", "customer"),  # then STOP: the latest choice
            ("opted_out", "opted_out", "user"),  # staff rows are not the customer's choice
        ]:
            ConsentChange.objects.create(
                persona=p, channel="text", before=before, after=after, actor_kind=kind
            )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    record = ContactConsent.objects.get(channel="text", digest=address_digest("text", SHARED))
    assert (record.state, record.customer_choice) == ("opted_out", "opted_out")
    with pytest.raises(ChangeError, match="opted out from this address themselves"):
        changes.apply(
            p.pk,
            Changeset(consents=[ConsentOp("text", ConsentAction.OPT_IN)]),
            Actor.staff(make_user("Staff")),
        )
    assert not OutboundMessage.objects.filter(to=SHARED).exists()
