"""Signup forms: the public page creates or finds the customer, and never tells a bot or a
blocklisted number apart; the public forms' inputs."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from personas.models import BlocklistEntry, Persona
from personas.services import privacy
from tests.personas.factories import PersonaFactory, SignupFormFactory, StoreFactory

pytestmark = pytest.mark.django_db

PHONE = "+12025550142"


def test_public_signup_creates_a_persona_with_the_form_as_source_and_store_precedence():
    store = StoreFactory(name="Harbor")
    form = SignupFormFactory(
        slug="harbor",
        store=store,
        fields_asked=["first_name", "last_name", "email", "favorite_store"],
    )
    c = Client()
    response = c.post(
        reverse("customers:signup", args=["harbor"]),
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
        reverse("customers:signup", args=["kiosk"]), {"first_name": "Nia", "phone": "202-555-0142"}
    )
    persona.refresh_from_db()
    assert Persona.objects.count() == 1
    assert persona.first_name == ""  # nobody proved the phone: nothing of the customer changes
    assert (persona.email_consent, persona.text_consent) == ("opted_in", "opted_in")
    assert persona.favorite_store == app_store  # wallet beats signup form


def test_signup_honeypot_rate_limit_and_csrf(settings):
    SignupFormFactory(slug="web")
    url = reverse("customers:signup", args=["web"])
    Client().post(url, {"first_name": "Bot", "phone": PHONE, "website": "http://spam"})
    assert not Persona.objects.exists()
    assert Client(enforce_csrf_checks=True).post(url, {"phone": PHONE}).status_code == 403
    settings.PERSONAS_SIGNUP_RATE_PER_CLIENT = (2, 3600)
    cache.clear()
    c = Client()
    codes = [
        c.post(url, {"first_name": "A", "phone": f"+1202555{n:04d}"}).status_code for n in range(3)
    ]
    assert codes == [302, 302, 429]


def test_signup_with_a_blocklisted_phone_thanks_without_saying_why():
    privacy.blocklist([privacy.Identifier("phone", PHONE)], reason=BlocklistEntry.Reason.LEGAL)
    SignupFormFactory(slug="web")
    response = Client().post(
        reverse("customers:signup", args=["web"]), {"first_name": "X", "phone": PHONE}
    )
    assert response.status_code == 302 and not Persona.objects.exists()


def test_public_forms_bring_up_the_right_phone_keyboard_and_autofill():
    """Customers fill these in on their phones: each input says what it holds."""
    SignupFormFactory(slug="kiosk", fields_asked=["first_name", "last_name", "email", "birthday"])
    html = Client().get(reverse("customers:signup", args=["kiosk"])).content.decode()
    inputs = {m.group(1): m.group(0) for m in re.finditer(r'<input[^>]*name="(\w+)"[^>]*>', html)}
    assert 'autocomplete="given-name"' in inputs["first_name"]
    assert 'autocomplete="family-name"' in inputs["last_name"]
    assert 'type="tel"' in inputs["phone"] and 'autocomplete="tel"' in inputs["phone"]
    assert 'type="email"' in inputs["email"] and 'autocomplete="email"' in inputs["email"]
    assert 'type="date"' in inputs["birthday"] and 'autocomplete="bday"' in inputs["birthday"]
    html = Client().get(reverse("customers:data_controls")).content.decode()
    assert re.search(r'<input[^>]*name="phone"[^>]*inputmode="tel"', html)
    assert re.search(r'<input[^>]*type="email"[^>]*name="email"[^>]*autocomplete="email"', html)
