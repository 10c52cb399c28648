"""Consent and messaging: backends, double opt-in, the SMS webhook, quiet hours, expiry,
signup forms, the wallet and the consent exports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from twilio.request_validator import RequestValidator

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
    PurchaseFactory,
    SignupFormFactory,
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
        reverse("personas:sms_inbound"),
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
# Inbound webhook


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


def test_twilio_signature_is_required_when_twilio_is_on(client, settings):
    settings.SMS_BACKEND = "personas.messaging.backends.TwilioBackend"
    settings.SMS_VERIFY_SIGNATURES = True
    settings.TWILIO_AUTH_TOKEN = "test-token-123"
    persona = _pending_persona()
    assert _post(client, "STOP", "SM8").status_code == 403
    assert _post(client, "STOP", "SM8", HTTP_X_TWILIO_SIGNATURE="bad").status_code == 403
    persona.refresh_from_db()
    assert persona.text_consent == "pending" and not InboundMessage.objects.exists()
    params = {"From": PHONE, "To": "+12025550000", "Body": "STOP", "MessageSid": "SM8"}
    url = "http://testserver" + reverse("personas:sms_inbound")
    signature = RequestValidator("test-token-123").compute_signature(url, params)
    response = _post(client, "STOP", "SM8", HTTP_X_TWILIO_SIGNATURE=signature)
    assert response.status_code == 200
    persona.refresh_from_db()
    assert persona.text_consent == "opted_out"


def test_webhook_refuses_a_post_without_a_message_id(client):
    response = client.post(reverse("personas:sms_inbound"), {"From": PHONE, "Body": "YES"})
    assert response.status_code == 400


# ---------------------------------------------------------------------------------------------
# Signup forms


def test_public_signup_creates_a_persona_with_the_form_as_source_and_store_precedence():
    store = StoreFactory(name="Harbor")
    form = SignupFormFactory(
        slug="harbor",
        store=store,
        fields_asked=["first_name", "last_name", "email", "favorite_store"],
    )
    c = Client()
    response = c.post(
        reverse("personas:signup", args=["harbor"]),
        {
            "first_name": "Mara",
            "last_name": "Vale",
            "phone": "(202) 555-0142",
            "email": "Mara@Example.com",
            "email_opt_in": "on",
            "text_opt_in": "on",
        },
    )
    assert response.status_code == 302
    persona = Persona.objects.get(phone=PHONE)
    assert persona.entry_source == "signup_form" and persona.signup_form == form
    # Nobody proved either address on a public form: each opt-in waits for its confirmation.
    assert persona.email == "mara@example.com" and persona.email_consent == "pending"
    assert persona.text_consent == "pending"
    assert persona.favorite_store == store and persona.favorite_store_source == "signup_form"
    assert persona.loyalty_enrolled


def test_signup_of_an_existing_customer_changes_nothing_of_them_without_proof():
    app_store = StoreFactory(name="App pick")
    persona = PersonaFactory(
        phone=PHONE,
        first_name="",
        email_consent="opted_in",
        text_consent="opted_in",
        favorite_store=app_store,
        favorite_store_source="wallet",
    )
    SignupFormFactory(slug="kiosk", store=StoreFactory(name="Kiosk"))
    Client().post(
        reverse("personas:signup", args=["kiosk"]), {"first_name": "Nia", "phone": "202-555-0142"}
    )
    persona.refresh_from_db()
    assert Persona.objects.count() == 1
    assert persona.first_name == ""  # nobody proved the phone: nothing of the customer changes
    assert (persona.email_consent, persona.text_consent) == ("opted_in", "opted_in")
    assert persona.favorite_store == app_store  # wallet beats signup form


def test_signup_honeypot_rate_limit_and_csrf(settings):
    SignupFormFactory(slug="web")
    url = reverse("personas:signup", args=["web"])
    Client().post(url, {"first_name": "Bot", "phone": PHONE, "website": "http://spam"})
    assert not Persona.objects.exists()
    assert Client(enforce_csrf_checks=True).post(url, {"phone": PHONE}).status_code == 403
    settings.PERSONAS_SIGNUP_RATE_PER_CLIENT = (2, 3600)
    from django.core.cache import cache

    cache.clear()
    c = Client()
    codes = [
        c.post(url, {"first_name": "A", "phone": f"+1202555{n:04d}"}).status_code for n in range(3)
    ]
    assert codes == [302, 302, 429]


def test_signup_with_a_blocklisted_phone_thanks_without_saying_why():
    from personas.models import BlocklistEntry
    from personas.services import privacy

    privacy.blocklist([privacy.Identifier("phone", PHONE)], reason=BlocklistEntry.Reason.LEGAL)
    SignupFormFactory(slug="web")
    response = Client().post(
        reverse("personas:signup", args=["web"]), {"first_name": "X", "phone": PHONE}
    )
    assert response.status_code == 302 and not Persona.objects.exists()


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
    assert Client().get(reverse("personas:signup", args=["tablet"])).status_code == 200


# ---------------------------------------------------------------------------------------------
# Wallet


def _wallet_sign_in(c: Client, identifier=PHONE) -> None:
    c.post(reverse("personas:wallet_start"), {"identifier": identifier})
    code = re.search(r"\b(\d{6})\b", LocmemBackend.outbox[-1]["body"]).group(1)
    c.post(reverse("personas:wallet_verify"), {"phone": code})


def test_wallet_sign_in_shows_points_and_sets_the_store_and_push():
    store = StoreFactory(name="Riverside")
    persona = PersonaFactory(phone=PHONE, points_balance=420)
    PurchaseFactory(persona=persona, store=store)
    c = Client()
    _wallet_sign_in(c)
    page = c.get(reverse("personas:wallet")).content.decode()
    assert "420" in page and "Riverside" in page
    c.post(reverse("personas:wallet_store"), {"store": store.pk})
    c.post(reverse("personas:wallet_consent", args=["push"]), {"value": "on"})
    persona.refresh_from_db()
    assert persona.favorite_store == store and persona.favorite_store_source == "wallet"
    assert persona.push_consent == "opted_in"  # only the customer can do this
    # A later import cannot override the wallet's store.
    changes.apply(
        persona, Changeset(favorite_store=(StoreFactory().pk, "import")), Actor.import_row(1, 2)
    )
    persona.refresh_from_db()
    assert persona.favorite_store == store


def test_wallet_code_attempts_and_expiry():
    PersonaFactory(phone=PHONE)
    c = Client()
    c.post(reverse("personas:wallet_start"), {"identifier": PHONE})
    for _ in range(5):
        c.post(reverse("personas:wallet_verify"), {"phone": "000000"})
    code = re.search(r"\b(\d{6})\b", LocmemBackend.outbox[-1]["body"]).group(1)
    page = c.post(reverse("personas:wallet_verify"), {"phone": code}).content.decode()
    assert "Too many wrong codes" in page
    assert c.get(reverse("personas:wallet")).status_code == 302

    from personas.models import VerificationChallenge

    c2 = Client()
    c2.post(reverse("personas:wallet_start"), {"identifier": PHONE})
    code = re.search(r"\b(\d{6})\b", LocmemBackend.outbox[-1]["body"]).group(1)
    VerificationChallenge.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    page = c2.post(reverse("personas:wallet_verify"), {"phone": code}).content.decode()
    assert "expired" in page
    assert c2.get(reverse("personas:wallet")).status_code == 302


def test_wallet_by_email_code(settings):
    PersonaFactory(email="walleter@example.com", phone=None)
    c = Client()
    c.post(reverse("personas:wallet_start"), {"identifier": "Walleter@example.com"})
    code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)
    c.post(reverse("personas:wallet_verify"), {"email": code})
    assert c.get(reverse("personas:wallet")).status_code == 200


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


def test_public_forms_bring_up_the_right_phone_keyboard_and_autofill():
    """Customers fill these in on their phones: each input says what it holds."""
    SignupFormFactory(slug="kiosk", fields_asked=["first_name", "last_name", "email", "birthday"])
    html = Client().get(reverse("personas:signup", args=["kiosk"])).content.decode()
    inputs = {m.group(1): m.group(0) for m in re.finditer(r'<input[^>]*name="(\w+)"[^>]*>', html)}
    assert 'autocomplete="given-name"' in inputs["first_name"]
    assert 'autocomplete="family-name"' in inputs["last_name"]
    assert 'type="tel"' in inputs["phone"] and 'autocomplete="tel"' in inputs["phone"]
    assert 'type="email"' in inputs["email"] and 'autocomplete="email"' in inputs["email"]
    assert 'type="date"' in inputs["birthday"] and 'autocomplete="bday"' in inputs["birthday"]
    html = Client().get(reverse("personas:data_controls")).content.decode()
    assert re.search(r'<input[^>]*name="phone"[^>]*inputmode="tel"', html)
    assert re.search(r'<input[^>]*type="email"[^>]*name="email"[^>]*autocomplete="email"', html)
