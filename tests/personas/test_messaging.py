"""Consent and messaging: backends, double opt-in, inbound texts, quiet hours, expiry, signup
form settings and the consent exports. (The customer's own pages: tests/customers/.)"""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from personas import messaging
from personas.messaging.backends import LocmemBackend
from personas.models import (
    AuditEvent,
    ConsentChange,
    ContactConsent,
    InboundMessage,
    OutboundMessage,
    Persona,
)
from personas.services import changes, housekeeping
from personas.services.changes import (
    Actor,
    ChangeError,
    Changeset,
    ConsentAction,
    ConsentOp,
    create,
)
from tests.conftest import make_user
from tests.personas.factories import (
    PersonaFactory,
    StoreFactory,
)

pytestmark = pytest.mark.django_db

PHONE = "+12025550142"


def _pending_persona(**kw):
    persona = PersonaFactory(phone=PHONE, **kw)
    changes.apply(
        persona,
        Changeset(consents=[ConsentOp("text", ConsentAction.OPT_IN)]),
        Actor.staff(make_user("Staff")),
    )
    persona.refresh_from_db()
    return persona


def _post(client, body, sid, from_=PHONE, **headers):
    return client.post(
        reverse("customers:sms_inbound"),
        {"From": from_, "To": "+12025550000", "Body": body, "MessageSid": sid},
        **headers,
    )


# ---------------------------------------------------------------------------------------------
# Outbound


def test_staff_text_opt_in_is_pending_and_the_confirmation_text_goes_out(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        persona = _pending_persona()
    assert persona.text_consent == "pending"
    message = OutboundMessage.objects.get(persona=persona)
    assert message.template == "double_opt_in" and message.transactional
    assert "reply YES" in message.body and "Personas Demo Store" in message.body
    assert message.status == "sent" and LocmemBackend.outbox[-1]["to"] == PHONE


def test_marketing_messages_to_opted_out_channels_are_suppressed_and_recorded():
    persona = PersonaFactory(phone=PHONE, text_consent="opted_in")
    changes.apply(
        persona,
        Changeset(consents=[ConsentOp("text", ConsentAction.FORCE_OPT_OUT)]),
        Actor.flow_step("Flow", 1, "opt_out"),
    )
    message = messaging.queue(
        Persona.objects.get(pk=persona.pk),
        channel="text",
        template="double_opt_in",
        transactional=False,
    )
    assert messaging.deliver(message.pk) == "suppressed"
    message.refresh_from_db()
    assert message.status == "suppressed" and LocmemBackend.outbox == []


def test_a_message_is_never_sent_twice(settings):
    settings.PERSONAS_QUIET_HOURS = None
    persona = PersonaFactory(phone=PHONE, text_consent="opted_in")
    message = OutboundMessage.objects.create(
        persona=persona,
        channel="text",
        template="flow",
        to=PHONE,
        body="hi",
        transactional=False,
    )
    assert messaging.deliver(message.pk) == "sent"
    assert messaging.deliver(message.pk) == "skipped"  # a retry of the same message
    assert len(LocmemBackend.outbox) == 1


def test_quiet_hours_hold_marketing_texts_until_morning_in_the_store_zone(settings):
    settings.PERSONAS_QUIET_HOURS = (21, 8)
    store = StoreFactory(time_zone="America/Los_Angeles")
    persona = PersonaFactory(phone=PHONE, favorite_store=store)
    late = (
        dt.datetime(2026, 11, 20, 23, 30, tzinfo=dt.UTC)
        .astimezone(dt.timezone(dt.timedelta(hours=-8)))
        .replace(hour=22)
    )  # 22:30 in Los Angeles
    wake = messaging.quiet_until(persona, late)
    assert wake.hour == 8 and wake.day == late.day + 1
    noon = late.replace(hour=12)
    assert messaging.quiet_until(persona, noon) is None
    early = late.replace(hour=6)
    assert messaging.quiet_until(persona, early).hour == 8
    assert messaging.quiet_until(persona, early).day == early.day


def test_resending_a_double_opt_in_is_rate_limited():
    persona = _pending_persona()
    with pytest.raises(ChangeError, match="less than 10 minutes"):
        changes.apply(
            persona,
            Changeset(consents=[ConsentOp("text", ConsentAction.REQUEST_DOUBLE_OPT_IN)]),
            Actor.staff(make_user("Staff")),
        )
    OutboundMessage.objects.update(created_at=timezone.now() - dt.timedelta(minutes=11))
    result = changes.apply(
        persona,
        Changeset(consents=[ConsentOp("text", ConsentAction.REQUEST_DOUBLE_OPT_IN)]),
        Actor.staff(make_user("Staff")),
    )
    assert result.changed and OutboundMessage.objects.filter(persona=persona).count() == 2
    assert result.event.changes["consent:text"]["resent"] is True


def test_pending_double_opt_in_expires():
    persona = _pending_persona()
    assert housekeeping.expire_double_opt_ins() == 0
    later = timezone.now() + dt.timedelta(days=31)
    assert housekeeping.expire_double_opt_ins(later) == 1
    persona.refresh_from_db()
    assert persona.text_consent == "never"
    assert ConsentChange.objects.filter(persona=persona, after="never").exists()


# ---------------------------------------------------------------------------------------------
# Inbound texts (through the webhook)


@pytest.mark.parametrize("body", ["YES", "yes", " Y ", "y e s", "Yes\n"])
def test_yes_confirms_a_pending_double_opt_in(client, body):
    persona = _pending_persona()
    response = _post(client, body, "SM1")
    assert response.status_code == 200 and response["Content-Type"] == "text/xml"
    assert "subscribed" in response.content.decode()
    persona.refresh_from_db()
    assert persona.text_consent == "opted_in"
    change = ConsentChange.objects.filter(persona=persona).latest("id")
    assert (change.before, change.after, change.actor_kind) == ("pending", "opted_in", "customer")
    event = AuditEvent.objects.filter(persona=persona).latest("id")
    assert event.actor_kind == "customer" and event.action == "replied YES"


@pytest.mark.parametrize("body", ["STOP", "stopall", "Unsubscribe", "CANCEL", "end", "QUIT"])
def test_stop_keywords_opt_out_at_once_even_when_pending(client, body):
    persona = _pending_persona()
    _post(client, body, "SM2")
    persona.refresh_from_db()
    assert persona.text_consent == "opted_out"
    assert ConsentChange.objects.filter(persona=persona, after="opted_out", hard=True).exists()


@pytest.mark.parametrize("body", ["START", "unstop"])
def test_start_becomes_a_new_double_opt_in(client, body):
    persona = PersonaFactory(phone=PHONE, text_consent="opted_out")
    _post(client, body, "SM3")
    persona.refresh_from_db()
    assert persona.text_consent == "pending"  # not an instant opt-in
    assert OutboundMessage.objects.filter(persona=persona, template="double_opt_in").exists()


def test_help_answers_with_the_help_text_and_changes_nothing(client):
    persona = _pending_persona()
    response = _post(client, "help", "SM4")
    assert "Reply STOP" in response.content.decode()
    persona.refresh_from_db()
    assert persona.text_consent == "pending"


def test_a_stop_from_an_unknown_number_keeps_only_a_suppression_entry(client):
    response = _post(client, "STOP", "SM5", from_="+12025559999")
    assert response.status_code == 200
    inbound = InboundMessage.objects.get()
    assert inbound.outcome == "opted_out" and inbound.from_number == "" and inbound.body == ""
    record = ContactConsent.objects.get()
    assert record.state == "opted_out" and "2025559999" not in record.digest
    # Whoever gets the number later starts opted out.
    persona = create(Changeset(fields={"phone": "+12025559999"}), Actor.system()).persona
    assert persona.text_consent == "opted_out"


def test_other_texts_from_unknown_numbers_change_nothing_and_keep_no_number(client):
    _post(client, "hello there", "SM5", from_="+12025559999")
    inbound = InboundMessage.objects.get()
    assert inbound.outcome == "unknown" and inbound.from_number == "" and inbound.body == ""
    assert not ContactConsent.objects.exists()


def test_the_same_webhook_delivered_twice_is_applied_once(client):
    persona = _pending_persona()
    _post(client, "YES", "SM6")
    _post(client, "STOP", "SM7")
    _post(client, "YES", "SM6")  # provider retry of the first message
    persona.refresh_from_db()
    assert persona.text_consent == "opted_out"
    assert InboundMessage.objects.count() == 2


# ---------------------------------------------------------------------------------------------
# Signup form settings


def test_settings_signup_forms_need_the_settings_capability(client):
    client.force_login(make_user("Marketing"))
    assert client.get(reverse("personas:signup_forms")).status_code == 403
    client.force_login(make_user("Operator"))
    response = client.post(
        reverse("personas:signup_form_new"),
        {
            "name": "Tablet",
            "slug": "tablet",
            "fields_asked": ["first_name", "email"],
            "enrolls_loyalty": "on",
            "ask_text_opt_in": "on",
            "email_double_opt_in": "on",
            "consent_text": "Reply STOP to cancel.",
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    assert Client().get(reverse("customers:signup", args=["tablet"])).status_code == 200


# ---------------------------------------------------------------------------------------------
# Exports


def test_consent_history_export_and_personas_export_with_consent_columns(client):
    persona = _pending_persona(first_name="=cmd()")
    client.force_login(make_user("Analyst"))
    response = client.get(reverse("personas:consent_export", args=[persona.pk]))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0][:4] == ["when", "channel", "before", "after"]
    assert rows[1][1:4] == ["text", "never", "pending"]
    response = client.get(reverse("personas:export"))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0][-5:] == [
        "text_consent",
        "email_consent",
        "voice_consent",
        "push_consent",
        "browser_consent",
    ]
    assert rows[1][1] == "'=cmd()" and rows[1][-5] == "pending"
    client.force_login(make_user("Staff"))
    assert client.get(reverse("personas:export")).status_code == 403


def test_exports_never_include_hidden_personas(client):
    PersonaFactory(first_name="Visible")
    PersonaFactory(first_name="Hidden", hidden=True)
    client.force_login(make_user("Owner"))
    body = b"".join(client.get(reverse("personas:export")).streaming_content).decode()
    assert "Visible" in body and "Hidden" not in body
