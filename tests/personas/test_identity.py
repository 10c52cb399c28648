"""Identity you can trust (issue: nothing public attaches an identifier without proof, and
identifiers that cannot identify never match).

``test_example_*`` are the cases found by trying the product; the property at the end is an
attacker who knows a victim's phone and email but cannot read their codes.
"""

from __future__ import annotations

import io
import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from imports import pipeline, services
from imports.models import ImportIssue, ImportJob
from personas.messaging.backends import LocmemBackend
from personas.models import (
    ContactConsent,
    Persona,
    PersonaStatus,
    PossibleDuplicate,
    SignupForm,
)
from personas.normalize import PlaceholderIdentifier, normalize_email, normalize_phone
from personas.services import changes, merge
from personas.services.changes import Actor, Changeset
from tests.conftest import make_user
from tests.personas.factories import PersonaFactory, PurchaseFactory, SignupFormFactory

pytestmark = pytest.mark.django_db

VICTIM_PHONE = "+12025550161"
VICTIM_EMAIL = "victim@example.com"
ATTACKER_EMAIL = "attacker@example.net"


def _staff() -> Actor:
    return Actor.staff(make_user("Operator"))


def _import(text: str) -> ImportJob:
    job = services.upload(io.BytesIO(text.encode()), name="customers.csv", user=None)
    job.status = ImportJob.Status.PREVIEWED
    job.save()
    return pipeline.run(job.pk)


def _victim(**kw) -> Persona:
    persona = PersonaFactory(
        phone=VICTIM_PHONE, email=None, first_name="Vera", last_name="Quill", points_balance=880
    )
    PurchaseFactory(persona=persona)
    for key, value in kw.items():
        setattr(persona, key, value)
    persona.save()
    return persona


def _email_code(c: Client, url_start: str, url_verify: str, email: str) -> None:
    c.post(reverse(url_start), {"identifier": email})
    code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)
    c.post(reverse(url_verify), {"email": code})


# ---------------------------------------------------------------------------------------------
# Example 1: account takeover through a public signup form


def test_example_1_a_public_signup_cannot_attach_an_email_to_an_existing_customer():
    victim = _victim()
    SignupFormFactory(slug="web", fields_asked=["first_name", "email", "phone"])
    attacker = Client()
    response = attacker.post(
        reverse("customers:signup", args=["web"]),
        {"first_name": "Mallory", "phone": "202-555-0161", "email": ATTACKER_EMAIL},
    )
    assert response.status_code == 302
    victim.refresh_from_db()
    assert victim.email is None and victim.first_name == "Vera"
    # The attacker's email made a separate persona, flagged for staff.
    other = Persona.objects.get(email=ATTACKER_EMAIL)
    assert other.phone is None and other.points_balance == 0
    assert PossibleDuplicate.objects.filter(persona__in=[victim, other]).exists()
    pairs = {(c.a.pk, c.b.pk) for c in merge.duplicate_candidates()}
    assert tuple(sorted((victim.pk, other.pk))) in pairs
    # Signing in to the wallet with that email shows nothing of the victim.
    _email_code(attacker, "customers:wallet_start", "customers:wallet_verify", ATTACKER_EMAIL)
    page = attacker.get(reverse("customers:wallet")).content.decode()
    assert "Vera" not in page and "880" not in page
    # The data controls with that email erase only what that email holds.
    _email_code(
        attacker, "customers:data_controls", "customers:data_controls_verify", ATTACKER_EMAIL
    )
    victim.refresh_from_db()
    assert victim.status == PersonaStatus.ACTIVE and victim.first_name == "Vera"
    assert victim.points_balance == 880


# ---------------------------------------------------------------------------------------------
# Examples 2 and 3: identifiers that cannot identify never match; invisible characters


def test_example_2_a_placeholder_phone_identifies_nobody_in_an_import():
    job = _import(
        "First Name,Mobile,E-mail\n"
        "Ann,000-000-0000,ann@example.com\n"
        "Bo,000-000-0000,bo@example.com\n"
        "Cy,000-000-0000,cy@example.com\n"
    )
    assert (job.created, job.skipped, job.errors) == (3, 0, 0)
    assert not Persona.objects.exclude(phone=None).exists()
    warnings = ImportIssue.objects.filter(job=job, outcome="warning")
    assert warnings.count() == 3 and "identifies nobody" in warnings.first().reason
    later = _import("First Name,Mobile,E-mail\nDee,000-000-0000,dee@example.com\n")
    assert later.created == 1
    assert Persona.objects.get(email="dee@example.com").first_name == "Dee"
    assert Persona.objects.get(email="ann@example.com").first_name == "Ann"


@pytest.mark.parametrize(
    "raw",
    [
        "000-000-0000",
        "111-111-1111",
        "(999) 999-9999",
        "123-456-7890",
        "+1 234 567 8901",
        "987-654-3210",
        "0000000000",
    ],
)
def test_placeholder_phones_are_refused_as_identifiers(raw):
    with pytest.raises(PlaceholderIdentifier):
        normalize_phone(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("555-0198", "add the area code"),
        ("(555) 123-4567", "not a real phone number"),
        ("202-155-0198", "not a real phone number"),
        ("12", "add the area code"),
    ],
)
def test_numbers_that_are_not_real_say_why(raw, message):
    with pytest.raises(Exception, match=message):
        normalize_phone(raw)


@pytest.mark.parametrize(
    "raw", ["none@example.com", "NoEmail@shop.com", "test@example.org", "n/a@x.com"]
)
def test_placeholder_emails_are_refused_as_identifiers(raw):
    with pytest.raises(PlaceholderIdentifier):
        normalize_email(raw)


def test_the_mutation_path_keeps_the_customer_without_a_placeholder_and_warns():
    result = changes.create(
        Changeset(
            fields={"first_name": "Pat", "phone": "000-000-0000", "email": "pat@example.com"}
        ),
        _staff(),
    )
    assert result.persona.phone is None and result.persona.email == "pat@example.com"
    assert result.warnings and "identifies nobody" in result.warnings[0]


@pytest.mark.parametrize(
    "char", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u202e", "\u2066"]
)
def test_example_3_invisible_characters_never_make_a_second_profile(char):
    existing = changes.create(
        Changeset(fields={"email": "dana@example.com", "first_name": "Dana"}), _staff()
    ).persona
    assert normalize_email(f"dana@example.com{char}") == "dana@example.com"
    assert normalize_email(f"da{char}na@example.com") == "dana@example.com"
    job = _import(f"First Name,E-mail\nDana,dana@example.com{char}\n")
    assert job.created == 0 and Persona.objects.count() == 1
    with pytest.raises(changes.DuplicatePersonaError):
        changes.create(Changeset(fields={"email": f"{char}dana@example.com"}), _staff())
    assert existing.email == "dana@example.com"


def test_names_lose_edge_format_characters_and_bidi_overrides():
    persona = changes.create(
        Changeset(fields={"first_name": "\u200bAl\u202eex\u200b", "email": "al@example.com"}),
        _staff(),
    ).persona
    assert persona.first_name == "Alex"


# ---------------------------------------------------------------------------------------------
# Example 4: identifiers of a merged-away persona resolve to the survivor


def test_example_4_importing_a_merged_personas_identifiers_lands_on_the_survivor():
    a = changes.create(
        Changeset(fields={"first_name": "Ann", "email": "ann@example.com"}), _staff()
    ).persona
    b = changes.create(
        Changeset(
            fields={"first_name": "Anne", "email": "anne@example.com", "phone": "+12025550171"}
        ),
        _staff(),
    ).persona
    merge.merge(a.pk, b.pk, actor=_staff())  # A keeps its email; takes B's phone (A had none)
    a.refresh_from_db()
    changes.apply(a, Changeset(fields={"phone": "+12025550172"}), _staff())
    job = _import("First Name,Mobile,E-mail\nAnne,(202) 555-0171,anne@example.com\n")
    assert job.created == 0 and job.errors == 0
    assert Persona.objects.filter(status=PersonaStatus.ACTIVE).count() == 1


def test_example_4_possible_duplicates_lists_a_persona_holding_a_merged_personas_identifier():
    a = changes.create(Changeset(fields={"email": "ann@example.com"}), _staff()).persona
    b = changes.create(Changeset(fields={"email": "anne@example.com"}), _staff()).persona
    merge.merge(a.pk, b.pk, actor=_staff())
    c = PersonaFactory(email="anne@example.com", phone=None)  # e.g. created before the fix
    pairs = {(x.a.pk, x.b.pk): x.reason for x in merge.duplicate_candidates()}
    key = tuple(sorted((a.pk, c.pk)))
    assert key in pairs and "merged into this one" in pairs[key]


def test_signup_wallet_and_flows_resolve_a_merged_identifier_to_the_survivor():
    from personas.services.identity import customer_for

    a = changes.create(Changeset(fields={"email": "ann@example.com"}), _staff()).persona
    b = changes.create(Changeset(fields={"phone": "+12025550173"}), _staff()).persona
    c = changes.create(Changeset(fields={"phone": "+12025550174"}), _staff()).persona
    merge.merge(b.pk, c.pk, actor=_staff())
    merge.merge(a.pk, b.pk, actor=_staff(), choices={"phone": "survivor"})
    assert customer_for(phone="+12025550174") == a  # a chain: C → B → A
    SignupFormFactory(slug="web")
    Client().post(reverse("customers:signup", args=["web"]), {"phone": "202-555-0174"})
    assert Persona.objects.filter(status=PersonaStatus.ACTIVE).count() == 1


# ---------------------------------------------------------------------------------------------
# The property: an attacker who knows the victim's phone and email but cannot read their
# codes never sees any of the victim's data and changes nothing of the victim.

attacker_steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("signup"),
            st.sampled_from(["victim_phone", "victim_email", "both", "attacker"]),
            st.booleans(),  # with the attacker's own email too
            st.booleans(),  # ticks the opt-ins
        ),
        st.tuples(st.just("wallet"), st.sampled_from(["victim_phone", "victim_email", "attacker"])),
        st.tuples(
            st.just("privacy"), st.sampled_from(["victim_phone", "victim_email", "attacker"])
        ),
        st.tuples(st.just("wallet_consent"), st.sampled_from(["text", "email", "push"])),
    ),
    min_size=1,
    max_size=6,
)

_IDENT = {
    "victim_phone": "202-555-0161",
    "victim_email": VICTIM_EMAIL,
    "attacker": ATTACKER_EMAIL,
}


def _snapshot(persona: Persona) -> tuple:
    persona.refresh_from_db()
    return (
        persona.first_name,
        persona.last_name,
        persona.email,
        persona.phone,
        persona.points_balance,
        persona.status,
        persona.text_consent,
        persona.email_consent,
        persona.push_consent,
        persona.favorite_store_id,
        persona.attributes,
    )


@hsettings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=attacker_steps)
def test_an_attacker_without_the_victims_codes_never_sees_or_changes_the_victim(steps):
    from django.core.cache import cache

    cache.clear()
    Persona.objects.all().delete()
    SignupForm.objects.all().delete()
    ContactConsent.objects.all().delete()
    mail.outbox.clear()
    LocmemBackend.outbox.clear()
    victim = _victim(email=VICTIM_EMAIL, text_consent="never")
    before = _snapshot(victim)
    SignupFormFactory(slug="web", fields_asked=["first_name", "email", "phone"])
    attacker = Client()
    seen: list[str] = []
    for step in steps:
        kind = step[0]
        if kind == "signup":
            _, who, own_email, ticks = step
            data = {"first_name": "Mallory"}
            if who in ("victim_phone", "both"):
                data["phone"] = _IDENT["victim_phone"]
            if who in ("victim_email", "both"):
                data["email"] = VICTIM_EMAIL
            if who == "attacker" or (own_email and "email" not in data):
                data["email"] = ATTACKER_EMAIL
            if ticks:
                data.update(email_opt_in="on", text_opt_in="on")
            seen.append(
                attacker.post(reverse("customers:signup", args=["web"]), data).content.decode()
            )
        elif kind in ("wallet", "privacy"):
            start, verify = (
                ("customers:wallet_start", "customers:wallet_verify")
                if kind == "wallet"
                else ("customers:data_controls", "customers:data_controls_verify")
            )
            seen.append(
                attacker.post(reverse(start), {"identifier": _IDENT[step[1]]}).content.decode()
            )
            # The attacker reads only codes sent to their own email.
            own = [m for m in mail.outbox if ATTACKER_EMAIL in m.to]
            if step[1] == "attacker" and own:
                code = re.search(r"\b(\d{6})\b", own[-1].body).group(1)
            else:
                code = "000000"
            field = "email" if "@" in _IDENT[step[1]] else "phone"
            seen.append(attacker.post(reverse(verify), {field: code}, follow=True).content.decode())
            if kind == "wallet":
                seen.append(attacker.get(reverse("customers:wallet")).content.decode())
        else:
            seen.append(
                attacker.post(
                    reverse("customers:wallet_consent", args=[step[1]]),
                    {"value": "on"},
                    follow=True,
                ).content.decode()
            )
    after = _snapshot(victim)
    # Consent requests the victim's own addresses must confirm (a YES, a link) are allowed:
    # compare everything else, and the consents only as "not opted in by the attacker".
    assert after[:6] == before[:6] and after[9:] == before[9:]
    assert after[6] in ("never", "pending") and after[7] in ("never", "pending")
    assert after[8] == before[8]
    for page in seen:
        assert "Vera" not in page and "Quill" not in page
        # The balance as a number of its own (a CSRF token may hold the digits by chance).
        assert not re.search(r"(?<![A-Za-z0-9])880(?![A-Za-z0-9])", page)


# ---------------------------------------------------------------------------------------------
# Extensions


def test_a_phone_extension_is_kept_and_is_its_own_identifier():
    a = changes.create(
        Changeset(fields={"first_name": "Desk", "phone": "(202) 555-0180 ext. 12"}), _staff()
    ).persona
    assert (a.phone, a.phone_ext, a.phone_display) == (
        "+12025550180",
        "12",
        "(202) 555-0180 ext. 12",
    )
    # Another extension of the same line is another person.
    b = changes.create(
        Changeset(fields={"first_name": "Other", "phone": "202-555-0180 x13"}), _staff()
    ).persona
    assert b.phone_ext == "13"
    with pytest.raises(changes.DuplicatePersonaError):
        changes.create(Changeset(fields={"phone": "+1 202 555 0180;ext=12"}), _staff())
    job = _import("First Name,Mobile\nDesk,(202) 555-0180 ext. 12\nThird,(202) 555-0180 ext. 14\n")
    assert (job.unchanged, job.created) == (1, 1)
    assert Persona.objects.get(phone_ext="14").first_name == "Third"


def test_the_export_has_the_extension(client):
    changes.create(Changeset(fields={"phone": "(202) 555-0180 ext. 12"}), _staff())
    client.force_login(make_user("Manager"))
    body = b"".join(client.get(reverse("personas:export")).streaming_content).decode()
    assert "phone_extension" in body.splitlines()[0] and ",12," in body


def test_an_identifier_that_comes_with_different_people_in_one_file_is_reported():
    job = _import(
        "First Name,Last Name,Mobile\n"
        "Ann,Lee,(202) 555-0190\n"
        "Bo,Park,(202) 555-0190\n"
        "Ann,Lee,(202) 555-0190\n"
    )
    reasons = dict(ImportIssue.objects.filter(job=job).values_list("line", "reason"))
    assert "different person on line 2" in reasons[3] and "placeholder" in reasons[3]
    assert "Same customer as line 2" in reasons[4]
    assert (job.created, job.errors, job.skipped) == (1, 1, 1)


# ---------------------------------------------------------------------------------------------
# Example 6: one visibility rule, in the Django admin too


def test_example_6_admin_hides_a_blocklisted_customers_rows_from_a_superuser_outside_privacy():
    from personas import messaging
    from personas.models import AuditEvent, BlocklistEntry, OutboundMessage
    from personas.services.privacy import Identifier, blocklist

    persona = changes.create(
        Changeset(fields={"first_name": "Hidden", "last_name": "Person", "phone": VICTIM_PHONE}),
        _staff(),
    ).persona
    messaging.queue_text(persona, channel="text", body="hello")
    blocklist([Identifier("phone", VICTIM_PHONE)], reason=BlocklistEntry.Reason.CUSTOMER_REQUEST)
    persona.refresh_from_db()
    assert persona.hidden
    event = AuditEvent.objects.filter(persona=persona).first()
    message = OutboundMessage.objects.get(persona=persona)
    superuser = make_user(None, is_staff=True, is_superuser=True)
    c = Client()
    c.force_login(superuser)
    for model in ("auditevent", "outboundmessage", "consentchange", "pointsentry", "persona"):
        page = c.get(reverse(f"admin:personas_{model}_changelist")).content.decode()
        assert "Hidden" not in page and "555-0161" not in page and "5550161" not in page
    for url in (
        reverse("admin:personas_auditevent_change", args=[event.pk]),
        reverse("admin:personas_outboundmessage_change", args=[message.pk]),
        reverse("admin:personas_persona_change", args=[persona.pk]),
    ):
        response = c.get(url, follow=True)
        assert "Hidden" not in response.content.decode()
    # The privacy/support group still sees them.
    privacy_user = make_user(None, is_staff=True, is_superuser=True)
    from django.contrib.auth.models import Group

    from personas.roles import PRIVACY_GROUP

    privacy_user.groups.add(Group.objects.get_or_create(name=PRIVACY_GROUP)[0])
    c.force_login(privacy_user)
    page = c.get(reverse("admin:personas_auditevent_change", args=[event.pk])).content.decode()
    assert "Hidden" in page


# ---------------------------------------------------------------------------------------------
# Example 5: write actions on a merged-away persona are refused


def test_example_5_writes_to_a_merged_away_persona_are_refused():
    from flows import services as flow_services
    from flows.models import Flow
    from personas.models import NotDuplicate, PointsEntry

    survivor = changes.create(Changeset(fields={"first_name": "Sur"}), _staff()).persona
    merged = changes.create(
        Changeset(fields={"first_name": "Gone", "phone": "+12025550166"}), _staff()
    ).persona
    merge.merge(survivor.pk, merged.pk, actor=_staff())
    third = changes.create(Changeset(fields={"first_name": "Third"}), _staff()).persona
    flow = Flow.objects.create(
        name="Welcome",
        definition={
            "initial_state": "w",
            "states": [{"name": "w", "type": "wait", "properties": {"amount": 1}}],
        },
        trigger={"type": "manual"},
    )
    flow_services.publish(flow, user=None)
    c = Client()
    c.force_login(make_user("Owner"))
    before = list(PointsEntry.objects.filter(persona=merged).values_list("id", flat=True))
    posts = [
        (reverse("personas:points_adjust", args=[merged.pk]), {"points": 50, "reason": "x"}),
        (reverse("personas:consent", args=[merged.pk, "email"]), {"value": "on"}),
        (reverse("personas:consent", args=[merged.pk, "text"]), {"value": "off"}),
        (reverse("personas:not_duplicate"), {"a": merged.pk, "b": third.pk}),
        (reverse("flows:enroll_persona", args=[merged.pk]), {"flow": flow.pk}),
    ]
    for url, data in posts:
        page = c.post(url, data, follow=True).content.decode()
        assert "merged into persona" in page or "merged away" in page or "not active" in page, url
    merged.refresh_from_db()
    assert merged.points_balance == 0 and merged.email_consent == "never"
    assert merged.text_consent == "never"
    assert list(PointsEntry.objects.filter(persona=merged).values_list("id", flat=True)) == before
    assert not NotDuplicate.objects.exists()
    assert not merged.flow_runs.exists()


def test_data_controls_with_a_merged_away_personas_email_erase_the_survivor():
    from personas.services.privacy import Identifier, erase_by_identifiers

    a = changes.create(Changeset(fields={"email": "ann@example.com"}), _staff()).persona
    b = changes.create(Changeset(fields={"email": "anne@example.com"}), _staff()).persona
    merge.merge(a.pk, b.pk, actor=_staff())
    other = changes.create(Changeset(fields={"email": "zed@example.com"}), _staff()).persona
    erase_by_identifiers([Identifier("email", "anne@example.com")], via="public_page")
    a.refresh_from_db()
    other.refresh_from_db()
    assert a.status == PersonaStatus.ERASED and other.status == PersonaStatus.ACTIVE


def test_staff_search_for_a_merged_personas_identifier_finds_the_survivor(client):
    a = changes.create(
        Changeset(fields={"first_name": "Kept", "email": "ann@example.com"}), _staff()
    ).persona
    b = changes.create(
        Changeset(
            fields={"first_name": "Gone", "email": "anne@example.com", "phone": "+12025550177"}
        ),
        _staff(),
    ).persona
    merge.merge(a.pk, b.pk, actor=_staff(), choices={"phone": "survivor"})
    changes.apply(a, Changeset(fields={"phone": "+12025550178"}), _staff())
    client.force_login(make_user("Staff"))
    for q in ("anne@example.com\u200b", "(202) 555-0177"):
        page = client.get(reverse("personas:list"), {"q": q}, follow=True).content.decode()
        assert "Kept" in page, q
