"""The wallet: signed in with a one-time code, the customer's points, store and opt-ins."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from personas.messaging.backends import LocmemBackend
from personas.models import VerificationChallenge
from personas.services import changes
from personas.services.changes import Actor, Changeset
from tests.personas.factories import PersonaFactory, PurchaseFactory, StoreFactory

pytestmark = pytest.mark.django_db

PHONE = "+12025550142"


def _wallet_sign_in(c: Client, identifier=PHONE) -> None:
    c.post(reverse("customers:wallet_start"), {"identifier": identifier})
    code = re.search(r"\b(\d{6})\b", LocmemBackend.outbox[-1]["body"]).group(1)
    c.post(reverse("customers:wallet_verify"), {"phone": code})


def test_wallet_sign_in_shows_points_and_sets_the_store_and_push():
    store = StoreFactory(name="Riverside")
    persona = PersonaFactory(phone=PHONE, points_balance=420)
    PurchaseFactory(persona=persona, store=store)
    c = Client()
    _wallet_sign_in(c)
    page = c.get(reverse("customers:wallet")).content.decode()
    assert "420" in page and "Riverside" in page
    c.post(reverse("customers:wallet_store"), {"store": store.pk})
    c.post(reverse("customers:wallet_consent", args=["push"]), {"value": "on"})
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
    c.post(reverse("customers:wallet_start"), {"identifier": PHONE})
    for _ in range(5):
        c.post(reverse("customers:wallet_verify"), {"phone": "000000"})
    code = re.search(r"\b(\d{6})\b", LocmemBackend.outbox[-1]["body"]).group(1)
    page = c.post(reverse("customers:wallet_verify"), {"phone": code}).content.decode()
    assert "Too many wrong codes" in page
    assert c.get(reverse("customers:wallet")).status_code == 302

    c2 = Client()
    c2.post(reverse("customers:wallet_start"), {"identifier": PHONE})
    code = re.search(r"\b(\d{6})\b", LocmemBackend.outbox[-1]["body"]).group(1)
    VerificationChallenge.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    page = c2.post(reverse("customers:wallet_verify"), {"phone": code}).content.decode()
    assert "expired" in page
    assert c2.get(reverse("customers:wallet")).status_code == 302


def test_wallet_by_email_code(settings):
    PersonaFactory(email="walleter@example.com", phone=None)
    c = Client()
    c.post(reverse("customers:wallet_start"), {"identifier": "Walleter@example.com"})
    code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)
    c.post(reverse("customers:wallet_verify"), {"email": code})
    assert c.get(reverse("customers:wallet")).status_code == 200
