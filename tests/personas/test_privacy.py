"""Privacy: blocklist hides everywhere, erasure leaves nothing. (The customer's own data
controls: tests/customers/test_data_controls.py.)"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.urls import reverse

from personas.models import (
    AuditEvent,
    BlocklistEntry,
    BlocklistRecovery,
    ErasureRequest,
    Persona,
    PointsEntry,
)
from personas.roles import PRIVACY_GROUP, sync_role_groups
from personas.services import changes, privacy
from personas.services.changes import (
    Actor,
    AttributeOp,
    BlockedIdentifierError,
    Changeset,
    ConsentAction,
    ConsentOp,
    PointsOp,
)
from personas.services.privacy import Identifier
from tests.conftest import make_user
from tests.personas.factories import PersonaFactory, PurchaseFactory

pytestmark = pytest.mark.django_db(transaction=False)


PHONE = "+12025550199"
EMAIL = "zebulonia.quartermaine@example.org"
FIRST, LAST = "Zebulonia", "Quartermaine"


def _customer(**extra):
    """A rich customer written through the one mutation path (audit trail, consents, points)."""
    staff = make_user("Owner")
    result = changes.create(
        Changeset(
            fields={
                "first_name": FIRST,
                "last_name": LAST,
                "email": EMAIL,
                "phone": PHONE,
                "birthday": dt.date(1981, 4, 9),
                "customer_id": "POS-778812",
                **extra,
            },
            set=[AttributeOp("shoe_size", "Quartermaine-size-44")],
            consents=[ConsentOp("email", ConsentAction.OPT_IN)],
            points=[PointsOp(PointsEntry.Kind.ADJUST, 250, "welcome")],
        ),
        Actor.staff(staff),
    )
    persona = result.persona
    changes.apply(persona, Changeset(fields={"first_name": "Zebby"}), Actor.staff(staff))
    changes.apply(persona, Changeset(fields={"first_name": FIRST}), Actor.staff(staff))
    PurchaseFactory(persona=persona, total=Decimal("19.99"))
    return persona


def _needles() -> list[str]:
    return [
        PHONE,
        PHONE.lstrip("+"),
        PHONE[::-1].lstrip("+")[:10],
        EMAIL,
        FIRST,
        LAST,
        "POS-778812",
        "Quartermaine-size-44",
        "1981-04-09",
        "2025550199",
    ]


def scan_database(needles: list[str]) -> list[tuple[str, str]]:
    """Every row of every table, as text, searched for the customer's personal values."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names from the schema
            for row in cursor.fetchall():
                text = " ".join(str(v) for v in row).lower()
                for needle in needles:
                    if needle.lower() in text:
                        found.append((table, needle))
    return found


# ---------------------------------------------------------------------------------------------
# Blocklist: hidden everywhere staff look


def _block_phone(phone=PHONE):
    privacy.blocklist([Identifier("phone", phone)], reason=BlocklistEntry.Reason.LEGAL)


def test_blocklist_holds_no_readable_contact_data():
    PersonaFactory(phone=PHONE, email=EMAIL)
    privacy.blocklist(
        [Identifier("phone", PHONE), Identifier("email", EMAIL)],
        reason=BlocklistEntry.Reason.LEGAL,
    )
    assert BlocklistEntry.objects.count() == 2
    assert scan_database([PHONE, EMAIL.split("@")[0]]) == [
        ("personas_persona", PHONE),
        ("personas_persona", EMAIL.split("@")[0]),
    ]


def test_a_flagged_phone_hides_the_persona_everywhere_even_when_the_email_is_not(client):
    persona = PersonaFactory(
        phone=PHONE, email=EMAIL, first_name=FIRST, last_name=LAST, customer_id="POS-1"
    )
    archived = PersonaFactory(phone=PHONE, email="other@example.org", status="archived")
    purchase = PurchaseFactory(persona=persona, receipt_id="RCPT-HIDDEN")
    _block_phone()
    persona.refresh_from_db()
    assert persona.hidden and Persona.objects.get(pk=archived.pk).hidden
    client.force_login(make_user("Owner"))
    list_url = reverse("personas:list")
    for query in (
        "",
        PHONE,
        "(202) 555-0199",
        "0199",
        EMAIL,
        FIRST,
        f"{FIRST} {LAST}",
        "POS-1",
        purchase.receipt_id,
    ):
        response = client.get(list_url, {"q": query})
        assert response.status_code == 200
        assert f"/personas/{persona.pk}/" not in response.content.decode(), query
    archived_page = client.get(reverse("personas:archived"), {"q": ""}).content.decode()
    assert "other@example.org" not in archived_page
    assert f"/personas/{archived.pk}/" not in archived_page
    for pk in (persona.pk, archived.pk):
        assert client.get(reverse("personas:detail", args=[pk])).status_code == 404


def test_hidden_personas_are_absent_from_admin_except_for_the_privacy_group(client):
    persona = PersonaFactory(phone=PHONE, email=EMAIL, first_name=FIRST)
    _block_phone()
    superuser = make_user(None, is_staff=True, is_superuser=True)
    client.force_login(superuser)
    page = client.get(reverse("admin:personas_persona_changelist")).content.decode()
    assert FIRST not in page
    assert client.get(reverse("admin:personas_persona_change", args=[persona.pk])).status_code in (
        302,
        404,
    )
    assert client.get(reverse("admin:personas_blocklistentry_changelist")).status_code == 403
    assert client.get(reverse("admin:personas_blocklistentry_recover")).status_code == 403

    support = make_user(None, is_staff=True)
    sync_role_groups()
    support.groups.add(Group.objects.get(name=PRIVACY_GROUP))
    client.force_login(support)
    assert FIRST in client.get(reverse("admin:personas_persona_changelist")).content.decode()
    assert client.get(reverse("admin:personas_blocklistentry_changelist")).status_code == 200


def test_staff_roles_cannot_reach_admin_or_the_blocklist(client):
    _block_phone()
    for role in ("Staff", "Manager", "Owner"):
        client.force_login(make_user(role))
        response = client.get(reverse("admin:personas_blocklistentry_changelist"))
        assert response.status_code == 302 and "login" in response["Location"]


def test_a_blocklisted_identifier_cannot_be_used_for_a_new_or_edited_persona():
    _block_phone()
    with pytest.raises(BlockedIdentifierError) as info:
        changes.create(Changeset(fields={"phone": "(202) 555-0199"}), Actor.system())
    assert "blocklist" not in str(info.value).lower()
    other = PersonaFactory()
    with pytest.raises(BlockedIdentifierError):
        changes.apply(other, Changeset(fields={"phone": PHONE}), Actor.system())
    assert not Persona.objects.filter(phone=PHONE).exists()


def test_blocklist_check_is_one_query_for_a_whole_batch(django_assert_max_num_queries):
    _block_phone()
    digests = [privacy.identifier_digest("phone", f"+1202555{n:04d}") for n in range(400)]
    with django_assert_max_num_queries(1):
        blocked = privacy.blocked_digests(digests)
    assert blocked == {privacy.identifier_digest("phone", PHONE)}


# ---------------------------------------------------------------------------------------------
# Erasure


def test_erasure_opts_out_removes_points_wipes_data_and_blocklists():
    persona = _customer()
    record = privacy.erase(persona, actor=Actor.system(), via=ErasureRequest.Via.STAFF)
    persona.refresh_from_db()
    assert persona.status == "erased" and persona.hidden
    assert all(state == "opted_out" for _, state in persona.consents)
    assert persona.consent_changes.filter(hard=True).count() == 5
    assert persona.points_balance == 0
    assert persona.points_entries.filter(kind="removal", points=-250).exists()
    assert (persona.first_name, persona.email, persona.phone, persona.attributes) == (
        "",
        None,
        None,
        {},
    )
    assert persona.purchases.count() == 0
    assert privacy.is_blocked(phone=PHONE) and privacy.is_blocked(email=EMAIL)
    assert record.matched and record.points_removed == 250 and len(record.digests) == 2
    erased_event = AuditEvent.objects.get(persona=persona, action="erased")
    assert erased_event.changes["consent:text"]["hard"] is True


def test_after_erasure_no_table_holds_any_personal_value():
    persona = _customer()
    # A merged-away duplicate and an archived one carry the same identifiers.
    PersonaFactory(
        phone=PHONE,
        email="zq.old@example.org",
        status="merged",
        merged_into=persona,
        first_name=FIRST,
        last_name=LAST,
    )
    PersonaFactory(email=EMAIL, phone=None, status="archived", last_name=LAST)
    assert scan_database(_needles())  # the scan does find them before
    privacy.erase(persona, actor=Actor.system(), via=ErasureRequest.Via.STAFF)
    assert scan_database([*_needles(), "zq.old@example.org"]) == []


def test_erased_persona_never_appears_in_the_archived_view_or_search(client):
    persona = _customer()
    privacy.erase(persona, actor=Actor.system(), via=ErasureRequest.Via.STAFF)
    client.force_login(make_user("Owner"))
    assert client.get(reverse("personas:detail", args=[persona.pk])).status_code == 404
    for url in (reverse("personas:archived"), reverse("personas:list")):
        for q in ("", PHONE, EMAIL, FIRST):
            assert f"/personas/{persona.pk}/" not in client.get(url, {"q": q}).content.decode()


def test_erasing_twice_is_refused_and_an_erased_persona_cannot_be_changed():
    persona = _customer()
    privacy.erase(persona, actor=Actor.system(), via=ErasureRequest.Via.STAFF)
    with pytest.raises(Exception, match="already deleted"):
        privacy.erase(persona, actor=Actor.system(), via=ErasureRequest.Via.STAFF)
    with pytest.raises(changes.ChangeError):
        changes.apply(persona, Changeset(fields={"first_name": "Back"}), Actor.system())


def test_staff_erase_action_needs_the_erase_capability_and_a_typed_confirmation(client):
    persona = _customer()
    url = reverse("personas:erase", args=[persona.pk])
    client.force_login(make_user("Operator"))
    assert client.post(url, {"confirm": "DELETE"}).status_code == 403
    client.force_login(make_user("Manager"))
    response = client.post(url, {"confirm": "nope"})
    assert response.status_code == 200 and "Type DELETE" in response.content.decode()
    assert Persona.objects.get(pk=persona.pk).status == "active"
    response = client.post(url, {"confirm": "DELETE"}, follow=True)
    assert "personal data was deleted" in response.content.decode()
    assert Persona.objects.get(pk=persona.pk).status == "erased"
    assert ErasureRequest.objects.get().requested_by.groups.first().name == "Manager"


def test_privacy_settings_show_the_public_link_and_a_pii_free_log(client):
    persona = _customer()
    privacy.erase(persona, actor=Actor.system(), via=ErasureRequest.Via.STAFF)
    client.force_login(make_user("Operator"))
    page = client.get(reverse("personas:privacy_settings")).content.decode()
    assert reverse("customers:data_controls") in page
    assert "Staff, in the app" in page
    assert FIRST not in page and PHONE not in page
    client.force_login(make_user("Marketing"))
    assert client.get(reverse("personas:privacy_settings")).status_code == 403


# ---------------------------------------------------------------------------------------------
# Account recovery


def test_privacy_user_recovers_a_phone_in_admin_and_the_persona_reappears(client):
    persona = PersonaFactory(phone=PHONE, email=EMAIL, first_name=FIRST)
    _block_phone()
    support = make_user(None, is_staff=True)
    sync_role_groups()
    support.groups.add(Group.objects.get(name=PRIVACY_GROUP))
    client.force_login(support)
    url = reverse("admin:personas_blocklistentry_recover")
    found = client.post(url, {"identifier": "(202) 555-0199", "find": "1"}).content.decode()
    assert "Found:" in found and PHONE not in found.replace(f'value="{PHONE}"', "")
    no_reason = client.post(url, {"identifier": "(202) 555-0199", "recover": "1"})
    assert "Give a reason" in no_reason.content.decode()
    response = client.post(
        url, {"identifier": "2025550199", "reason": "Customer asked to rejoin", "recover": "1"}
    )
    assert response.status_code == 302
    persona.refresh_from_db()
    assert not persona.hidden and not BlocklistEntry.objects.exists()
    record = BlocklistRecovery.objects.get()
    assert record.removed_by == support and record.personas_unhidden == 1
    staff = Client()
    staff.force_login(make_user("Staff"))
    assert staff.get(reverse("personas:detail", args=[persona.pk])).status_code == 200


def test_recovery_keeps_an_erased_persona_erased_but_lets_the_customer_sign_up_again():
    persona = _customer()
    privacy.erase(persona, actor=Actor.system(), via=ErasureRequest.Via.STAFF)
    support = make_user(None)
    with pytest.raises(BlockedIdentifierError):
        changes.create(Changeset(fields={"phone": PHONE}), Actor.customer("signup"))
    privacy.recover(PHONE, user=support, reason="rejoin")
    assert Persona.objects.get(pk=persona.pk).status == "erased"
    assert changes.create(Changeset(fields={"phone": PHONE}), Actor.customer("signup")).persona.pk
