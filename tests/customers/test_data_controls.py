"""The data controls: the customer deletes their own data with codes sent to what they own,
and the page reveals nothing about who is known."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from personas.messaging.backends import LocmemBackend
from personas.models import ErasureRequest, Persona, VerificationChallenge
from personas.services import privacy
from tests.personas.test_privacy import EMAIL, PHONE, _customer, _needles, scan_database

pytestmark = pytest.mark.django_db(transaction=False)


def _codes_from_outboxes() -> dict[str, str]:
    codes = {}
    for message in LocmemBackend.outbox:
        codes["phone"] = re.search(r"\b(\d{6})\b", message["body"]).group(1)
    for message in mail.outbox:
        codes["email"] = re.search(r"\b(\d{6})\b", message.body).group(1)
    return codes


def _normalise(html: str) -> str:
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    return re.sub(r'"x-csrftoken": "[^"]+"', "", html)


def test_public_erasure_with_codes_deletes_the_customer(client, django_capture_on_commit_callbacks):
    persona = _customer()
    response = client.post(
        reverse("customers:data_controls"), {"phone": "(202) 555-0199", "email": EMAIL.upper()}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("customers:data_controls_verify")
    codes = _codes_from_outboxes()
    assert set(codes) == {"phone", "email"}
    assert LocmemBackend.outbox[0]["to"] == PHONE and mail.outbox[0].to == [EMAIL]
    with django_capture_on_commit_callbacks(execute=True):  # the deletion task is enqueued
        response = client.post(reverse("customers:data_controls_verify"), codes)
    assert response.status_code == 302
    assert response["Location"] == reverse("customers:data_controls_done")
    persona.refresh_from_db()
    assert persona.status == "erased"
    assert not VerificationChallenge.objects.exists()
    assert ErasureRequest.objects.get().via == "public_page"
    assert scan_database(_needles()) == []


def test_public_page_answers_the_same_for_known_and_unknown_identifiers():
    _customer()
    pages = []
    for phone in ("(202) 555-0199", "(202) 555-0142"):  # known, unknown
        c = Client()
        first = c.post(reverse("customers:data_controls"), {"phone": phone})
        second = c.get(first["Location"])
        pages.append((first.status_code, first["Location"], _normalise(second.content.decode())))
        wrong = c.post(reverse("customers:data_controls_verify"), {"phone": "000000"})
        pages.append((wrong.status_code, _normalise(wrong.content.decode())))
    assert pages[0] == pages[2] and pages[1] == pages[3]
    assert len(LocmemBackend.outbox) == 2  # a code goes to either number


def test_unknown_identifier_verified_is_blocklisted_and_recorded_without_data(
    client, django_capture_on_commit_callbacks
):
    client.post(reverse("customers:data_controls"), {"email": "nobody@example.net"})
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("customers:data_controls_verify"), _codes_from_outboxes())
    assert response["Location"] == reverse("customers:data_controls_done")
    record = ErasureRequest.objects.get()
    assert not record.matched and record.persona_ids == []
    assert privacy.is_blocked(email="nobody@example.net")


def test_codes_limit_attempts_and_expire(client):
    persona = _customer()
    client.post(reverse("customers:data_controls"), {"phone": PHONE})
    good = _codes_from_outboxes()
    bad = {"phone": "111111" if good["phone"] != "111111" else "222222"}
    verify = reverse("customers:data_controls_verify")
    for left in (4, 3, 2, 1):
        page = client.post(verify, bad).content.decode()
        assert f"{left} attempt" in page
    assert "Too many wrong codes" in client.post(verify, bad).content.decode()
    response = client.post(verify, good)  # even the right code is refused now
    assert "Too many wrong codes" in response.content.decode()
    assert Persona.objects.get(pk=persona.pk).status == "active"

    c2 = Client()
    LocmemBackend.outbox.clear()
    c2.post(reverse("customers:data_controls"), {"phone": PHONE})
    codes = _codes_from_outboxes()
    VerificationChallenge.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = c2.post(verify, codes)
    assert "expired" in response.content.decode()
    assert Persona.objects.get(pk=persona.pk).status == "active"


def test_public_page_is_rate_limited_per_identifier_and_per_client(settings):
    settings.PERSONAS_CODE_RATE_PER_IDENTIFIER = (2, 3600)
    settings.PERSONAS_CODE_RATE_PER_CLIENT = (4, 3600)
    cache.clear()
    url = reverse("customers:data_controls")
    statuses = [
        Client(REMOTE_ADDR=f"10.0.0.{n}").post(url, {"phone": PHONE}).status_code for n in range(3)
    ]
    assert statuses == [302, 302, 429]
    c = Client(REMOTE_ADDR="10.9.9.9")
    statuses = [c.post(url, {"phone": f"+1202555{n:04d}"}).status_code for n in range(5)]
    assert statuses == [302, 302, 302, 302, 429]
    assert "Too many requests" in c.post(url, {"phone": "+12025554444"}).content.decode()
    cache.clear()


def test_public_page_requires_csrf():
    c = Client(enforce_csrf_checks=True)
    assert c.post(reverse("customers:data_controls"), {"phone": PHONE}).status_code == 403
    assert not VerificationChallenge.objects.exists()


def test_public_page_refuses_bad_input_with_a_message():
    c = Client()
    for data, text in (
        ({}, "phone number, your email"),
        ({"phone": "12"}, "valid phone"),
        ({"email": "not-an-email"}, "valid email"),
    ):
        response = c.post(reverse("customers:data_controls"), data)
        assert response.status_code == 200 and text in response.content.decode(), data
    assert not VerificationChallenge.objects.exists()
