"""Consent belongs to the phone number and the email address (issue: consent per address).

The ``test_example_*`` tests are the cases found by trying the product; the others pin each
rule of ``personas.services.consent`` with a table.
"""

from __future__ import annotations

import io
import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from personas import messaging
from personas.messaging.backends import LocmemBackend
from personas.models import ConsentChange, ContactConsent, OutboundMessage, Persona
from personas.services import changes, consent, inbound, merge
from personas.services.changes import Actor, ChangeError, Changeset, ConsentAction, ConsentOp
from tests.conftest import make_user
from tests.personas.factories import PersonaFactory

pytestmark = pytest.mark.django_db

A_PHONE = "+12025550197"
B_PHONE = "+12025550198"


@pytest.fixture(autouse=True)
def _no_quiet_hours(settings):
    settings.PERSONAS_QUIET_HOURS = None
    LocmemBackend.outbox.clear()


def _staff() -> Actor:
    return Actor.staff(make_user("Operator"))


def _reply(body: str, phone: str, sid: list[int] = [0]) -> inbound.InboundResult:  # noqa: B006
    sid[0] += 1
    return inbound.handle(message_sid=f"SMtest{sid[0]}", from_=phone, body=body)


def _confirmed(phone: str, **kw) -> Persona:
    """A persona whose number said YES to a double opt-in (the real way to be opted in)."""
    persona = changes.create(Changeset(fields={"phone": phone, **kw}), _staff()).persona
    changes.apply(persona, Changeset(consents=[ConsentOp("text", ConsentAction.OPT_IN)]), _staff())
    assert _reply("YES", phone).outcome == "confirmed"
    persona.refresh_from_db()
    assert persona.text_consent == "opted_in"
    return persona


def _send_marketing(persona: Persona) -> str:
    message = messaging.queue_text(persona, channel="text", body="20% off today")
    return messaging.deliver(message.pk)


# ---------------------------------------------------------------------------------------------
# The examples from the issue


def test_example_1_merge_never_moves_text_consent_onto_a_number_that_never_agreed():
    a = changes.create(Changeset(fields={"phone": A_PHONE, "first_name": "A"}), _staff()).persona
    b = _confirmed(B_PHONE, first_name="B")
    merge.merge(a.pk, b.pk, actor=_staff())  # A keeps its own phone
    a.refresh_from_db()
    assert a.phone == A_PHONE and a.text_consent == "never"
    assert _send_marketing(a) == OutboundMessage.Status.SUPPRESSED
    assert LocmemBackend.outbox == []


def test_example_1_choosing_the_other_phone_in_a_merge_brings_that_phones_consent():
    a = changes.create(Changeset(fields={"phone": A_PHONE}), _staff()).persona
    b = _confirmed(B_PHONE)
    merge.merge(a.pk, b.pk, actor=_staff(), choices={"phone": "merged"})
    a.refresh_from_db()
    assert a.phone == B_PHONE and a.text_consent == "opted_in"


def test_example_2_stop_to_an_archived_persona_holds_after_unarchive():
    persona = _confirmed(A_PHONE)
    changes.apply(persona, Changeset(status=("archived", "moved away")), _staff())
    assert _reply("STOP", A_PHONE).outcome == "opted_out"
    changes.apply(persona, Changeset(status=("active", "")), _staff())
    persona.refresh_from_db()
    assert persona.status == "active" and persona.text_consent == "opted_out"
    assert _send_marketing(persona) == OutboundMessage.Status.SUPPRESSED


@pytest.mark.parametrize("body", ["Stop.", "REVOKE", "stop please", "Unsubscribe!!", "ＳＴＯＰ"])
def test_example_3_stop_as_people_write_it_opts_out_and_is_confirmed(body):
    persona = _confirmed(A_PHONE)
    result = _reply(body, A_PHONE)
    persona.refresh_from_db()
    assert result.outcome == "opted_out" and "unsubscribed" in result.reply
    assert persona.text_consent == "opted_out"


@pytest.mark.parametrize("body", ["Yes!", "yes please", "Yep", "Y", "yes 👍"])
def test_example_4_yes_as_people_write_it_confirms_a_pending_double_opt_in(body):
    persona = changes.create(Changeset(fields={"phone": A_PHONE}), _staff()).persona
    changes.apply(persona, Changeset(consents=[ConsentOp("text", ConsentAction.OPT_IN)]), _staff())
    result = _reply(body, A_PHONE)
    persona.refresh_from_db()
    assert result.outcome == "confirmed" and "subscribed" in result.reply
    assert persona.text_consent == "opted_in"


def test_example_4_any_other_reply_to_a_pending_request_gets_one_answer():
    persona = changes.create(Changeset(fields={"phone": A_PHONE}), _staff()).persona
    changes.apply(persona, Changeset(consents=[ConsentOp("text", ConsentAction.OPT_IN)]), _staff())
    first = _reply("what is this?", A_PHONE)
    second = _reply("hello?", A_PHONE)
    assert first.outcome == "reminded" and "Reply YES to confirm or STOP" in first.reply
    assert second.outcome == "ignored" and second.reply == ""


def test_example_5_wallet_signed_in_by_email_turns_text_on_as_a_double_opt_in():
    persona = PersonaFactory(phone=A_PHONE, email="sam@example.com")
    c = Client()
    c.post(reverse("customers:wallet_start"), {"identifier": "sam@example.com"})
    code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)
    c.post(reverse("customers:wallet_verify"), {"email": code})
    page = c.post(reverse("customers:wallet_consent", args=["text"]), {"value": "on"}, follow=True)
    persona.refresh_from_db()
    assert persona.text_consent == "pending"
    assert "Reply YES" in page.content.decode()
    assert OutboundMessage.objects.filter(persona=persona, template="double_opt_in").exists()


def test_example_5_wallet_signed_in_by_a_code_to_the_phone_turns_text_on_at_once():
    persona = PersonaFactory(phone=A_PHONE)
    c = Client()
    c.post(reverse("customers:wallet_start"), {"identifier": A_PHONE})
    code = re.search(r"\b(\d{6})\b", LocmemBackend.outbox[-1]["body"]).group(1)
    c.post(reverse("customers:wallet_verify"), {"phone": code})
    c.post(reverse("customers:wallet_consent", args=["text"]), {"value": "on"})
    persona.refresh_from_db()
    assert persona.text_consent == "opted_in"


# ---------------------------------------------------------------------------------------------
# The rules, kind by kind


def test_a_new_phone_starts_from_that_numbers_own_record_and_never_takes_the_old_one():
    persona = _confirmed(A_PHONE)
    changes.apply(persona, Changeset(fields={"phone": B_PHONE}), _staff())
    persona.refresh_from_db()
    assert persona.text_consent == "never"
    changes.apply(persona, Changeset(fields={"phone": A_PHONE}), _staff())
    persona.refresh_from_db()
    assert persona.text_consent == "opted_in"  # the number's own consent, kept meanwhile


@pytest.mark.parametrize(
    "holder",
    ["active", "archived", "merged", "erased", "nobody"],
)
def test_stop_is_kept_whatever_holds_the_number_and_the_next_holder_starts_opted_out(holder):
    from personas.services import privacy

    if holder != "nobody":
        persona = _confirmed(A_PHONE)
        if holder == "archived":
            changes.apply(persona, Changeset(status=("archived", "")), _staff())
        elif holder == "merged":
            survivor = changes.create(Changeset(fields={"first_name": "S"}), _staff()).persona
            merge.merge(survivor.pk, persona.pk, actor=_staff())
        elif holder == "erased":
            privacy.erase(persona, actor=_staff(), via="staff")
    _reply("stop", A_PHONE)
    record = ContactConsent.objects.get(
        channel="text", digest=consent.address_digest("text", A_PHONE)
    )
    assert record.state == "opted_out" and record.customer_choice == "opted_out"
    if holder == "erased":
        return  # an erased number is blocklisted: nobody can hold it again
    for p in Persona.objects.filter(phone=A_PHONE):
        assert p.text_consent == "opted_out"
    if holder in ("archived", "merged"):
        return  # the number still belongs to that persona
    Persona.objects.filter(phone=A_PHONE).delete()  # e.g. hard-deleted: the record stays
    new = changes.create(Changeset(fields={"phone": A_PHONE}), _staff()).persona
    assert new.text_consent == "opted_out"


@pytest.mark.parametrize(
    "actor",
    [
        Actor("user", None, "Operator"),
        Actor.import_row(3, 7),
        Actor.flow_step("Welcome", 1, "opt_in"),
    ],
    ids=["staff", "import", "flow"],
)
def test_only_the_customer_can_undo_their_own_opt_out(actor):
    persona = _confirmed(A_PHONE)
    _reply("STOP", A_PHONE)
    with pytest.raises(ChangeError, match="Only the customer can opt back in"):
        changes.apply(persona, Changeset(consents=[ConsentOp("text", ConsentAction.OPT_IN)]), actor)
    assert _reply("START", A_PHONE).outcome == "resubscribe"
    assert _reply("yes", A_PHONE).outcome == "confirmed"
    persona.refresh_from_db()
    assert persona.text_consent == "opted_in"


def test_a_queued_message_to_a_number_that_opted_out_meanwhile_is_suppressed_and_recorded():
    persona = _confirmed(A_PHONE)
    message = messaging.queue_text(persona, channel="text", body="offer")
    _reply("Stop.", A_PHONE)
    assert messaging.deliver(message.pk) == OutboundMessage.Status.SUPPRESSED
    message.refresh_from_db()
    assert message.status == "suppressed"
    assert all(sent["body"] != "offer" for sent in LocmemBackend.outbox)


def test_every_consent_change_keeps_its_address_and_evidence():
    persona = _confirmed(A_PHONE)
    _reply("STOP", A_PHONE)
    rows = list(ConsentChange.objects.filter(persona=persona, channel="text").order_by("id"))
    digest = consent.address_digest("text", A_PHONE)
    assert [r.after for r in rows] == ["pending", "opted_in", "opted_out"]
    assert all(r.address == digest for r in rows)
    assert rows[1].evidence.startswith("Text reply SMtest")
    assert rows[0].evidence == rows[0].actor_label  # staff: the user is the evidence


def test_a_signup_form_text_opt_in_is_always_a_double_opt_in():
    from personas.services import signup
    from tests.personas.factories import SignupFormFactory

    form = SignupFormFactory()
    persona = signup.submit(
        form, {"phone": A_PHONE, "text_opt_in": True, "email": "", "first_name": "Pat"}
    ).persona
    assert persona.text_consent == "pending"


T = "text"


@pytest.mark.parametrize(
    ("kw", "after", "flags"),
    [
        (dict(action="opt_out", before="opted_in", actor_kind="user"), "opted_out", ""),
        (dict(action="force_opt_out", before="never", actor_kind="flow"), "opted_out", "hard"),
        (dict(action="opt_in", before="never", actor_kind="user"), "pending", "doi"),
        (dict(action="opt_in", before="never", actor_kind="import"), "pending", "doi"),
        (dict(action="opt_in", before="opted_in", actor_kind="user"), "opted_in", ""),
        (dict(action="opt_in", before="never", actor_kind="customer"), "pending", "doi"),
        (
            dict(
                action="opt_in", before="never", actor_kind="customer", proven=frozenset({"email"})
            ),
            "pending",
            "doi",
        ),
        (
            dict(
                action="opt_in", before="never", actor_kind="customer", proven=frozenset({"phone"})
            ),
            "opted_in",
            "",
        ),
        (
            dict(action="request_double_opt_in", before="pending", actor_kind="user"),
            "pending",
            "resend",
        ),
        (dict(action="confirm", before="pending", actor_kind="customer"), "opted_in", ""),
        (dict(action="confirm", before="pending", actor_kind="user"), "pending", "error"),
        (dict(action="expire", before="pending", actor_kind="system"), "never", ""),
        (
            dict(action="adopt", before="never", actor_kind="merge", adopt_state="opted_in"),
            "never",
            "",
        ),
        (
            dict(action="opt_in", before="opted_out", actor_kind="user", customer_opted_out=True),
            "opted_out",
            "error",
        ),
        (
            dict(
                action="opt_in", before="opted_out", actor_kind="customer", customer_opted_out=True
            ),
            "pending",
            "doi",
        ),
        (
            dict(action="opt_in", before="never", actor_kind="user", has_address=False),
            "never",
            "error",
        ),
    ],
)
def test_the_consent_transition_table(kw, after, flags):
    step = consent.transition(channel=T, **kw)
    assert step.after == after
    assert bool(step.error) == (flags == "error")
    assert step.double_opt_in == (flags == "doi")
    assert step.resend == (flags == "resend")
    assert step.hard == (flags == "hard")


@pytest.mark.parametrize(
    ("channel", "actor_kind", "after", "error"),
    [
        ("push", "user", "never", True),
        ("push", "customer", "opted_in", False),
        ("browser", "customer", "opted_in", False),
        ("email", "user", "opted_in", False),
        ("voice", "user", "opted_in", False),
    ],
)
def test_the_transition_for_other_channels(channel, actor_kind, after, error):
    step = consent.transition(
        channel=channel, action="opt_in", before="never", actor_kind=actor_kind
    )
    assert step.after == after and bool(step.error) == error


def test_push_adopt_in_a_merge_still_takes_the_other_devices_state():
    step = consent.transition(
        channel="push", action="adopt", before="never", actor_kind="merge", adopt_state="opted_in"
    )
    assert step.after == "opted_in"


# ---------------------------------------------------------------------------------------------
# Email opt-ins from unproven addresses are confirmed by a link


def _link(body: str) -> str:
    return re.search(r"https?://\S+/email/confirm/\S+/", body).group(0).split("8000", 1)[-1]


def test_a_signup_email_opt_in_is_pending_until_the_link_is_confirmed(settings):
    from personas.services import signup
    from tests.personas.factories import SignupFormFactory

    form = SignupFormFactory()
    persona = signup.submit(form, {"email": "lee@example.com", "email_opt_in": True}).persona
    assert persona.email_consent == "pending"
    message = OutboundMessage.objects.get(persona=persona, template="email_double_opt_in")
    assert messaging.deliver(message.pk) == "sent"
    path = _link(mail.outbox[-1].body)
    c = Client()
    page = c.get(path)
    assert "Yes, email me" in page.content.decode()
    persona.refresh_from_db()
    assert persona.email_consent == "pending"  # opening the link alone changes nothing
    assert "subscribed" in c.post(path).content.decode()
    persona.refresh_from_db()
    assert persona.email_consent == "opted_in"
    row = ConsentChange.objects.filter(persona=persona, channel="email").first()
    assert row.evidence == "Confirmation link sent to the address"
    assert "no longer works" in c.post(path).content.decode()  # used once


def test_an_email_link_does_not_confirm_after_the_address_changed():
    from personas.services import signup
    from tests.personas.factories import SignupFormFactory

    persona = signup.submit(
        SignupFormFactory(), {"email": "lee@example.com", "email_opt_in": True}
    ).persona
    messaging.deliver(OutboundMessage.objects.get(persona=persona).pk)
    path = _link(mail.outbox[-1].body)
    changes.apply(persona, Changeset(fields={"email": "other@example.com"}), _staff())
    assert "no longer works" in Client().post(path).content.decode()
    persona.refresh_from_db()
    assert persona.email_consent == "never"
    assert Client().post("/email/confirm/forged-token/").status_code == 200


def test_a_signup_form_may_take_email_opt_ins_without_a_link():
    from personas.services import signup
    from tests.personas.factories import SignupFormFactory

    form = SignupFormFactory(email_double_opt_in=False)
    persona = signup.submit(form, {"email": "lee@example.com", "email_opt_in": True}).persona
    assert persona.email_consent == "opted_in"


def test_wallet_signed_in_by_phone_turns_email_on_with_a_confirmation_link():
    persona = PersonaFactory(phone=A_PHONE, email="sam@example.com")
    c = Client()
    c.post(reverse("customers:wallet_start"), {"identifier": A_PHONE})
    code = re.search(r"\b(\d{6})\b", LocmemBackend.outbox[-1]["body"]).group(1)
    c.post(reverse("customers:wallet_verify"), {"phone": code})
    c.post(reverse("customers:wallet_consent", args=["email"]), {"value": "on"})
    persona.refresh_from_db()
    assert persona.email_consent == "pending"


def test_demo_data_keeps_every_consent_as_its_addresses_record():
    from django.core.management import call_command

    call_command("seed_demo", personas=60, stdout=io.StringIO())
    for persona in Persona.objects.exclude(status="erased"):
        for channel in ("text", "voice", "email"):
            address = consent.address_of(channel, phone=persona.phone, email=persona.email)
            assert persona.consent(channel) == consent.record_for(channel, address).state
    assert ContactConsent.objects.filter(state="opted_in").exists()


def test_opting_in_again_while_pending_sends_nothing_more():
    persona = changes.create(Changeset(fields={"phone": A_PHONE}), _staff()).persona
    opt_in = Changeset(consents=[ConsentOp("text", ConsentAction.OPT_IN)])
    changes.apply(persona, opt_in, _staff())
    changes.apply(persona, opt_in, _staff())  # a second click: no second text
    assert OutboundMessage.objects.filter(persona=persona, template="double_opt_in").count() == 1


def test_a_pending_text_shows_off_with_resend_and_cancel_and_no_opt_out_question(client):
    persona = changes.create(Changeset(fields={"phone": A_PHONE}), _staff()).persona
    changes.apply(persona, Changeset(consents=[ConsentOp("text", ConsentAction.OPT_IN)]), _staff())
    client.force_login(make_user("Staff"))
    page = client.get(reverse("personas:detail", args=[persona.pk])).content.decode()
    text_row = page[page.index("<strong>Text</strong>") : page.index("<strong>Voice</strong>")]
    assert "Resend double opt-in text" in text_row and "Cancel request" in text_row
    assert "Opt this customer out" not in text_row and 'aria-checked="true"' not in text_row
    assert "Cancel the double opt-in request? Text will be opted out" in text_row
